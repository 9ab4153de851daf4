"""Transformer (DiT) base models: their block layouts, and matching a LoRA against them.

Several families share names (kohya spells Flux.1, Flux.2 and HunyuanVideo all
``double_blocks_N_img_attn_qkv``; Flux's and HunyuanVideo's diffusers classes
have identical layers at identical widths), so a layout is described by what
tells it apart: the layers after each block index, the block counts, the
hidden width, and each layer's in/out width as a multiple of that width (Flux.1's
MLP is 4x, Flux.2's SwiGLU 6x). A LoRA fits a layout when every adapted block
layer it has is one of the layout's, at the right widths and within its block
count. Layouts were read off the diffusers model classes and the original
checkpoints' key names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from catalog.detect.dit_layouts import LAYOUTS, Fixed, Layout

#: prefixes writers put before the model's own module names (stripped repeatedly: PEFT over diffusers)
STRIP = ("lora_unet_", "lora_transformer_", "lycoris_", "model.diffusion_model.", "diffusion_model.",
         "base_model.model.", "transformer.", "unet.", "net.")  # net.: Cosmos/Anima checkpoints
KNOWN_GROUPS = frozenset(g for layout in LAYOUTS for g in layout.groups)
#: (block group, layer) -> the layouts that have it: a file is matched only against these
_BY_LAYER: dict[tuple[str, str], frozenset[int]] = {}
for _n, _layout in enumerate(LAYOUTS):
    for _group, (_count, _layers) in _layout.groups.items():
        for _layer in _layers:
            _BY_LAYER[(_group, _layer)] = _BY_LAYER.get((_group, _layer), frozenset()) | {_n}
_INDEX = re.compile(r"_(\d+)_")
_RAW_INDEX = re.compile(r"[._](\d+)[._]")


def strip_prefix(name: str) -> tuple[str, int]:
    """The model's own module name and how many leading characters were writer prefixes."""
    cut, again = 0, True
    while again:
        again = False
        for prefix in STRIP:
            if name.startswith(prefix, cut):
                cut += len(prefix)
                again = True
                break
    return name[cut:], cut


def parse_block(name: str) -> tuple[str, int, str] | None:
    """(block group, index, layer) of a transformer-block module name, else None.

    The block index is the first ``_N_`` of the flattened name: ``double_blocks``,
    ``layers``, ``noise_refiner``, ``text_fusion_layerwise_blocks`` all come out as groups.
    """
    s = strip_prefix(name)[0].replace(".", "_").replace("_processor_", "_")
    for tail in ("_lora_linear_layer", "_lora"):
        s = s.removesuffix(tail)
    m = _INDEX.search(s)
    if m is None or m.start() == 0:
        return None
    return s[: m.start()], int(m.group(1)), s[m.end():]


def dit_findings(modules: Sequence[tuple[str, int]], widths: Callable, *,
                 strict: bool = True) -> list[tuple[str, frozenset[str]]]:
    """Clues from transformer blocks: [(words, families that fit)]; [] when there are none.

    ``modules`` are (name, number) pairs; ``widths(number)`` gives (in, out, ndim).
    Names that differ only in their block index (the first number between
    separators) share a layer, so each is parsed once and its members only read their index.
    Only the layouts that have every adapted layer are tried (looked up by layer),
    so the cost does not grow with the number of families. ``strict=False`` (full
    models) ignores block layers no family lists (norms, biases kept as matrices).
    """
    spellings: dict[str, list] = {}  # name without its block index -> [first name, its number, top index]
    search = _RAW_INDEX.search
    for name, number in modules:
        m = search(name)
        if m is None:
            continue
        key = name[:m.start(1)] + name[m.end(1):]
        index = int(m.group(1))
        seen = spellings.get(key)
        if seen is None:
            spellings[key] = [name, number, index]
        elif index > seen[2]:
            seen[2] = index
    example: dict[tuple[str, str], int] = {}
    top: dict[str, int] = {}
    for name, number, index in spellings.values():
        parsed = parse_block(name)
        if parsed is None or parsed[0] not in KNOWN_GROUPS:
            continue
        group, _, layer = parsed
        if not strict and (group, layer) not in _BY_LAYER:
            continue
        example.setdefault((group, layer), number)
        top[group] = max(top.get(group, -1), index)
    if not example:
        return []
    candidates: frozenset[int] | None = None
    for key in example:
        found = _BY_LAYER.get(key, frozenset())
        candidates = found if candidates is None else candidates & found
        if not candidates:
            break
    fits = [(LAYOUTS[n], hidden) for n in sorted(candidates or ())
            if (hidden := _fit(LAYOUTS[n], example, top, widths))]
    blocks = ", ".join(f"{g} 0-{i}" for g, i in sorted(top.items()))
    families = {layout.family for layout, _ in fits}
    if len(families) > 1:  # same names and widths: only the block counts can tell them apart
        exact = {lay.family for lay, _ in fits if all(i == lay.groups[g][0] - 1 for g, i in top.items())}
        if exact:  # a LoRA covers every block of its model: families whose counts end elsewhere drop out
            families = exact
            fits = [(lay, h) for lay, h in fits if lay.family in exact]
    if not fits:
        return [(f"transformer blocks ({blocks}) whose layers or widths fit no known family", frozenset())]
    layout, hidden = fits[0]
    text = f"{layout.label} ({blocks}) {hidden} wide" if len(families) == 1 else \
        f"transformer blocks ({blocks}) {hidden} wide"
    return [(text, frozenset(families))]


def _fit(layout: Layout, example: dict[tuple[str, str], int], top: dict[str, int],
         widths: Callable) -> int | None:
    """The hidden width at which every adapted block layer fits ``layout``, or None."""
    for group, index in top.items():
        if group not in layout.groups or index >= layout.groups[group][0]:
            return None
    hidden = None
    checks = []
    for (group, layer), number in example.items():
        mult = layout.groups[group][1].get(layer)
        if mult is None:
            return None
        w = widths(number)
        if w is None:
            continue
        checks.append((mult, w))
        if hidden is None:
            for m, width in zip(mult, w):
                if m and not isinstance(m, Fixed) and width:
                    hidden = round(width / m)
                    break
    if hidden is None or hidden not in layout.hidden:
        return None
    for mult, (w_in, w_out, _) in checks:
        if not (_width_ok(mult[0], w_in, hidden) and _width_ok(mult[1], w_out, hidden)):
            return None
    return hidden


def _width_ok(m, width: int, hidden: int) -> bool:
    if not m:
        return True
    return width == m if isinstance(m, Fixed) else width == round(m * hidden)

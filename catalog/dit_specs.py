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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Mult = tuple[float | None, float | None]  # (in, out) as multiples of the hidden width; None: not fixed

_STRIP = ("lora_unet_", "lora_transformer_", "lycoris_", "model.diffusion_model.", "diffusion_model.",
          "base_model.model.", "transformer.", "unet.")


@dataclass(frozen=True)
class Layout:
    family: str
    label: str
    hidden: frozenset[int]
    groups: dict[str, tuple[int, dict[str, Mult]]]  # block group -> (block count, layers)


def _stream(**layers: Mult) -> dict[str, Mult]:
    """Layers named for the image stream, plus their twins in the text stream."""
    return {**layers, **{"txt" + name[3:]: m for name, m in layers.items()}}


def _same(*names: str) -> dict[str, Mult]:
    return dict.fromkeys(names, (1, 1))


def _ff(prefix: str, ratio: int) -> dict[str, Mult]:
    return {f"{prefix}_net_0_proj": (1, ratio), f"{prefix}_net_2": (ratio, 1)}


_JOINT_ATTN = _same("attn_to_q", "attn_to_k", "attn_to_v", "attn_to_out_0", "attn_add_q_proj",
                    "attn_add_k_proj", "attn_add_v_proj", "attn_to_add_out")
_SINGLE_ATTN = _same("attn_to_q", "attn_to_k", "attn_to_v")
_FLUX_DOUBLE_DIFFUSERS = {**_JOINT_ATTN, **_ff("ff", 4), **_ff("ff_context", 4),
                          "norm1_linear": (1, 6), "norm1_context_linear": (1, 6)}
_FLUX_SINGLE_DIFFUSERS = {**_SINGLE_ATTN, "proj_mlp": (1, 4), "proj_out": (5, 1), "norm_linear": (1, 3)}
_F3072 = frozenset({3072})

LAYOUTS: tuple[Layout, ...] = (
    Layout("flux", "Flux.1 double/single blocks", _F3072, {
        "double_blocks": (19, _stream(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_0=(1, 4),
                                      img_mlp_2=(4, 1), img_mod_lin=(1, 6))),
        "single_blocks": (38, {"linear1": (1, 7), "linear2": (5, 1), "modulation_lin": (1, 3)})}),
    Layout("flux", "XLabs Flux attention processors", _F3072, {
        "double_blocks": (19, {"qkv_lora1": (1, 3), "qkv_lora2": (1, 3), "proj_lora1": (1, 1),
                               "proj_lora2": (1, 1)}),
        "single_blocks": (38, {"qkv_lora": (1, 3), "proj_lora": (1, 1)})}),
    Layout("flux", "Flux.1 transformer_blocks/single_transformer_blocks", _F3072, {
        "transformer_blocks": (19, _FLUX_DOUBLE_DIFFUSERS),
        "single_transformer_blocks": (38, _FLUX_SINGLE_DIFFUSERS)}),
    Layout("hunyuan-video", "HunyuanVideo double/single blocks", _F3072, {
        "double_blocks": (20, _stream(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_fc1=(1, 4),
                                      img_mlp_fc2=(4, 1), img_mod_linear=(1, 6))),
        "single_blocks": (40, {"linear1": (1, 7), "linear2": (5, 1), "modulation_linear": (1, 3)}),
        "txt_in_individual_token_refiner_blocks": (2, {
            "self_attn_qkv": (1, 3), "self_attn_proj": (1, 1), "mlp_fc1": (1, 4), "mlp_fc2": (4, 1),
            "adaLN_modulation_1": (1, 2)})}),
    Layout("hunyuan-video", "HunyuanVideo transformer_blocks/single_transformer_blocks", _F3072, {
        "transformer_blocks": (20, _FLUX_DOUBLE_DIFFUSERS),
        "single_transformer_blocks": (40, _FLUX_SINGLE_DIFFUSERS),
        "context_embedder_token_refiner_refiner_blocks": (2, {
            **_same("attn_to_q", "attn_to_k", "attn_to_v", "attn_to_out_0"), **_ff("ff", 4),
            "norm_out_linear": (1, 2)})}),
    Layout("flux2", "Flux.2 double/single blocks", frozenset({3072, 4096, 6144}), {
        "double_blocks": (8, _stream(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_0=(1, 6),
                                     img_mlp_2=(3, 1))),
        "single_blocks": (48, {"linear1": (1, 9), "linear2": (4, 1)})}),
    Layout("flux2", "Flux.2 transformer_blocks/single_transformer_blocks", frozenset({3072, 4096, 6144}), {
        "transformer_blocks": (8, {**_JOINT_ATTN, "ff_linear_in": (1, 6), "ff_linear_out": (3, 1),
                                   "ff_context_linear_in": (1, 6), "ff_context_linear_out": (3, 1)}),
        "single_transformer_blocks": (48, {"attn_to_qkv_mlp_proj": (1, 9), "attn_to_out": (4, 1)})}),
    Layout("qwen-image", "Qwen-Image transformer_blocks with img_mlp/txt_mlp", _F3072, {
        "transformer_blocks": (60, {**_JOINT_ATTN, **_ff("img_mlp", 4), **_ff("txt_mlp", 4),
                                    "img_mod_1": (1, 6), "txt_mod_1": (1, 6)})}),
    Layout("sd3", "SD3 MMDiT transformer_blocks", frozenset({1536, 2432}), {
        "transformer_blocks": (38, {**_JOINT_ATTN, **_ff("ff", 4), **_ff("ff_context", 4),
                                    "norm1_linear": (1, None), "norm1_context_linear": (1, None),
                                    **_same("attn2_to_q", "attn2_to_k", "attn2_to_v", "attn2_to_out_0")})}),
    Layout("sd3", "SD3 MMDiT joint_blocks", frozenset({1536, 2432}), {
        "joint_blocks": (38, {f"{side}_{name}": m for side in ("x_block", "context_block") for name, m in {
            "attn_qkv": (1, 3), "attn_proj": (1, 1), "mlp_fc1": (1, 4), "mlp_fc2": (4, 1),
            "adaLN_modulation_1": (1, None), "attn2_qkv": (1, 3), "attn2_proj": (1, 1)}.items()})}),
    Layout("wan", "Wan blocks with self_attn/cross_attn/ffn", frozenset({1536, 3072, 5120}), {
        "blocks": (40, {**_same(*(f"{a}_{p}" for a in ("self_attn", "cross_attn") for p in "qkvo"),
                                "cross_attn_k_img", "cross_attn_v_img"),
                        "ffn_0": (1, None), "ffn_2": (None, 1)})}),
    Layout("wan", "Wan blocks with attn1/attn2/ffn", frozenset({1536, 3072, 5120}), {
        "blocks": (40, {**_same(*(f"{a}_{p}" for a in ("attn1", "attn2") for p in (
            "to_q", "to_k", "to_v", "to_out_0")), "attn2_add_k_proj", "attn2_add_v_proj"),
                        "ffn_net_0_proj": (1, None), "ffn_net_2": (None, 1)})}),
)
KNOWN_GROUPS = frozenset(g for layout in LAYOUTS for g in layout.groups)


def parse_block(name: str) -> tuple[str, int, str] | None:
    """(block group, index, layer) of a transformer-block module name, else None."""
    for prefix in _STRIP:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    s = name.replace(".", "_").replace("_processor_", "_")
    for tail in ("_lora_linear_layer", "_lora"):
        if s.endswith(tail):
            s = s[: -len(tail)]
    at = s.find("blocks_")
    if at < 0:
        return None
    start = end = at + 7
    while end < len(s) and s[end].isdigit():
        end += 1
    if end == start or end >= len(s):
        return None
    return s[: at + 6], int(s[start:end]), s[end + 1:]


def dit_findings(modules: Sequence[tuple[str, int]], widths: Callable) -> list[tuple[str, frozenset[str]]]:
    """Clues from transformer blocks: [(words, families that fit)]; [] when there are none.

    ``modules`` are (name, number) pairs; ``widths(number)`` gives (in, out, ndim).
    Names that differ only in their block index share a layer, so each distinct
    digit-free spelling is parsed once and its members only read their index.
    """
    spellings: dict[bytes, list[tuple[str, int]]] = {}
    for name, number in modules:
        spellings.setdefault(name.encode().translate(None, b"0123456789"), []).append((name, number))
    example: dict[tuple[str, str], int] = {}
    top: dict[str, int] = {}
    for members in spellings.values():
        name, number = members[0]
        parsed = parse_block(name)
        if parsed is None or parsed[0] not in KNOWN_GROUPS:
            continue
        group, index, layer = parsed
        at = _index_offset(name, group, index)
        if at is not None:
            sep = name[at + len(str(index))]
            index = max(int(n[at:n.index(sep, at)]) for n, _ in members)
        example.setdefault((group, layer), number)
        top[group] = max(top.get(group, -1), index)
    if not example:
        return []
    fits = [(layout, hidden) for layout in LAYOUTS if (hidden := _fit(layout, example, top, widths))]
    blocks = ", ".join(f"{g} 0-{i}" for g, i in sorted(top.items()))
    families = {layout.family for layout, _ in fits}
    if len(families) > 1:  # same names and widths: only the block counts can tell them apart
        exact = {lay.family for lay, _ in fits if all(i == lay.groups[g][0] - 1 for g, i in top.items())}
        if len(exact) == 1:
            families = exact
            fits = [(lay, h) for lay, h in fits if lay.family in exact]
    if not fits:
        return [(f"transformer blocks ({blocks}) whose layers or widths fit no known family", frozenset())]
    layout, hidden = fits[0]
    text = f"{layout.label} ({blocks}) {hidden} wide" if len(families) == 1 else \
        f"transformer blocks ({blocks}) {hidden} wide"
    return [(text, frozenset(families))]


def _index_offset(name: str, group: str, index: int) -> int | None:
    """Where the block index starts in ``name`` (for its digit-only siblings)."""
    for sep in "_.":
        at = name.find(f"{group}{sep}{index}{sep}")
        if at >= 0:
            return at + len(group) + 1
    return None


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
            hidden = w[0] / mult[0] if mult[0] else (w[1] / mult[1] if mult[1] else None)
    if hidden is None or hidden not in layout.hidden:
        return None
    for (m_in, m_out), (w_in, w_out, _) in checks:
        if (m_in and w_in != m_in * hidden) or (m_out and w_out != m_out * hidden):
            return None
    return int(hidden)

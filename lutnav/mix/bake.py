"""Baking a blend into a full single-file checkpoint, streamed with bounded memory.

The output has exactly the base's tensors, dtypes and offsets, so its header is
the base header (plus a note in the metadata) and the data is copied tensor by
tensor: untouched weights as raw bytes in chunks, adapted ones read, given
``W + Σ sᵢ·(αᵢ/rᵢ)·upᵢ@downᵢ`` in float32 and cast back. At most one weight and
its ΔW are in memory at a time. Checkpoint names: LDM single files
(``model.diffusion_model.…``, CLIP ``cond_stage_model.transformer.…`` /
``conditioner.embedders.0.transformer.…``, OpenCLIP ``…resblocks.N.attn.in_proj_weight``
with q/k/v stacked) and bare diffusers UNet files (``down_blocks.…``).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalog.files.durable import atomic_write
from catalog.files.header import read_header
from catalog.detect.kohya_names import TE1, TE2, UNET, diffusers_to_ldm
from catalog.index.library import Library
from catalog.progress import Progress, Work

from .blend import check_output, merge_metadata
from .errors import MixError

CHUNK = 16 << 20
_OPENCLIP = {"q_proj": 0, "k_proj": 1, "v_proj": 2}
_OPENCLIP_LEAF = {"self_attn.out_proj": "attn.out_proj.weight", "mlp.fc1": "mlp.c_fc.weight",
                  "mlp.fc2": "mlp.c_proj.weight"}


@dataclass
class BakeResult:
    path: Path
    tensors: int
    changed: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def checkpoint_target(keys: set[str], module: tuple[str, str], family: str | None):
    """``(checkpoint key, row slice or None)`` that a LoRA module adapts, or ``None``."""
    part, path = module
    if part == "transformer":  # a transformer family: the module's own name under the checkpoint's prefix
        from catalog.detect.dit_keys import dotted

        name = dotted(path)
        for key in (f"{root}{name}.weight" for root in ("", "model.diffusion_model.", "diffusion_model.", "net.")):
            if name is not None and key in keys:
                return key, None
        return None
    if part not in (UNET, TE1, TE2):
        return None
    if part == UNET:
        for key in (f"model.diffusion_model.{diffusers_to_ldm(path, family or 'sd1')}.weight",
                    f"{path}.weight", f"unet.{path}.weight"):
            if key in keys:
                return key, None
        return None
    clip_roots = {TE1: ("cond_stage_model.transformer.", "conditioner.embedders.0.transformer."),
                  TE2: ()}[part]
    for root in clip_roots:
        if f"{root}{path}.weight" in keys:
            return f"{root}{path}.weight", None
    open_roots = {TE1: ("cond_stage_model.model.",), TE2: ("conditioner.embedders.1.model.",)}[part]
    t = path.split(".")  # text_model.encoder.layers.N.<leaf...>
    if len(t) < 6 or t[:3] != ["text_model", "encoder", "layers"]:
        return None
    layer, leaf = t[3], ".".join(t[4:])
    for root in open_roots:
        block = f"{root}transformer.resblocks.{layer}."
        if leaf.startswith("self_attn.") and t[-1] in _OPENCLIP and f"{block}attn.in_proj_weight" in keys:
            return f"{block}attn.in_proj_weight", _OPENCLIP[t[-1]]
        if leaf in _OPENCLIP_LEAF and block + _OPENCLIP_LEAF[leaf] in keys:
            return block + _OPENCLIP_LEAF[leaf], None
    return None


def bake_into_model(lib: Library, items: list, base: Path, out: Path, *,
                    overwrite: bool = False) -> Work[BakeResult]:
    """Write ``base`` with the blend added to every weight it adapts, to ``out`` (atomic).

    Yields a :class:`Progress` per tensor written; returns the :class:`BakeResult`.
    """
    from .tensors import load_lora

    from .merge import module_union

    start = time.perf_counter()
    out = check_output(out, overwrite=overwrite)
    if Path(base).resolve() == out.resolve():
        raise MixError("refusing to bake a checkpoint onto itself", path=out)
    header = read_header(base)
    loras = [load_lora(lib.abspath(i.rel)) for i in items]
    weights = [i.weight for i in items]
    keys = set(header.tensors)
    family = _family(items, keys)
    plan: dict[str, list] = {}
    missing = []
    for module in module_union(loras):
        target = checkpoint_target(keys, module, family)
        if target is None:
            missing.append(module)
            continue
        plan.setdefault(target[0], []).append((module, target[1]))
    if not plan:
        raise MixError(f"none of the blend's {len(missing)} modules has a weight in this checkpoint",
                       path=base, hint="bake into a checkpoint of the LoRAs' base model")
    notes = [f"{len(missing)} LoRA modules have no weight in {Path(base).name} and were skipped "
             f"(e.g. {missing[0][1]})"] if missing else []
    metadata = dict(header.metadata)
    metadata.update({f"lutnav.{k}": v for k, v in merge_metadata(items, family, 0, None, "", out).items()
                     if k in ("ss_merged_from", "ss_merge_weights", "modelspec.merge_recipe")})
    yield from _stream(base, header, metadata, out, plan, loras, weights)
    return BakeResult(out, len(header.tensors), len(plan), time.perf_counter() - start, notes)


def _family(items: list, keys: set[str]) -> str | None:
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    bases = {i.entry.base_model for i in items} - {None, "unknown"}
    return bases.pop() if len(bases) == 1 else None


def _header_bytes(header, metadata: dict[str, str]) -> bytes:
    doc: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    for name, info in header.tensors.items():
        doc[name] = {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": [info.start, info.end]}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * (-len(text) % 8)


def _stream(base: Path, header, metadata, out: Path, plan, loras, weights) -> Work[None]:
    order = sorted(header.tensors.items(), key=lambda kv: kv[1].start)
    head = _header_bytes(header, metadata)
    with atomic_write(out) as dst, open(base, "rb") as src:
        dst.write(struct.pack("<Q", len(head)))
        dst.write(head)
        for done, (name, info) in enumerate(order, 1):
            src.seek(header.data_offset + info.start)
            if name in plan:
                raw = src.read(info.end - info.start)
                dst.write(_adapted(name, info, raw, plan[name], loras, weights, base))
            else:
                _copy(src, dst, info.end - info.start)
            yield Progress(done, len(order), name)


def _copy(src, dst, count: int) -> None:
    while count > 0:
        block = src.read(min(CHUNK, count))
        if not block:
            raise MixError("checkpoint ended early while copying", path=src.name)
        dst.write(block)
        count -= len(block)


def _adapted(name: str, info, raw: bytes, targets, loras, weights, base: Path):
    """One base weight plus every LoRA's ΔW for it, back in the weight's own dtype."""
    from .tensors import FLOAT_TAGS, as_float, from_float, numpy, storage

    from .merge import delta

    np = numpy()
    if info.dtype not in FLOAT_TAGS:
        raise MixError(f"{name} is {info.dtype}; only float weights can take a LoRA", path=base)
    w = np.array(as_float(np.frombuffer(raw, dtype=storage(info.dtype)).reshape(info.shape), info.dtype))
    for module, chunk in targets:
        rows = info.shape[0] // 3
        view = w if chunk is None else w[chunk * rows:(chunk + 1) * rows]
        for lora, s in zip(loras, weights):
            f = lora.modules.get(module)
            if f is None:
                continue
            d = delta(f, s)
            if d.size != view.size:
                raise MixError(f"{module[1]!r}: ΔW {list(d.shape)} does not fit {name} "
                               f"{list(view.shape)}", path=base,
                               hint="bake into a checkpoint of the LoRAs' base model")
            view += d.reshape(view.shape)
    return memoryview(from_float(w, info.dtype)).cast("B")

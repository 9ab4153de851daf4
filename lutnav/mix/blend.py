"""A blend from spec to catalog entry: resolve, guard, merge, write atomically, card, index.

The CLI and recipes call :func:`resolve_items`, then the guards, then
:func:`write_merged`; nothing here prints. A merged file is a kohya LoRA (the
names every client loads) whose ``ss_*``/``modelspec.*`` metadata records the
recipe, beside a card that lists its parents.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalog.card_file import write_card
from catalog.card_slot import CardSlot, claim_card
from catalog.errors import PathOutsideLibrary
from catalog.keynames import TE2, KeyName, kohya_key
from catalog.library import Library
from catalog.writer import encode_floats, write_safetensors

from .errors import MixError, OutputDirMissing, OutputExists
from .merge import (
    MergeReport,
    check_rank,
    max_rank,
    merge_exact,
    merge_svd,
    module_union,
)

#: kohya/modelspec spellings of the base families
SS_BASE = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
ARCHITECTURE = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-768-v/lora",
                "sdxl": "stable-diffusion-xl-v1-base/lora"}


@dataclass
class BlendItem:
    rel: str  # library path
    name: str
    weight: float
    entry: dict  # the `show --json` object


@dataclass
class MergeResult:
    path: Path
    rel: str | None  # library path when the file landed inside the library
    report: MergeReport
    modules: int
    rank: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def resolve_items(lib: Library, specs: list) -> list[BlendItem]:
    """Resolve ``Spec`` objects through the index; a missing weight takes the card's strength."""
    from lutnav.prompt_tags import default_weight

    items = []
    for spec in specs:
        rel = lib.resolve(spec.name)
        weight = spec.weight if spec.weight is not None else default_weight(lib, rel)
        entry = lib.get(rel)
        items.append(BlendItem(rel, entry["name"], float(weight), entry))
    return items


def blend_family(items: list[BlendItem], loras: list) -> str | None:
    bases = {i.entry.get("base_model") for i in items} - {None, "unknown"}
    if len(bases) == 1:
        return bases.pop()
    if any(part == TE2 for lora in loras for part, _ in lora.modules):
        return "sdxl"
    return None


def check_output(out: Path, *, overwrite: bool) -> Path:
    """Refuse before any work: wrong suffix, missing folder, existing file without --overwrite,
    a card name that belongs to another file (see :func:`catalog.card_slot.claim_card`)."""
    return claim_output(out, overwrite=overwrite)[0]


def claim_output(out: Path, *, overwrite: bool) -> tuple[Path, CardSlot]:
    """:func:`check_output`, and the slot its card will be written into."""
    out = Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise MixError("the merged file must end in .safetensors", path=out)
    if not out.parent.is_dir():
        raise OutputDirMissing(f"folder {out.parent} does not exist", path=out)
    if out.exists() and not overwrite:
        raise OutputExists("file exists", path=out)
    return out, claim_card(out, replace=overwrite, is_folder=False)


def _refuse_an_input(lib: Library, items: list[BlendItem], out: Path) -> None:
    """``--out`` naming one of the blended files (under any spelling or link) would replace that
    entry and its card with the blend, as ``convert`` onto its source would."""
    if not out.exists():
        return
    for item in items:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, lib.abspath(item.rel)):
                raise MixError(f"refusing to write the blend over {item.name}, one of the files it blends",
                               path=out, hint="give --out another name")


def write_merged(lib: Library, items: list[BlendItem], out: Path, *, rank: int | None = None,
                 overwrite: bool = False, command: str = "", progress=None) -> MergeResult:
    """Merge ``items`` into ``out`` (exact, or SVD to ``rank``), card it and index it.

    Every module gets the same alpha (the top rank) with its own rank/alpha folded
    into ``up``: diffusers turns per-module kohya alphas into patterns that match
    no layer and applies the most common alpha everywhere, so varying alphas would
    load at the wrong scale there.
    """
    from lutnav.tensors import load_lora

    start = time.perf_counter()
    out, slot = claim_output(out, overwrite=overwrite)
    _refuse_an_input(lib, items, out)
    loras = [load_lora(lib.abspath(i.rel)) for i in items]
    weights = [i.weight for i in items]
    if rank is not None:
        check_rank(rank, loras)
    tags = {lora.dtype for lora in loras}
    tag = tags.pop() if len(tags) == 1 else "F32"
    family = blend_family(items, loras)
    top_rank = min(rank, max_rank(loras)) if rank is not None else max_rank(loras)
    report = MergeReport()
    total = len(module_union(loras))
    gen = (merge_svd(loras, weights, rank, tag, top_rank, report) if rank is not None
           else merge_exact(loras, weights, tag, top_rank))
    alpha = ("F32", [], encode_floats([float(top_rank)], "F32"))
    tensors = {}
    for done, (module, down, up) in enumerate(gen, 1):
        base = KeyName(module[0], module[1], "down", "kohya")
        tensors[kohya_key(base, family=family)] = (tag, list(down.shape), _bytes(down))
        tensors[kohya_key(_role(base, "up"), family=family)] = (tag, list(up.shape), _bytes(up))
        tensors[kohya_key(_role(base, "alpha"), family=family)] = alpha
        if progress is not None:
            progress(done, total)
    metadata = merge_metadata(items, family, top_rank, rank, command, out)
    write_safetensors(out, tensors, metadata)  # temp file + rename: never half a LoRA
    rel = _enter_catalog(lib, items, out, slot, rank, command)
    return MergeResult(out, rel, report, total, top_rank, time.perf_counter() - start)


def _bytes(arr) -> memoryview:
    return memoryview(arr).cast("B")


def _role(name: KeyName, role: str) -> KeyName:
    return KeyName(name.part, name.path, role, name.style)


def merge_metadata(items: list[BlendItem], family: str | None, top_rank: int,
                   rank: int | None, command: str, out: Path) -> dict[str, str]:
    recipe = [{"name": i.name, "path": i.rel, "weight": i.weight} for i in items]
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(top_rank),
        "ss_network_alpha": str(top_rank),
        "ss_output_name": out.stem,
        "ss_merged_from": ", ".join(i.name for i in items),
        "ss_merge_weights": ", ".join(f"{i.weight:g}" for i in items),
        "ss_merge_method": f"svd-rank-{rank}" if rank is not None else "concat",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.title": out.stem,
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.description": command or "lutnav mix " + " ".join(
            f"{i.name}:{i.weight:g}" for i in items),
        "modelspec.merge_recipe": json.dumps(recipe, ensure_ascii=False),
    }
    if family in SS_BASE:
        meta["ss_base_model_version"] = SS_BASE[family]
        meta["modelspec.architecture"] = ARCHITECTURE[family]
    return meta


def _enter_catalog(lib: Library, items: list[BlendItem], out: Path, slot: CardSlot, rank: int | None,
                   command: str) -> str | None:
    """Write the card (parents, triggers) and index the file when it is inside the library."""
    try:
        rel = lib.relpath(out)
    except PathOutsideLibrary:
        rel = None
    parents = [i.rel for i in items]
    triggers: list[str] = []
    for i in items:
        for word in i.entry.get("trigger_words") or []:
            if word not in triggers:
                triggers.append(word)
    how = f"SVD to rank {rank}" if rank is not None else "exact rank concatenation"
    updates = {
        "title": out.stem,
        "description": f"Blend of {', '.join(f'{i.name} at {i.weight:g}' for i in items)} "
                       f"({how}).",
        "parents": parents,
        "trigger_words": triggers,
        "strength": 1.0,
        "notes": command or None,
    }
    write_card(slot.path, updates, expected_digest=slot.digest, base=slot.values)
    if rel is not None:
        lib.scan_all()
    return rel

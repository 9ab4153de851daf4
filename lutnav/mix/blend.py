"""A blend from spec to catalog entry: resolve, guard, merge, write atomically, card, index.

A mix (:func:`lutnav.mix.runner.run`) calls :func:`resolve_items`, then the
guards, then :func:`write_merged`; nothing here prints. A merged file is a kohya LoRA (the
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

from catalog.cards.card_file import write_card
from catalog.cards.card_slot import CardSlot, claim_card
from catalog.errors import PathOutsideLibrary
from catalog.detect.kohya_names import TE2, KeyName, kohya_key
from catalog.index.library import Library
from catalog.detect.registry import FAMILIES
from catalog.files.safetensors_writer import encode_floats, write_safetensors
from catalog.progress import Progress, Work
from catalog.index.entry import Entry

from .errors import MixError, OutputDirMissing, OutputExists
from .merge import (
    MergeReport,
    check_rank,
    max_rank,
    merge_exact,
    merge_svd,
    module_union,
)


@dataclass
class BlendItem:
    rel: str  # library path
    name: str
    weight: float
    entry: Entry


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
        items.append(BlendItem(rel, entry.name, float(weight), entry))
    return items


def blend_family(items: list[BlendItem], loras: list) -> str | None:
    bases = {i.entry.base_model for i in items} - {None, "unknown"}
    if len(bases) == 1:
        return bases.pop()
    if any(part == TE2 for lora in loras for part, _ in lora.modules):
        return "sdxl"
    return None


def check_output(out: Path, *, overwrite: bool) -> Path:
    """Refuse before any work: wrong suffix, missing folder, existing file without --overwrite,
    a card name that belongs to another file (see :func:`catalog.cards.card_slot.claim_card`)."""
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
                 overwrite: bool = False, command: str = "", to: str | None = None) -> Work[MergeResult]:
    """Merge ``items`` into ``out`` (exact, or SVD to ``rank``), card it and index it.

    Yields a :class:`Progress` per module merged; returns the :class:`MergeResult`.

    Every module gets the same alpha (the top rank) with its own rank/alpha folded
    into ``up``: diffusers turns per-module kohya alphas into patterns that match
    no layer and applies the most common alpha everywhere, so varying alphas would
    load at the wrong scale there. Transformer families keep the inputs' shared spelling
    when their usual client loads it, else ``to`` or the first that does (:mod:`.dit_output`).
    """
    from .tensors import load_lora

    start = time.perf_counter()
    out, slot = claim_output(out, overwrite=overwrite)
    _refuse_an_input(lib, items, out)
    loras = [load_lora(lib.abspath(i.rel)) for i in items]
    weights = [i.weight for i in items]
    if any(lora.names for lora in loras):
        from .dit_output import harmonise

        harmonise(loras, blend_family(items, loras), to)
    if rank is not None:
        check_rank(rank, loras)
    tags = {lora.dtype for lora in loras}
    tag = tags.pop() if len(tags) == 1 else "F32"
    family = blend_family(items, loras)
    top_rank = min(rank, max_rank(loras)) if rank is not None else max_rank(loras)
    report = MergeReport()
    total = len(module_union(loras))
    namer = _namer(loras, family, to)
    with_alpha = namer is None or namer[2]
    gen = (merge_svd(loras, weights, rank, tag, top_rank if with_alpha else None, report) if rank is not None
           else merge_exact(loras, weights, tag, top_rank if with_alpha else None))
    alpha = ("F32", [], encode_floats([float(top_rank)], "F32"))
    tensors = {}
    for done, (module, down, up) in enumerate(gen, 1):
        if namer is None:
            base = KeyName(module[0], module[1], "down", "kohya")
            keys = (kohya_key(base, family=family), kohya_key(_role(base, "up"), family=family),
                    kohya_key(_role(base, "alpha"), family=family))
        else:
            name = namer[0](module)
            keys = (name + namer[1][0], name + namer[1][1], name + ".alpha" if with_alpha else None)
        tensors[keys[0]] = (tag, list(down.shape), _bytes(down))
        tensors[keys[1]] = (tag, list(up.shape), _bytes(up))
        if keys[2] is not None:
            tensors[keys[2]] = alpha
        yield Progress(done, total, module[1])
    metadata = merge_metadata(items, family, top_rank, rank, command, out)
    if namer is not None:
        metadata["lutnav_key_spelling"] = namer[3]
    write_safetensors(out, tensors, metadata)  # temp file + rename: never half a LoRA
    rel = _enter_catalog(lib, items, out, slot, rank, command)
    return MergeResult(out, rel, report, total, top_rank, time.perf_counter() - start)


def _namer(loras: list, family: str | None, to: str | None):
    """For a transformer family: (module -> key stem, (down, up) suffixes, writes alpha, spelling); else None."""
    if not any(lora.names for lora in loras):
        if to not in (None, "kohya"):
            raise MixError(f"--to {to}: SD merges are written with kohya names (every client loads them)")
        return None
    from .dit_output import choose_target, module_key, role_suffixes

    if family is None:
        raise MixError("the base model of these LoRAs is unknown, so lutnav cannot pick key names for the "
                       "merged file", hint="check `lutnav show` for each; merge LoRAs of a family lutnav names")
    target, names = choose_target(loras, family, to)
    written = {}
    for lora in loras:
        for module, d in lora.names.items():
            written.setdefault(module, d)
    down, up, alpha = role_suffixes(target)
    return (lambda module: module_key(module, written.get(module), target, family)), (down, up), alpha, \
        f"{target}:{names}"


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
    fam = FAMILIES.get(family or "")
    if fam is not None and fam.ss_base:
        meta["ss_base_model_version"] = fam.ss_base
        meta["modelspec.architecture"] = fam.architecture
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
        for word in i.entry.trigger_words or []:
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

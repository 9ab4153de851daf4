"""What to sample: one entry's preview, or each LoRA of a blend and the blend itself.

Entry previews are stored beside the file as ``<stem>.preview.png`` (the A1111 /
Civitai convention the catalog already reads), further ones numbered and listed
in the card, then the entry is re-indexed so ``ls`` and the TUI show them.
"""

from __future__ import annotations

from pathlib import Path

from catalog.cards.card_file import read_card, write_card
from catalog.errors import PathOutsideLibrary
from catalog.index.library import Library
from catalog.files.preview_names import free_preview_path, preview_path
from catalog.cards.sidecars import card_path
from catalog.progress import Work

from .errors import MixError
from .guards import entry_problem
from .preview import Settings, Shot, default_prompt, model_for, run_shots


def image_entry(lib: Library, name: str) -> tuple[str, dict, Path]:
    """Resolve ``name`` to an image LoRA file that diffusers can sample; refuse the rest."""
    rel = lib.resolve(name)
    entry = lib.get(rel)
    problem = entry_problem(entry)
    if problem:
        raise MixError(problem)
    if entry.base_model == "llm" or entry.kind == "folder":
        raise MixError(f"{entry.name} is an LLM adapter; previews are images",
                       hint="preview image LoRAs (SD1/SD2/SDXL)")
    return rel, entry, lib.abspath(rel)


def preview_entry(lib: Library, name: str, s: Settings, *,
                  model: str | None = None) -> Work[list[Path]]:
    """Sample ``name`` at its card strength and store the image as one of its previews."""
    rel, entry, file = image_entry(lib, name)
    base_model = model_for(lib, entry.base_model, model)
    weight = entry.strength if entry.strength is not None else 1.0
    shot = Shot(entry.name, [(file, file.stem, float(weight))], free_preview_path(file, is_folder=False),
                s.prompt or default_prompt([entry]),
                s.negative_prompt or entry.negative_prompt or "")
    paths = yield from run_shots(base_model, [shot], s)
    record_previews(file, paths)
    lib.scan_all()
    return paths


def record_previews(file: Path, paths: list[Path]) -> None:
    """List numbered previews in the card (the conventional one is found without it)."""
    first = preview_path(file, 1, is_folder=False).name
    extra = [p.name for p in paths if p.name != first]
    if not extra:
        return
    card = card_path(file, is_folder=False)
    current, digest = read_card(card)
    previews = list(current.previews or [])
    previews += [p for p in extra if p not in previews]
    write_card(card, {"previews": previews}, expected_digest=digest, base=current.to_dict())


def preview_blend(lib: Library, items: list, s: Settings, *, model: str | None = None,
                  out_dir: Path | None = None, merged: Path | None = None) -> Work[list[Path]]:
    """Each LoRA alone at its weight, then the blend (or the merged file at 1.0)."""
    bases = {i.entry.base_model for i in items} - {"unknown", None}
    base_model = model_for(lib, bases.pop() if len(bases) == 1 else None, model)
    out_dir = Path(out_dir) if out_dir else lib.root / ".lutnav" / "previews"
    out_dir.mkdir(parents=True, exist_ok=True)
    label = "+".join(i.name for i in items)
    prompt = s.prompt or default_prompt([i.entry for i in items])
    negative = s.negative_prompt or ", ".join(
        i.entry.negative_prompt for i in items if i.entry.negative_prompt)
    files = [(lib.abspath(i.rel), Path(i.rel).stem, i.weight) for i in items]
    shots = [Shot(f"{i.name}:{i.weight:g}", [f], out_dir / f"{label}.{i.name}.png", prompt, negative)
             for i, f in zip(items, files)]
    if merged is not None:
        blend_out = free_preview_path(merged, is_folder=False)
        shots.append(Shot(f"merged {merged.stem}", [(merged, merged.stem, 1.0)], blend_out, prompt, negative))
    else:
        shots.append(Shot(f"blend {label}", files, out_dir / f"{label}.blend.png", prompt, negative))
    paths = yield from run_shots(base_model, shots, s)
    if merged is not None:
        record_previews(merged, paths[-1:])
        try:
            lib.relpath(merged)
        except PathOutsideLibrary:  # outside the library: nothing to index
            return paths
        lib.scan_all()
    return paths

"""The XYZ check as one sheet: checkpoints down, weights across, every cell labelled.

:func:`compose_grid` is plain pillow (tested without diffusers); :func:`grid_entry`
renders the cells through :mod:`lutnav.mix.preview` and writes the sheet with the
same ``parameters`` chunk convention as the previews.
"""

from __future__ import annotations

from pathlib import Path

from catalog.index.library import Library
from catalog.progress import Progress, Work

from .errors import MixError

PAD = 8
LABEL_H = 18


def compose_grid(cells: list[list[object]], row_labels: list[str], col_labels: list[str],
                 title: str = ""):
    """A labelled sheet of equally sized images: ``cells[row][col]``."""
    from PIL import Image, ImageDraw

    if not cells or not cells[0]:
        raise ValueError("a grid needs at least one image")
    if len(cells) != len(row_labels) or any(len(r) != len(col_labels) for r in cells):
        raise ValueError("one label per row and per column")
    w, h = cells[0][0].size
    label_w = max(60, 7 * max(len(s) for s in row_labels) + 2 * PAD)
    top = LABEL_H * (2 if title else 1) + PAD
    sheet = Image.new("RGB", (label_w + len(col_labels) * (w + PAD) + PAD,
                              top + len(row_labels) * (h + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD // 2), title, fill="black")
    for c, label in enumerate(col_labels):
        draw.text((label_w + c * (w + PAD) + PAD, top - LABEL_H), label, fill="black")
    for r, (row, label) in enumerate(zip(cells, row_labels)):
        y = top + r * (h + PAD)
        draw.text((PAD, y + h // 2 - 6), label, fill="black")
        for c, image in enumerate(row):
            if image.size != (w, h):
                image = image.resize((w, h))
            sheet.paste(image.convert("RGB"), (label_w + c * (w + PAD) + PAD, y))
    return sheet


def parse_weights(text: str) -> list[float]:
    """``0.4,0.6,0.8`` → floats; refuses empties, words and NaN with the offending item."""
    import math

    out = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise MixError(f"--weights: {item.strip()!r} is not a number",
                           hint="write e.g. --weights 0.4,0.6,0.8,1.0") from None
        if not math.isfinite(value):
            raise MixError(f"--weights: {item.strip()!r} is not a finite number")
        out.append(value)
    return out


def checkpoints_in(folder: Path, lib: Library, base: str | None) -> tuple[list, list[str]]:
    """The models in ``folder`` to use as rows, and a note for each one left out.

    ``folder`` may be one diffusers folder, or hold diffusers folders and
    ``.safetensors`` checkpoints side by side (an A1111 ``models/Stable-diffusion``
    folder); checkpoints of another family than the LoRA's, and pickled ones,
    are skipped with a note rather than failing the sheet.
    """
    from .preview import base_model_at, check_family

    folder = Path(folder)
    models_cfg = (lib.config or {}).get("models") or {}
    if (folder / "model_index.json").is_file():
        return [check_family(base_model_at(folder, models_cfg, lib), base)], []
    if not folder.is_dir():
        raise MixError("checkpoints folder does not exist", path=folder)
    found, notes = [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if path.suffix.lower() in (".ckpt", ".pt", ".bin", ".pth"):
            notes.append(f"skipped {path.name}: pickled checkpoints are never loaded")
            continue
        if not ((path / "model_index.json").is_file() or path.suffix.lower() == ".safetensors"):
            continue
        try:
            model = base_model_at(path, models_cfg, lib)
        except MixError as err:
            notes.append(f"skipped {path.name}: {err.message}")
            continue
        if base in ("sd1", "sd2", "sdxl") and model.family and model.family != base:
            notes.append(f"skipped {path.name}: an {model.family} model, the LoRA is {base}")
            continue
        found.append(model)
    if not found:
        raise MixError(f"no {base or 'usable'} checkpoints (.safetensors files or diffusers folders) inside"
                       + (f" ({'; '.join(notes[:3])})" if notes else ""), path=folder,
                       hint="put the checkpoints to compare there, or pass --model for one")
    return found, notes


def grid_entry(lib: Library, name: str, weights: list[float], settings, *,
               checkpoints: Path | None = None, model: str | None = None,
               out: Path | None = None, note=None) -> Work[Path]:
    """Render ``name`` at each weight on each checkpoint and save the labelled sheet;
    ``note(text)`` hears about checkpoints left out."""
    from .preview import Shot, a1111_parameters, default_prompt, load_pipeline, model_for, render
    from .preview import save_png
    from .sampling import image_entry

    rel, entry, file = image_entry(lib, name)
    if checkpoints:
        models, skipped = checkpoints_in(checkpoints, lib, entry.base_model)
        for text in skipped if note is not None else ():
            note(text)
    else:
        models = [model_for(lib, entry.base_model, model)]
    prompt = settings.prompt or default_prompt([entry])
    negative = settings.negative_prompt or entry.negative_prompt or ""
    out = Path(out) if out else file.with_name(f"{file.stem}.grid.png")
    if not out.parent.is_dir():
        raise MixError(f"folder {out.parent} does not exist", path=out)
    rows, total, done = [], len(models) * len(weights), 0
    for base_model in models:
        pipe = load_pipeline(base_model)
        row = []
        for w in weights:
            shot = Shot(f"{base_model.label} @ {w:g}", [(file, file.stem, w)], out, prompt, negative)
            row.append(render(pipe, shot, settings))
            done += 1
            yield Progress(done, total, shot.label)
        rows.append(row)
    sheet = compose_grid(rows, [m.label for m in models], [f"{file.stem}:{w:g}" for w in weights],
                         title=prompt)
    shot = Shot("grid", [(file, file.stem, weights[0])], out, prompt, negative)
    text = a1111_parameters(shot, settings, ", ".join(m.label for m in models))
    text += f"\nX: weight {','.join(f'{w:g}' for w in weights)}; Y: checkpoint"
    return save_png(sheet, out, text)

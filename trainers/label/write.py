"""Labelling a folder: which images, where the captions go, and never clobbering work by accident.

Captions are written as ``metadata.csv`` (``filename,prompt``, the layout
``lutnav train`` reads first) or as ``.txt`` files beside the images (kohya's
layout).  Existing captions are hand-edited work more often than not, so
anything that would be replaced is listed and nothing is written unless
``overwrite`` is set.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from catalog.progress import Progress, Work
from trainers.errors import Problem, ProblemsError
from trainers.image.dataset import IMAGE_SUFFIXES

FORMATS = ("csv", "txt")


class LabelConflict(ProblemsError, FileExistsError):
    hint = "pass --overwrite to replace them, or label into another format"


@dataclass
class Labelled:
    written: list[Path]
    images: int


def find_images(folder: Path) -> list[Path]:
    """Images directly in ``folder``, or in its kohya ``10_name`` sub-folders when it has those."""
    own = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    subs = sorted(p for d in folder.iterdir() if d.is_dir() and d.name[:1].isdigit()
                  for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return own + subs


def with_trigger(caption: str, trigger: str | None) -> str:
    """``trigger, caption`` — unless the caption already starts with the trigger."""
    caption = caption.strip()
    if not trigger:
        return caption
    if caption.lower().startswith(trigger.lower()):
        return caption
    return f"{trigger}, {caption}" if caption else trigger


def targets(folder: Path, images: list[Path], fmt: str) -> list[Path]:
    return [folder / "metadata.csv"] if fmt == "csv" else [p.with_suffix(".txt") for p in images]


def check_overwrite(folder: Path, images: list[Path], fmt: str, overwrite: bool) -> None:
    existing = [p for p in targets(folder, images, fmt) if p.exists()]
    if existing and not overwrite:
        raise LabelConflict("captions already exist", [Problem(str(p), None, "would be replaced") for p in existing])


def label_folder(folder: Path, caption: Callable[[list[Path]], Iterable[tuple[Path, str]]], *, fmt: str = "csv",
                 trigger: str | None = None, overwrite: bool = False) -> Work[Labelled]:
    """Caption every image of ``folder`` with ``caption``, yielding each image captioned, then
    write the captions in ``fmt`` (all at once: a stopped run leaves the old captions as they were)."""
    images = find_images(folder)
    if not images:
        raise ProblemsError("nothing to label", [Problem(str(folder), None, "no .png/.jpg/.webp images here")])
    check_overwrite(folder, images, fmt, overwrite)
    rows = []
    for n, (path, text) in enumerate(caption(images), 1):
        rows.append((path, with_trigger(text, trigger)))
        yield Progress(n, len(images), path.name)
    if fmt == "csv":
        return Labelled([_write_csv(folder, rows)], len(rows))
    written = []
    for path, text in rows:
        written.append(_atomic_text(path.with_suffix(".txt"), text + "\n"))
    return Labelled(written, len(rows))


def _write_csv(folder: Path, rows: list[tuple[Path, str]]) -> Path:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["filename", "prompt"])
    for path, text in rows:
        out.writerow([path.relative_to(folder).as_posix(), text])
    return _atomic_text(folder / "metadata.csv", buffer.getvalue())


def _atomic_text(path: Path, text: str) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, "utf-8")
    os.replace(partial, path)
    return path

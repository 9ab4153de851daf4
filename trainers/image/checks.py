"""Every check of an image training set, run before any model is loaded.

Errors (missing or undecodable images, an image listed twice, empty captions,
unreadable rows) stop the run and are all raised at once as one
:class:`~trainers.errors.DatasetError`, each naming the file and the row.
Warnings (small images, the same picture under two names, captions the text
encoder will truncate, a trigger word missing, a very small set) are printed
by the plan and training goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainers.errors import DatasetError, Problem
from trainers.image.dataset import Layout, Row

FEW_IMAGES = 10
_SHOWN = 6


@dataclass
class ImageItem:
    """A checked training image: what the trainer and the cache need to know about it."""

    path: Path
    caption: str
    repeats: int
    folder: str
    sha256: str
    width: int
    height: int


@dataclass
class CheckedSet:
    items: list[ImageItem]
    warnings: list[str]


def _where(row: Row) -> str:
    return f"{row.source}:{row.line}" if row.line else row.source


def _rows_text(rows: list[Row]) -> str:
    shown = ", ".join(_where(r) for r in rows[:_SHOWN])
    return shown + (f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else "")


def _probe(path: Path) -> tuple[str, int, int] | str:
    """(sha256, width, height) of an image, or why it cannot be used."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "image file not found"
    except OSError as err:
        return f"cannot read the image ({err.strerror or err})"
    try:
        import io

        with Image.open(io.BytesIO(data)) as img:
            img.load()
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"not a decodable image ({type(err).__name__}: {err}); re-save it or remove it"
    return hashlib.sha256(data).hexdigest(), width, height


def check_dataset(layout: Layout, *, size: tuple[int, int], bucketed: bool, trigger_words: list[str],
                  token_count: Callable[[str], int] | None = None, token_limit: int = 75) -> CheckedSet:
    """Check every row; raise ``DatasetError`` with all errors, else return the items and warnings."""
    problems: list[Problem] = list(layout.problems)
    warnings: list[str] = list(layout.notes)
    items: list[ImageItem] = []
    seen_path: dict[Path, Row] = {}
    seen_hash: dict[str, Row] = {}
    same_picture: list[tuple[Row, Row]] = []
    small, long_rows, no_trigger = [], [], []
    for row in layout.rows:
        where = row.source
        resolved = row.image.resolve() if row.image.exists() else row.image
        if resolved in seen_path:
            problems.append(Problem(where, row.line, f"{row.image.name} is listed twice (first at "
                                    f"{_where(seen_path[resolved])}); remove one of the rows"))
            continue
        seen_path[resolved] = row
        probe = _probe(row.image)
        if isinstance(probe, str):
            problems.append(Problem(where, row.line, f"{row.image}: {probe}"))
            continue
        digest, width, height = probe
        if row.caption is None or not row.caption.strip():
            hint = "write a caption (or `lutnav label` the folder)"
            problems.append(Problem(where, row.line, f"{row.image.name}: empty caption; {hint}"))
            continue
        if digest in seen_hash:
            same_picture.append((row, seen_hash[digest]))
        seen_hash.setdefault(digest, row)
        limit_w, limit_h = size
        short = min(width, height) < min(size) if bucketed else (width < limit_w or height < limit_h)
        if short:
            small.append((row, width, height))
        caption = row.caption.strip()
        if token_count is not None and token_count(caption) > token_limit:
            long_rows.append(row)
        if trigger_words and not any(w.lower() in caption.lower() for w in trigger_words):
            no_trigger.append(row)
        items.append(ImageItem(row.image, caption, row.repeats, row.folder, digest, width, height))
    if problems:
        raise DatasetError(f"the training data ({layout.kind}) has errors", problems)
    if not items:
        raise DatasetError(f"the training data ({layout.kind}) is empty", [Problem(
            layout.rows[0].source if layout.rows else "train_data_dir", None,
            "no images found: put .png/.jpg/.webp images with captions there, or point metadata_path at "
            "a metadata.csv")])
    warnings += _warnings(items, small, same_picture, long_rows, no_trigger, size, token_limit, trigger_words)
    return CheckedSet(items, warnings)


def _warnings(items, small, same_picture, long_rows, no_trigger, size, token_limit, trigger_words) -> list[str]:
    out = []
    for row, width, height in small[:_SHOWN]:
        out.append(f"{_where(row)}: {row.image.name} is {width}x{height}, smaller than the training size "
                   f"{size[0]}x{size[1]}; it will be upscaled (blurry)")
    if len(small) > _SHOWN:
        out.append(f"… and {len(small) - _SHOWN} more images smaller than {size[0]}x{size[1]}")
    for row, first in same_picture:
        out.append(f"{_where(row)}: {row.image.name} is the same picture as {first.image.name} "
                   f"({_where(first)}); it will be seen twice as often")
    if long_rows:
        out.append(f"{len(long_rows)} caption(s) are longer than the text encoder's {token_limit} tokens and "
                   f"will be truncated: {_rows_text(long_rows)}")
    if no_trigger:
        words = " / ".join(repr(w) for w in trigger_words)
        out.append(f"trigger word {words} is missing from {len(no_trigger)} of {len(items)} captions: "
                   f"{_rows_text(no_trigger)} (`lutnav label --trigger` adds it)")
    if len(items) < FEW_IMAGES:
        out.append(f"only {len(items)} images: LoRAs usually need {FEW_IMAGES} or more (50–200 is typical)")
    return out


def tag_frequency(items: list[ImageItem]) -> dict[str, dict[str, int]]:
    """Comma-separated caption tags counted per dataset folder, as kohya's ss_tag_frequency."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        tags = out.setdefault(item.folder, {})
        for tag in item.caption.split(","):
            tag = tag.strip()
            if tag:
                tags[tag] = tags.get(tag, 0) + 1
    return out

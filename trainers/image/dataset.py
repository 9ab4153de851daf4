"""Reading a training set in every layout people use, into one list of rows.

Layouts, in the order they are looked for:

* ``metadata_path`` (or a ``metadata.csv`` / ``metadata.jsonl`` in the data
  folder): one row per image, the file under ``filename`` / ``file_name`` /
  ``image`` and the caption under ``prompt`` / ``text`` / ``caption``;
* kohya folders ``<repeats>_<class word>`` (``10_cat``); ``10-cat`` is read as
  repeats too, and said so, where kohya skips it without a word;
* a flat folder of images with ``.txt`` / ``.caption`` files beside them.

Nothing is judged here beyond what makes a row unreadable; the checks live in
:mod:`trainers.image.checks`, so every problem is reported at once.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from trainers.errors import Problem
from trainers.textfile import json_lines, read_utf8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CAPTION_SUFFIXES = (".txt", ".caption")
FILE_COLUMNS = ("filename", "file_name", "image", "file", "image_path")
TEXT_COLUMNS = ("prompt", "text", "caption")
_KOHYA = re.compile(r"^(\d+)([_-])(.*)$")


@dataclass
class Row:
    """One image and its caption, and where the pair was stated (for messages)."""

    image: Path
    caption: str | None      # None: no caption was found at all
    repeats: int
    folder: str              # dataset name for ss_tag_frequency (kohya: the folder name)
    source: str              # the file that states it (metadata file, caption file or the image)
    line: int | None = None  # row's line in a metadata file


@dataclass
class Layout:
    """What was read, how it was recognised, and what could not be read."""

    kind: str                # "metadata.csv" | "metadata.jsonl" | "kohya folders" | "captions beside images"
    rows: list[Row]
    problems: list[Problem]
    notes: list[str]


def read_dataset(data_dir: Path, metadata: Path | None = None) -> Layout:
    """Read ``data_dir`` (and ``metadata``) in whichever layout it uses."""
    if not data_dir.is_dir():
        return Layout("missing", [], [Problem(str(data_dir), None, "train_data_dir is not a folder")], [])
    if metadata is None:
        for name in ("metadata.csv", "metadata.jsonl"):
            if (data_dir / name).is_file():
                metadata = data_dir / name
                break
    if metadata is not None:
        return _read_metadata(data_dir, metadata)
    kohya = [d for d in sorted(data_dir.iterdir()) if d.is_dir() and _KOHYA.match(d.name)]
    if kohya:
        return _read_kohya(data_dir, kohya)
    rows = [_captioned(p, 1, data_dir.name) for p in _images(data_dir)]
    notes = [f"{d.name}/: not a kohya '<repeats>_<name>' folder, ignored"
             for d in sorted(data_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return Layout("captions beside images", rows, [], notes)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _captioned(image: Path, repeats: int, folder: str, fallback: str | None = None) -> Row:
    for suffix in CAPTION_SUFFIXES:
        side = image.with_suffix(suffix)
        if side.is_file():
            text = side.read_text("utf-8-sig", errors="replace")
            return Row(image, " ".join(text.split()), repeats, folder, str(side))
    return Row(image, fallback, repeats, folder, str(image))


def _read_kohya(data_dir: Path, folders: list[Path]) -> Layout:
    rows, notes = [], []
    for folder in folders:
        repeats, sep, word = _KOHYA.match(folder.name).groups()
        if sep == "-":
            notes.append(f"{folder.name}/: read as {repeats} repeats of '{word}' (kohya itself only "
                         f"reads '{repeats}_{word}' and would skip this folder)")
        count = int(repeats)
        if count == 0:
            notes.append(f"{folder.name}/: 0 repeats, the folder is not trained on")
            continue
        images = _images(folder)
        uncaptioned = 0
        for image in images:
            row = _captioned(image, count, folder.name, fallback=word.replace("_", " ").strip() or None)
            uncaptioned += row.source == str(image)
            rows.append(row)
        if uncaptioned and word:
            notes.append(f"{folder.name}/: {uncaptioned} image(s) without a caption file use the class word "
                         f"'{word}' as caption")
    others = [d.name for d in sorted(data_dir.iterdir())
              if d.is_dir() and not _KOHYA.match(d.name) and not d.name.startswith(".")]
    notes += [f"{name}/: not a kohya '<repeats>_<name>' folder, ignored" for name in others]
    if _images(data_dir):
        notes.append(f"{len(_images(data_dir))} image(s) directly in {data_dir.name}/ are ignored: with kohya "
                     "folders, images go inside them")
    return Layout("kohya folders", rows, [], notes)


def _read_metadata(data_dir: Path, path: Path) -> Layout:
    if not path.is_file():
        return Layout("metadata", [], [Problem(str(path), None, "metadata_path does not exist")], [])
    if path.suffix.lower() in (".jsonl", ".json"):
        rows, problems = _jsonl_rows(path)
        kind = "metadata.jsonl"
    else:
        rows, problems = _csv_rows(path)
        kind = "metadata.csv"
    out = []
    for line, name, caption in rows:
        image = _locate(name, data_dir, path.parent)
        out.append(Row(image, " ".join(caption.split()), 1, data_dir.name, str(path), line))
    return Layout(kind, out, problems, [])


def _locate(name: str, data_dir: Path, meta_dir: Path) -> Path:
    """A row's image: relative to the data folder, else to the metadata file's folder."""
    given = Path(name.strip())
    if given.is_absolute():
        return given
    first = data_dir / given
    if not first.exists() and (meta_dir / given).exists():
        return meta_dir / given
    return first


def _pick(columns: list[str], wanted: tuple[str, ...]) -> int | None:
    low = [c.strip().lower() for c in columns]
    for name in wanted:
        if name in low:
            return low.index(name)
    return None


def _csv_rows(path: Path) -> tuple[list[tuple[int, str, str]], list[Problem]]:
    where = str(path)
    problems: list[Problem] = []
    text = read_utf8(path, problems)
    if text is None:
        return [], problems
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return [], [Problem(where, 1, "empty file: expected a header line `filename,prompt`")]
    fi, ti = _pick(header, FILE_COLUMNS), _pick(header, TEXT_COLUMNS)
    if fi is None or ti is None:
        missing = "an image column (filename / file_name / image)" if fi is None else \
            "a caption column (prompt / text / caption)"
        return [], [Problem(where, 1, f"header {header}: expected {missing}")]
    rows, problems = [], []
    start = reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1
        if not any(field.strip() for field in record):
            continue
        if len(record) <= max(fi, ti):
            problems.append(Problem(where, line, f"{len(record)} field(s), expected {len(header)} "
                                    "(is a caption with a comma missing its quotes?)"))
            continue
        if len(record) > len(header):
            problems.append(Problem(where, line, f"{len(record)} fields, expected {len(header)}: quote "
                                    "captions that contain commas (\"a, b\")"))
            continue
        rows.append((line, record[fi], record[ti]))
    return rows, problems


def _jsonl_rows(path: Path) -> tuple[list[tuple[int, str, str]], list[Problem]]:
    where = str(path)
    rows, problems = [], []
    text = read_utf8(path, problems)
    if text is None:
        return [], problems
    for number, obj in json_lines(where, text, problems):
        if not isinstance(obj, dict):
            problems.append(Problem(where, number, "expected a JSON object {\"file_name\": …, \"text\": …}"))
            continue
        keys = list(obj)
        fi, ti = _pick(keys, FILE_COLUMNS), _pick(keys, TEXT_COLUMNS)
        if fi is None or ti is None or not isinstance(obj[keys[fi]], str):
            problems.append(Problem(where, number, f"keys {keys}: expected \"file_name\" (or filename/image) "
                                    "and \"text\" (or prompt/caption)"))
            continue
        caption = obj[keys[ti]]
        rows.append((number, obj[keys[fi]], caption if isinstance(caption, str) else ""))
    return rows, problems

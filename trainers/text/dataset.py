"""Reading text-training files into rows that remember their file and line.

Every row keeps where it came from, so that a complaint about row 4,312 of a
JSON Lines file says ``med.jsonl:4312``.  Unreadable rows become problems,
not exceptions: the check reports them all at once.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.errors import Problem
from trainers.textfile import json_lines, read_utf8

SUFFIXES = (".jsonl", ".json", ".csv", ".txt")


@dataclass(frozen=True)
class Row:
    path: str
    line: int
    data: dict[str, Any]


def data_files(source: str | Path) -> list[Path]:
    """The files behind a ``train_data`` value: the file itself, or a folder's data files."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


def read_rows(source: str | Path) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    files = data_files(source)
    if Path(source).is_dir() and not files:
        problems.append(Problem(str(source), None, f"no data files ({', '.join(SUFFIXES)}) in this folder"))
    for path in files:
        if not path.is_file():
            problems.append(Problem(str(path), None, "no such file"))
            continue
        suffix = path.suffix.lower()
        if suffix not in SUFFIXES:
            problems.append(Problem(str(path), None, f"unsupported file type; expected one of {', '.join(SUFFIXES)}"))
            continue
        text = read_utf8(path, problems)
        if text is None:
            continue
        reader = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".txt": _txt}[suffix]
        reader(str(path), text, rows, problems)
    return rows, problems


def _jsonl(where: str, text: str, rows: list[Row], problems: list[Problem]) -> None:
    for number, value in json_lines(where, text, problems):
        _add(where, number, value, rows, problems)


def _json(where: str, text: str, rows: list[Row], problems: list[Problem]) -> None:
    """A JSON array of objects; rows get the line where each object starts."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            problems.append(Problem(where, err.lineno, f"not valid JSON ({err.msg})"))
            return
        if isinstance(value, dict) and isinstance(value.get("data"), list):
            for item in value["data"]:
                _add(where, 1, item, rows, problems)
            return
        problems.append(Problem(where, 1, "expected a JSON array of objects (or JSON Lines in a .jsonl file)"))
        return
    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "]":
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            problems.append(Problem(where, err.lineno, f"not valid JSON ({err.msg}); the rest of the file is skipped"))
            return
        _add(where, line, value, rows, problems)
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _csv(where: str, text: str, rows: list[Row], problems: list[Problem]) -> None:
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        problems.append(Problem(where, 1, "no header row (expected e.g. instruction,input,output or text)"))
        return
    start = 2
    for record in reader:
        extra = record.pop(None, None)
        if extra:
            problems.append(Problem(where, start, f"{len(extra)} more value(s) than header columns"))
        data = {k.strip(): v for k, v in record.items() if k is not None and v is not None}
        rows.append(Row(where, start, data))
        start = reader.line_num + 1


def _txt(where: str, text: str, rows: list[Row], problems: list[Problem]) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            rows.append(Row(where, number, {"text": line.rstrip()}))


def _add(where: str, line: int, value: Any, rows: list[Row], problems: list[Problem]) -> None:
    if isinstance(value, dict):
        rows.append(Row(where, line, value))
    else:
        problems.append(Problem(where, line, f"expected a JSON object, got {type(value).__name__}"))

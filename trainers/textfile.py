"""Reading the user's text files — configs, caption tables, training records — the one way.

UTF-8 with or without a byte-order mark (spreadsheet exports add one), and JSON
Lines where each bad line becomes a :class:`Problem` with its line number, so a
check lists every problem of a 10,000-line file at once instead of stopping at
the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainers.errors import Problem


def read_utf8(path: Path, problems: list[Problem]) -> str | None:
    """The file's text with any BOM dropped; ``None`` and a problem naming the first bad byte
    when it is not UTF-8."""
    from catalog.errors import CatalogError
    from catalog.files.durable import open_regular
    from catalog.files.textfile import decode_utf8

    try:
        with open_regular(path) as fh:  # a FIFO in the file's place is refused, never waited on
            return decode_utf8(fh.read())
    except CatalogError:
        problems.append(Problem(str(path), None, "not a regular file (a FIFO, socket or device); not read"))
        return None
    except UnicodeDecodeError as err:
        problems.append(Problem(str(path), None, f"not UTF-8 text (bad byte at offset {err.start}); "
                                "save it as UTF-8"))
        return None


def json_lines(where: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line; a line that is not JSON is a problem."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(Problem(where, number, f"not valid JSON ({err.msg} at column {err.colno})"))
            continue
        yield number, value

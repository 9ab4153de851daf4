"""Where a key is written in a TOML text, for messages that name the line.

tomllib gives values but no positions. :func:`key_lines` follows the lines at
top level only, skipping the insides of multi-line arrays and strings (train
configs: flat ``key = value`` lines); :func:`line_of` finds one key inside the
nth ``[table]`` / ``[[table]]`` or an inline table (mix recipes), :func:`header_line`
that table's own header.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_\-]+))\s*(?:=|\.)""")
_TABLE = re.compile(r"""^\s*\[+\s*([^\]]+?)\s*\]+""")


def key_lines(text: str) -> dict[str, int]:
    """Line number (1-based) of each top-level key and table in a TOML text."""
    found: dict[str, int] = {}
    depth = 0
    in_multiline: str | None = None
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        if depth == 0:
            table = _TABLE.match(line)
            if table and "=" not in line.split("]")[0]:
                in_table = True
                found.setdefault(table.group(1).split(".")[0].strip('"\''), number)
            elif not in_table:
                key = _KEY.match(line)
                if key:
                    found.setdefault(next(g for g in key.groups() if g), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_multiline = quote
        depth += _bracket_balance(line, whole=depth > 0)
        depth = max(depth, 0)
    return found


def _bracket_balance(line: str, *, whole: bool) -> int:
    """Open minus closed brackets outside strings and comments (after the `=` of a key line)."""
    if whole:
        rest = line
    else:
        _, eq, rest = line.partition("=")
        if not eq:
            rest = ""
    balance, quote = 0, None
    for ch in rest:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


def line_of(text: str, key: str, *, table: str | None = None, index: int = 0) -> int | None:
    """1-based line where ``key = …`` is written (inside the ``index``-th ``table``)."""
    lines = text.splitlines()
    start = 0
    if table is not None:
        start = header_line(text, table, index) or 0
    pattern = re.compile(rf"""^\s*(?:["']?{re.escape(key)}["']?)\s*=|[{{,]\s*["']?{re.escape(key)}["']?\s*=""")
    for n in range(start, len(lines)):
        if pattern.search(lines[n]):
            return n + 1
    return None


def header_line(text: str, table: str, index: int = 0) -> int | None:
    """1-based line of the ``index``-th ``[table]`` / ``[[table]]`` header."""
    header = re.compile(rf"^\s*\[{{1,2}}\s*{re.escape(table)}\s*\]{{1,2}}\s*(#.*)?$")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if header.match(line)]
    return hits[index] if len(hits) > index else None

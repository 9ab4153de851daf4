"""Printing for the CLI: JSON, plain tables, progress bars that only show on a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import click
import orjson


def echo_json(data: object) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def interactive() -> bool:
    """Progress bars and colour only on a real terminal (and never under NO_COLOR for colour)."""
    return sys.stderr.isatty()


def color() -> bool:
    return interactive() and not os.environ.get("NO_COLOR")


def table(rows: Iterable[Sequence[object]], headers: Sequence[str], *,
          max_widths: dict[int, int] | None = None) -> None:
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    max_widths = max_widths or {}
    widths = [len(h) for h in headers]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = min(max(widths[i], len(v)), max_widths.get(i, 60))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    click.echo(click.style(line, bold=True) if color() else line)
    for r in rows:
        click.echo("  ".join(_fit(v, w) for v, w in zip(r, widths)).rstrip())


def _fit(value: str, width: int) -> str:
    return value.ljust(width) if len(value) <= width else value[: width - 1] + "…"


@contextmanager
def progress(label: str, total: int | None) -> Iterator[object]:
    """A click progress bar on a terminal; a do-nothing object when piped."""
    if not interactive():
        yield _Quiet()
        return
    with click.progressbar(length=total or 0, label=label, file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        yield bar


class _Quiet:
    pos = 0
    length = 0

    def update(self, n: int, current_item: object = None) -> None:
        self.pos += n

"""Printing for the CLI: JSON, plain tables, progress bars that only show on a terminal."""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import click
import orjson

from catalog.progress import Progress


def echo_json(data: object) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def echo_json_array(items: Iterable[object]) -> None:
    """``echo_json`` of a list, written as the items come: the same bytes, but the first
    rows reach a pipe (``ls --json | head``) before the last is read. A reader that
    stops early (``head``) ends the command quietly."""
    out = click.get_binary_stream("stdout")
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    parts: list[bytes] = []
    first, flush_at = True, 16  # a small first write, so the first rows show at once
    try:
        for item in items:
            parts.append((b"[\n  " if first else b",\n  ") + orjson.dumps(item, option=option).replace(b"\n", b"\n  "))
            first = False
            if len(parts) >= flush_at:
                out.write(b"".join(parts))
                out.flush()
                parts, flush_at = [], 1024
        parts.append(b"[]\n" if first else b"\n]\n")
        out.write(b"".join(parts))
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()


def _quiet_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the exit flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def interactive() -> bool:
    """Progress bars and colour only on a real terminal (and never under NO_COLOR for colour)."""
    return sys.stderr.isatty()


def color() -> bool:
    return interactive() and not os.environ.get("NO_COLOR")


#: categories of characters a terminal acts on instead of showing: controls (newline, escape),
#: format characters (bidi overrides, zero-width), line/paragraph separators, surrogates
_UNSHOWN = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: object) -> str:
    """``text`` as one line that shows what it holds: a file may be called ``new\nline`` or
    carry an escape sequence or a bidi override, and printed raw it would split a line, recolour
    the terminal or read backwards.  Such characters are written as escapes (``\\n``, ``\\x1b``,
    ``\\u202e``); everything else, CJK included, is left as it is."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSHOWN else ch for ch in text)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def table(rows: Iterable[Sequence[object]], headers: Sequence[str], *,
          max_widths: dict[int, int] | None = None) -> None:
    rows = [["" if v is None else shown(v) for v in r] for r in rows]
    max_widths = max_widths or {}
    widths = [cells(h) for h in headers]
    for i, column in enumerate(zip(*rows)):  # one pass per column: 10,000 rows in milliseconds
        widths[i] = min(max(widths[i], max(map(cells, column))), max_widths.get(i, 60))
    line = "  ".join(_fit(h, w) for h, w in zip(headers, widths)).rstrip()
    lines = [click.style(line, bold=True) if color() else line]
    lines += ["  ".join(map(_fit, r, widths)).rstrip() for r in rows]
    try:
        click.echo("\n".join(lines))
    except BrokenPipeError:
        _quiet_stdout()


def human_size(n: int | None, *, compact: bool = False) -> str:
    """Bytes as people read them, in powers of 1024 named as such: "12.3 MiB" (or "12.3M", as
    ``ls -h`` writes it, for a narrow table column). The one size formatter of the CLI and TUI."""
    if n is None:
        return "" if compact else "size unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            label = unit[0] if compact else f" {unit}"
            return f"{size:.0f}{label}" if unit == "B" else f"{size:.1f}{label}"
        size /= 1024
    return ""


def cells(text: str) -> int:
    """Terminal columns ``text`` takes: CJK and other wide characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(value: str, width: int) -> str:
    if value.isascii():  # the common case, in C
        return value.ljust(width) if len(value) <= width else value[:width - 1] + "…"
    if cells(value) <= width:
        return value + " " * (width - cells(value))
    out, used = [], 0
    for ch in value:
        w = cells(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (width - 1 - used)


@contextmanager
def progress(label: str, total: int | None) -> Iterator[object]:
    """A click progress bar on a terminal; a do-nothing object when piped."""
    if not interactive():
        yield _Quiet()
        return
    with click.progressbar(length=total or 0, label=label, file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        yield bar


def run_with_progress(gen, label: str, measure=None):
    """The one CLI renderer of long work: run ``gen`` to its end, drawing its yields as a bar.

    ``gen`` yields :class:`catalog.progress.Progress`; ``measure(step) -> (done,
    total, item)`` reads a step of another shape (``done`` None to skip it).
    Returns the generator's return value.
    """
    measure = measure or _measure
    with progress(label, None) as bar:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            done, total, item = measure(step)
            if total:
                bar.length = total
            if done is not None:
                bar.update(done - bar.pos, item)


def _measure(step: Progress) -> tuple[int, int | None, str]:
    return step.done, step.total, step.item


class _Quiet:
    pos = 0
    length = 0

    def update(self, n: int, current_item: object = None) -> None:
        self.pos += n

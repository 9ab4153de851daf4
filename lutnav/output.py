"""Printing for the CLI: JSON, plain tables, progress bars that only show on a terminal."""

from __future__ import annotations

import os
import shutil
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TextIO, TypeVar

import click
import orjson

from catalog.progress import Progress, Work, drive

T = TypeVar("T")


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


def run_with_progress(work: Work[T], label: str, *, log: bool = False,
                      stream: TextIO | None = None, tty: bool | None = None) -> T:
    """The one CLI renderer of long work: run ``work`` to its end, drawing its
    :class:`~catalog.progress.Progress` as a bar; returns the work's result.

    On a terminal: one line on stderr, ``label [####----] done/total eta item``, drawn
    again as steps come and started afresh when the work's phase changes; a step's note
    is printed above it.  Piped, no bar (no control characters in a log): only the notes,
    and with ``log`` (a training run, a labelling job: long enough that a log of it is
    worth keeping) one plain line every tenth of the work.
    """
    bar = _Bar(label, stream or sys.stderr, interactive() if tty is None else tty, log)
    global _shown
    outer, _shown = _shown, bar
    try:
        return drive(work, bar.show)
    finally:
        _shown = outer
        bar.close()


def pause_progress() -> None:
    """End the bar's line before asking a question in the middle of long work (a pull asks
    for a category after it fetched); the bar draws itself again at the next step."""
    if _shown is not None:
        _shown.close()


class _Bar:
    """What :func:`run_with_progress` has drawn so far."""

    WIDTH = 24  # cells of the bar itself
    EVERY = 0.1  # seconds between redraws: a scan yields faster than a terminal wants

    def __init__(self, label: str, stream: TextIO, tty: bool, log: bool):
        self.label, self.stream, self.tty, self.log = label, stream, tty, log
        self.phase: str | None = None
        self.start = (0, 0.0)  # (done, time) when this phase's first step came
        self.drawn = False  # a bar line is on the screen, not yet ended
        self.current: Progress | None = None  # the latest step, drawn or not
        self.last = 0.0
        self.logged = -1

    def show(self, step: Progress) -> None:
        if step.note:  # a line to keep, above the bar as it stood
            self.close()
            self._write(shown(step.note) + "\n")
            if self.tty and self.current is not None:
                self._draw(self._line(self.current, time.monotonic(), _columns()))
            return
        self.current = step
        now = time.monotonic()
        if step.phase != self.phase:
            self.phase, self.start, self.logged, self.last = step.phase, (step.done, now), -1, 0.0
        if self.tty:
            if now - self.last >= self.EVERY or step.done == step.total:
                self.last = now
                self._draw(self._line(step, now, _columns()))
        elif self.log and step.total and self._due(step):
            self._write(self._line(step, now, None) + "\n")

    def _due(self, step: Progress) -> bool:
        """Every tenth of the work, and its last step; each once."""
        every = max(1, step.total // 10)
        if step.done == self.logged or not (step.done % every == 0 or step.done == step.total):
            return False
        self.logged = step.done
        return True

    def _line(self, step: Progress, now: float, width: int | None) -> str:
        count = f"{step.done}/{step.total}" if step.total else str(step.done)
        if self.tty:  # "scanning: read  [####----]  20/90"
            parts = [f"{self.label}: {step.phase}" if step.phase else self.label]
            if step.total:
                filled = round(self.WIDTH * min(step.done, step.total) / step.total)
                parts.append("[" + "#" * filled + "-" * (self.WIDTH - filled) + "]")
            parts.append(count)
        else:  # a log line: "step 20/90"
            parts = [f"{step.phase or self.label} {count}"]
        if step.item:
            parts.append(shown(step.item))
        first, since = self.start
        if step.total and step.done > first and now > since:
            parts.append(f"eta {clock((now - since) / (step.done - first) * (step.total - step.done))}")
        line = "  ".join(parts)
        return line if width is None or cells(line) < width else _fit(line, width - 1).rstrip()

    def _draw(self, line: str) -> None:
        self._write("\r" + line + "\x1b[K")
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self._write("\n")
            self.drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


#: the bar being drawn now, for :func:`pause_progress`
_shown: _Bar | None = None


def _columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def clock(seconds: float) -> str:
    """A duration as a clock reads it: ``05:07``, ``1:02:03``."""
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"

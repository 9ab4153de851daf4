"""Showing a training run: a live bar on a terminal, a few plain lines in a log.

The loop yields events; :func:`follow` draws them and hands back the loop's
return value.  On a terminal: a bar with step, loss, tokens/s (or images/s)
and ETA.  Piped to a file: one line every tenth of the run and one per save,
no control characters.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any, TextIO

from trainers.loop import NoteEvent, SaveEvent, StepEvent


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def describe_step(e: StepEvent) -> str:
    return (f"step {e.step}/{e.total}  loss {e.loss:.4f}  lr {e.lr:.2e}  "
            f"{e.rate:,.0f} {e.unit}/s  eta {_clock(e.eta)}")


def describe_save(e: SaveEvent) -> str:
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in e.metrics.items())
    return f"saved {e.path}" + (f"  ({metrics})" if metrics else "")


def follow(events: Generator[Any, None, Any], *, stream: TextIO | None = None, tty: bool | None = None) -> Any:
    """Drain ``events`` while showing them; returns the generator's return value."""
    stream = stream or sys.stderr
    tty = stream.isatty() if tty is None else tty
    bar = None
    every = None
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, StepEvent):
                if tty:
                    bar = bar or _bar(event, stream)
                    bar.update(event.step - bar.n)
                    bar.set_postfix_str(f"loss {event.loss:.4f}  {event.rate:,.0f} {event.unit}/s", refresh=False)
                else:
                    every = every or max(1, event.total // 10)
                    if event.step % every == 0 or event.step == event.total:
                        print(describe_step(event), file=stream, flush=True)
            elif isinstance(event, SaveEvent):
                _line(bar, describe_save(event), stream)
            elif isinstance(event, NoteEvent):
                _line(bar, event.text, stream)
    finally:
        if bar is not None:
            bar.close()


def drain(events: Generator[Any, None, Any]) -> Any:
    """Run ``events`` to the end without showing them (processes other than the main one)."""
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return stop.value


def _bar(first: StepEvent, stream: TextIO):
    from tqdm import tqdm

    return tqdm(total=first.total, initial=first.step - 1, desc="training", unit="step", file=stream,
                dynamic_ncols=True)


def _line(bar, text: str, stream: TextIO) -> None:
    if bar is not None:
        bar.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)

"""The one progress protocol: long work is a generator that yields :class:`Progress`.

Merging, baking, sampling previews and grids yield one ``Progress`` per step
and ``return`` their result, so a front end decides how to show them: the CLI
draws one bar (:func:`lutnav.output.run_with_progress`), the TUI's worker
moves its bar and checks for cancel between steps, and a test or a script
that does not care calls :func:`finish`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` steps (``total`` None while unknown), ``item`` the step just done."""

    done: int
    total: int | None
    item: str = ""


#: what a long job is: yields Progress, returns its result
Work = Generator[Progress, None, T]


def finish(work: Generator[object, None, T]) -> T:
    """Run ``work`` to its end without showing anything; its result."""
    while True:
        try:
            next(work)
        except StopIteration as stop:
            return stop.value

"""The one progress protocol: long work is a generator that yields :class:`Progress`.

Scanning, hashing, merging, baking, sampling previews and grids, pulling,
labelling and training yield one ``Progress`` per step and ``return`` their
result, so a front end decides how to show them: the CLI draws one bar
(:func:`lutnav.output.run_with_progress`), the TUI's one worker
(:func:`lutnav.tui.jobs.follow`) moves its bar and checks for cancel between
steps, and a test or a script that does not care calls :func:`finish`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import TypeVar

T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Progress:
    """``done`` of ``total`` steps (``total`` None while unknown), ``item`` the step just done.

    ``phase`` names the stage of work that has several (a scan walks, then reads): ``done``
    and ``total`` count within it, so a bar starts again when it changes.  ``note`` is a
    line worth keeping whatever the front end (a checkpoint saved, a resume): the CLI prints
    it even when no bar is drawn.  A kind of work may subclass this to carry its own figures
    (a training step's loss); front ends read only these fields.
    """

    done: int
    total: int | None
    item: str = ""
    phase: str = ""
    note: str = ""


#: what a long job is: yields Progress, returns its result
Work = Generator[Progress, None, T]


def drive(work: Generator[P, None, T], on_step: Callable[[P], object],
          cancel: Callable[[], bool] | None = None) -> T | None:
    """The one loop over long work: hand each step to ``on_step``; the work's result.

    ``cancel`` is asked between steps; when it says so the work is closed (its
    ``finally`` blocks and temp-file cleanup run) and the result is ``None``.
    """
    while True:
        try:
            step = next(work)
        except StopIteration as stop:
            return stop.value
        on_step(step)
        if cancel is not None and cancel():
            work.close()
            return None


def collect(work: Generator[P, None, T]) -> tuple[list[P], T]:
    """Every step ``work`` yields, and its result: for scripts and tests that look at the steps."""
    steps: list[P] = []
    return steps, drive(work, steps.append)


def finish(work: Generator[object, None, T]) -> T:
    """Run ``work`` to its end without showing anything; its result."""
    return drive(work, _ignore)


def _ignore(step: object) -> None:
    pass


def within(work: Work[T], before: int, total: int | None) -> Work[T]:
    """``work`` as a part of a larger job: its steps counted after ``before`` of ``total``
    (a pull's files, fetched pick after pick, fill one bar)."""
    while True:
        try:
            step = next(work)
        except StopIteration as stop:
            return stop.value
        yield replace(step, done=before + step.done, total=total)

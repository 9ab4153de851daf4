"""The slow jobs the TUI runs in worker threads: a rescan and a preview.

Each takes a callback for its :class:`~catalog.progress.Progress` and a cancel
test, and knows nothing of Textual; the app wires them to its progress bar and
its workers.  Both run through :func:`follow`, the TUI's one way to run long work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from catalog.index.library import Library
from catalog.index.scan import ScanSummary
from catalog.progress import Progress, T, Work, drive

OnStep = Callable[[Progress], None]


def scan(root: Path, on_step: OnStep, *, cancel: Callable[[], bool]) -> ScanSummary:
    """Run ``lib.scan()`` on a connection of this thread's own, reporting each step.

    The scan checks ``cancel`` itself, to write what it read and say it was cancelled.
    Never waits for another process's scan: ``IndexBusy`` comes back at once as
    a message, and the list keeps showing the index as it stands."""
    lib = Library(root)
    try:
        return follow(lib.scan(cancel=cancel, wait=False), on_step)
    finally:
        lib.db.close()


def preview(root: Path, specs: list[str], on_step: OnStep, *,
            cancel: Callable[[], bool]) -> list[Path] | None:
    """Sample images with the code behind ``lutnav preview`` / ``lutnav mix --preview``.

    One spec without a weight previews that entry (stored as its preview image);
    otherwise the specs are a blend, sampled one by one and together.  Returns
    the image paths, or ``None`` when cancelled (checked between images: a
    diffusion step cannot be interrupted from outside).
    """
    from lutnav.mix.preview import Settings, preview_defaults
    from lutnav.mix.sampling import preview_blend, preview_entry
    from lutnav.prompt_tags import parse_specs

    lib = Library(root)
    try:
        parsed = parse_specs(specs)
        settings = preview_defaults(Settings(steps=None, size=None), lib)
        if len(parsed) == 1 and parsed[0].weight is None:
            return follow(preview_entry(lib, parsed[0].name, settings), on_step, cancel)
        from lutnav.mix.blend import resolve_items

        return follow(preview_blend(lib, resolve_items(lib, parsed), settings), on_step, cancel)
    finally:
        lib.db.close()


def follow(work: Work[T], on_step: OnStep, cancel: Callable[[], bool] | None = None) -> T | None:
    """The TUI's one way to run long work: report each :class:`Progress`, stop when cancelled.

    Returns the work's result, or ``None`` when ``cancel`` said so (checked between
    steps; closing the generator lets its ``finally`` blocks and temp-file cleanup
    run).  Work that handles a cancel itself (a scan keeps what it read) is given
    its own test and none here.
    """
    try:
        return drive(work, on_step, cancel)
    finally:
        work.close()

"""The slow jobs the TUI runs in worker threads: a rescan and a preview.

Each takes callbacks for progress and a cancel test, and knows nothing of
Textual; the app wires them to its progress bar and its workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from catalog.index.library import Library
from catalog.index.scan import ScanProgress, ScanSummary


def scan(root: Path, on_step: Callable[[ScanProgress], None], *,
         cancel: Callable[[], bool]) -> ScanSummary:
    """Run ``lib.scan()`` on a connection of this thread's own, reporting each step.

    Never waits for another process's scan: ``IndexBusy`` comes back at once as
    a message, and the list keeps showing the index as it stands."""
    lib = Library(root)
    gen = lib.scan(cancel=cancel, wait=False)
    try:
        while True:
            on_step(next(gen))
    except StopIteration as stop:
        return stop.value
    finally:
        lib.db.close()


class _Cancelled(Exception):
    pass


def preview(root: Path, specs: list[str], on_step: Callable[[str, int, int], None], *,
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

    def progress(done: int, total: int, label: str) -> None:
        on_step(label, done, total)
        if cancel():
            raise _Cancelled

    lib = Library(root)
    try:
        parsed = parse_specs(specs)
        settings = preview_defaults(Settings(steps=None, size=None), lib)
        if len(parsed) == 1 and parsed[0].weight is None:
            return preview_entry(lib, parsed[0].name, settings, progress=progress)
        from lutnav.mix.blend import resolve_items

        return preview_blend(lib, resolve_items(lib, parsed), settings, progress=progress)
    except _Cancelled:
        return None
    finally:
        lib.db.close()

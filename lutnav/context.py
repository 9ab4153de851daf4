"""What every command needs: the library named by ``--library``, indexed."""

from __future__ import annotations

import click

from catalog.library import Library

from .output import run_with_progress


def open_library(ctx: click.Context) -> Library:
    """The library named by ``--library``; raises a one-line error when missing."""
    obj = ctx.find_root().obj
    if "lib" not in obj:
        obj["lib"] = Library(obj["root"])
    return obj["lib"]


def ensure_indexed(lib: Library) -> None:
    """A library that was never scanned is scanned first, quietly."""
    if not (lib.root / ".lutnav" / "catalog.db").exists():
        run_scan_with_progress(lib)


def run_scan_with_progress(lib: Library, **kwargs):
    """A scan with a progress bar on a terminal (quiet when piped); returns its summary."""
    return run_with_progress(lib.scan(**kwargs), "scanning",
                             lambda s: (s.done, s.total, s.path) if s.phase == "read" else (None, 0, None))

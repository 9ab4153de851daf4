"""What every command needs: the library named by ``--library``, indexed."""

from __future__ import annotations

import click

from catalog.library import Library

from .output import run_with_progress


def open_library(ctx: click.Context) -> Library:
    """The library named by ``--library``; raises a one-line error when missing."""
    obj = ctx.find_root().obj
    if "lib" not in obj:
        lib = obj["lib"] = Library(obj["root"])
        lib.on_wait = lambda message: click.echo(message, err=True)
        if lib.read_only:
            click.echo(f"{lib.root}: the index is read-only here — browsing only, edits are off",
                       err=True)
    return obj["lib"]


def ensure_indexed(lib: Library) -> None:
    """A library that was never scanned is scanned first, quietly.

    Never waits for another scan: while one runs, readers see the index as it
    stands, and a library with no index yet is ``IndexBusy`` at once.
    """
    if not lib.index_path.exists() and not lib.read_only:
        run_scan_with_progress(lib, wait=False)


def run_scan_with_progress(lib: Library, **kwargs):
    """A scan with a progress bar on a terminal (quiet when piped); returns its summary."""
    return run_with_progress(lib.scan(**kwargs), "scanning",
                             lambda s: (s.done, s.total, s.path) if s.phase == "read" else (None, 0, None))

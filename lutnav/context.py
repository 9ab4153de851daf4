"""What every command needs: the library named by ``--library``, indexed."""

from __future__ import annotations

import click

from catalog.library import Library

from .output import progress


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
    gen = lib.scan(**kwargs)
    with progress("scanning", None) as bar:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            if step.total and bar.length != step.total:
                bar.length = step.total
            if step.phase == "read":
                bar.update(step.done - bar.pos, step.path)

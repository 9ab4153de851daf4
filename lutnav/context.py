"""What every command needs: the library named by ``--library``, indexed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from catalog.errors import CatalogError, EntryNotFound
from catalog.index.library import Library
from catalog.index.query import is_path_arg

from .output import run_with_progress


def open_library(ctx: click.Context, *, create: bool = False) -> Library:
    """The library named by ``--library``; raises a one-line error when missing.

    ``create``: a verb that adds entries (pull) makes the folder when the user named
    it with ``--library`` — never the default ``./loras`` — and says so.
    """
    obj = ctx.find_root().obj
    if "lib" not in obj:
        root = Path(obj["root"]).expanduser()
        if create and obj.get("explicit") and not root.exists():
            root.mkdir(parents=True)
            click.echo(f"created library {root}", err=True)
        lib = obj["lib"] = Library(root)
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
    return run_with_progress(lib.scan(**kwargs), "scanning")


@dataclass(frozen=True)
class Located:
    """What a verb's NAME-or-PATH argument points at: a file or folder, and its entry if any."""

    path: Path
    lib: Library | None
    rel: str | None  # library-relative path when it is an indexed entry


def locate(ctx: click.Context, text: str) -> Located:
    """Resolve a verb's argument by the one rule (:func:`catalog.index.query.is_path_arg`).

    A path may lie outside the library (convert, check and chat work on any file);
    it must exist. A bare word is an entry name and goes through the catalog.
    """
    if not is_path_arg(text):
        lib = open_library(ctx)
        ensure_indexed(lib)
        rel = lib.resolve(text)
        return Located(lib.abspath(rel), lib, rel)
    path = Path(text).expanduser()
    if not path.exists():
        try:  # a path inside the library, as `ls` prints them (style/ink/x.safetensors)
            lib = open_library(ctx)
            ensure_indexed(lib)
            rel = lib.resolve(text)
            return Located(lib.abspath(rel), lib, rel)
        except CatalogError:
            pass
        raise EntryNotFound("no such file or folder", path=text,
                            hint="a word without '/' is looked up as an entry name; `lutnav ls` lists them")
    try:
        lib = open_library(ctx)
        rel = lib.relpath(path)
    except CatalogError:
        return Located(path, None, None)
    return Located(path, lib, rel)

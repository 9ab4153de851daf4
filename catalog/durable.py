"""Writes that must survive a crash, and whole-file digests.

Every atomic write in lutnav goes through :func:`atomic_write`: temp file in the
same folder → flush → fsync → rename → fsync of the folder (the rename is only
durable once its folder is synced). A reader sees the old file or the new one,
never half of one, and a failed write leaves the old file and no temp file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_path(path: Path) -> Path:
    """A hidden name beside ``path`` for its next version: ``.<name>.<random>.tmp``, short however
    long ``path``'s name is (names run up to 255 bytes)."""
    short = os.fsencode(path.name)[:64].decode("utf-8", "ignore")
    return path.with_name(f".{short}.{secrets.token_hex(6)}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | Path, *, mode: int | None = None, fsync: bool = True,
                 before_replace: Callable[[], None] | None = None) -> Iterator[BinaryIO]:
    """Write ``path`` all at once: yields a binary file (seekable) on a temp file beside it.

    When the block ends normally the data is flushed (and fsynced), the file gets
    ``mode`` (default: what a plain ``open`` would give, i.e. 0o666 less the
    umask), ``before_replace()`` runs (a last check that may raise), and the
    temp file replaces ``path``. On any error the temp file is removed and
    ``path`` is untouched. ``fsync=False`` is for throw-away trees (benchmarks,
    demos) only.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = temp_path(path)
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a whole file, read in chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

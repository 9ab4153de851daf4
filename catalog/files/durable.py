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
import stat
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
    return path.with_name(f"{temp_prefix(path.name)}{secrets.token_hex(6)}.tmp")


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


#: bytes of the target's name kept in a temp file's name: enough to tell whose it is,
#: and short enough that ``.<part>.<random>.tmp`` fits the usual 255-byte name limit
TEMP_NAME_KEEP = 64


def temp_prefix(name: str) -> str:
    """``.<name>.`` for a temp file written beside ``name``, cut to ``TEMP_NAME_KEEP`` bytes.

    A target whose own name is near the file system's limit (240+ bytes) must not
    fail only because its temp name is longer than it is.
    """
    raw = name.encode("utf-8", "surrogateescape")[:TEMP_NAME_KEEP]
    return f".{raw.decode('utf-8', 'ignore')}."


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc``): a folder
    built under a temp name and renamed into place gets the mode a plain ``mkdir`` would give."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask


def open_regular(path: str | Path):
    """Open ``path`` for binary reading only if it is a regular file.

    ``O_NONBLOCK`` keeps the open itself from waiting on a FIFO that took a
    file's place (regular files ignore the flag); anything but a regular file is
    refused before a byte is read.
    """
    from catalog.errors import CatalogError

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CatalogError("not a regular file (a FIFO, socket or device); not read", path=path)
    return os.fdopen(fd, "rb")

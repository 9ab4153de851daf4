"""Small helpers for writes that must survive a crash, and whole-file digests.

Every atomic write in lutnav is temp file → flush → fsync → rename; the rename
is only durable once its folder is synced too, which is what lives here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a whole file, read in chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

"""Where a base model lives: a local path, or a hub id already in the local HF cache.

Training and chat never download: a hub id is resolved to its cached snapshot
first, so the libraries that load it afterwards see a plain folder and make no
network request (some of their probes, e.g. for adapter configs, otherwise do).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from trainers.errors import ModelLoadError


def locate(base_model: str, source: Path | None = None) -> Path:
    """A local path for ``base_model``: the path itself, or the hub id's snapshot in the local cache."""
    path = Path(base_model).expanduser()
    if path.exists():
        return checked(path, source)
    if base_model.count("/") == 1 and not base_model.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download

            found = Path(snapshot_download(base_model, local_files_only=True))
        except Exception as err:  # LocalEntryNotFoundError, or an id the hub library refuses
            raise ModelLoadError(f"base_model {base_model!r} is not a local path and is not in the local "
                                 f"Hugging Face cache ({type(err).__name__})", path=source) from None
        return checked(found, source)
    raise ModelLoadError(f"base_model {base_model!r} does not exist", path=source)


#: how deep and how wide a model folder is looked through (diffusers folders nest one level)
_DEPTH, _MAX_ENTRIES = 3, 20_000


def checked(path: Path, source: Path | None = None) -> Path:
    """Refuse a model folder holding a FIFO, socket or device (through a link or not) before a
    loader opens it: the loaders open every file they want blocking, and would wait forever."""
    pending, seen = [(path, 0)], 0
    while pending:
        folder, depth = pending.pop()
        try:
            info = os.stat(folder)
        except OSError:
            continue  # a dangling link: the loader names what it misses
        if stat.S_ISREG(info.st_mode):
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise ModelLoadError("the base model holds a FIFO, socket or device in place of a file; it is not "
                                 "read", path=folder, hint="replace it by the real file, or point base_model at "
                                 "another folder")
        if depth >= _DEPTH:
            continue
        with contextlib.suppress(OSError):
            for item in os.scandir(folder):
                seen += 1
                if seen > _MAX_ENTRIES:
                    return path
                pending.append((Path(item.path), depth + 1))
    return path

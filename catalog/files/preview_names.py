"""The names of an entry's preview images: the one home for how the nth preview is spelled.

The first preview is ``<stem>.preview.png`` beside a file (the A1111 / Civitai
name the WebUIs show) or ``preview.png`` inside a PEFT folder; the nth after it
is ``<stem>.preview.<n>.png`` (``preview.<n>.png``). Every writer (mix preview,
pull, training hand-off) names previews here. Earlier versions also wrote
``<stem>.preview-<n>.png`` and numbered from 1, so :func:`numbered_previews`
recognises every such spelling and the scanner keeps finding those files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

#: image types a preview may have, in the order the scanner looks for them
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

_NUMBERED = re.compile(r"\.preview[.-]([0-9]{1,4})(\.[A-Za-z]+)\Z")


def preview_path(entry: str | Path, n: int = 1, suffix: str = ".png", *,
                 is_folder: bool | None = None) -> Path:
    """Where the ``n``-th preview (1-based) of ``entry`` goes."""
    if n < 1:
        raise ValueError(f"previews are numbered from 1, not {n}")
    entry = Path(entry)
    folder = os.path.isdir(entry) if is_folder is None else is_folder
    tail = "" if n == 1 else f".{n}"
    if folder:
        return entry / f"preview{tail}{suffix}"
    return entry.with_name(f"{entry.stem}.preview{tail}{suffix}")


def free_preview_path(entry: str | Path, suffix: str = ".png", *,
                      is_folder: bool | None = None) -> Path:
    """The first preview name of ``entry`` that nothing uses yet."""
    n = 1
    while (path := preview_path(entry, n, suffix, is_folder=is_folder)).exists() or path.is_symlink():
        n += 1
    return path


def numbered_previews(names: Iterable[str], stem: str) -> list[str]:
    """The names among ``names`` that are numbered previews of ``stem`` (``preview`` inside a
    PEFT folder), in any spelling ever written: ``.preview.2.png``, ``.preview-2.png``, ``.preview.1.png``.
    Sorted by number, then name."""
    found = []
    for name in names:
        if not name.startswith(stem + "."):
            continue
        match = _NUMBERED.match(name, len(stem))
        if match and match.group(2).lower() in IMAGE_SUFFIXES:
            found.append((int(match.group(1)), name))
    return [name for _, name in sorted(found)]

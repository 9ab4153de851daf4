"""The manifest of a checkpoint: what lutnav wrote there, with the sha256 of each file.

A checkpoint folder may come from anywhere (``resume = "<folder>"`` in a
shared config, or a folder dropped into ``output_dir`` that ``resume =
"auto"`` would pick).  Before a single byte of it is read as training state,
:func:`verify` checks the folder against ``training_state/manifest.json``:

- a pickle-bearing file (``.pkl``, ``.bin``, ``.pt``, …) is refused outright,
  whatever the manifest says: lutnav never writes one;
- every other file must be listed, with the same size and sha256;
- links, FIFOs and devices are refused without being opened.

Each failure is one line naming the file and what to do.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from catalog.files.durable import file_sha256
from trainers.errors import ResumeError

MANIFEST = "manifest.json"
#: suffixes of formats that may hold a pickle (code that runs when loaded)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".pyc", ".npy", ".npz", ".joblib")
#: a manifest larger than this is not one lutnav wrote
MAX_MANIFEST_BYTES = 4 << 20
#: a folder holding more entries than this is not a checkpoint (checked while walking it, so a
#: ``resume`` pointed at a large tree is refused at once instead of walked whole)
MAX_ENTRIES = 10_000
_HINT = ("remove that file if you know where it came from (lutnav never reads it), "
         "or set resume = \"none\" to start over")


def manifest_path(folder: Path, state_dir: str) -> Path:
    return folder / state_dir / MANIFEST


def write(folder: Path, state_dir: str) -> Path:
    """Hash every file under ``folder`` into its manifest (written last, after all else)."""
    target = manifest_path(folder, state_dir)
    files = {}
    for rel in sorted(_walk(folder)):
        if rel == _rel(target, folder):
            continue
        path = folder / rel
        files[rel] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True), "utf-8")
    return target


def verify(folder: Path, state_dir: str) -> None:
    """Raise :class:`ResumeError` unless ``folder`` holds exactly what its manifest lists."""
    target = manifest_path(folder, state_dir)
    found = _walk(folder, refuse=True)
    for rel in sorted(found):
        if rel.lower().endswith(PICKLE_SUFFIXES):
            raise ResumeError("this checkpoint holds a file lutnav did not write (pickle formats can run code "
                              "when loaded; lutnav never loads them) — the checkpoint is refused",
                              path=shown(folder / rel), hint=_HINT)
    listed = _read(target, folder)
    own = _rel(target, folder)
    for rel in sorted(found):
        if rel != own and rel not in listed:
            raise ResumeError("this checkpoint holds a file lutnav did not write (it is not in the manifest) "
                              "— the checkpoint is refused", path=shown(folder / rel), hint=_HINT)
    for rel, entry in sorted(listed.items()):
        path = folder / rel
        if rel not in found:
            raise ResumeError("a file of this checkpoint is missing (it is in the manifest)", path=shown(path),
                              hint="resume from another checkpoint, or set resume = \"none\" to start over")
        if path.stat().st_size != entry["size"] or file_sha256(path) != entry["sha256"]:
            raise ResumeError("this file changed after lutnav wrote it (its sha256 does not match the manifest) "
                              "— the checkpoint is refused", path=shown(path),
                              hint="resume from another checkpoint, or set resume = \"none\" to start over")


def _read(target: Path, folder: Path) -> dict[str, dict[str, Any]]:
    hint = "resume from a checkpoint this lutnav wrote, or set resume = \"none\" to start over"
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        raise ResumeError("not a checkpoint this lutnav wrote (no training_state/manifest.json; older "
                          "versions saved pickled state, which is no longer loaded)", path=folder,
                          hint=hint) from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
        raise ResumeError("the checkpoint manifest is not a file lutnav wrote", path=target, hint=hint)
    try:
        data = json.loads(target.read_bytes())
        files = data["files"]
        if data.get("format") != 1 or not isinstance(files, dict):
            raise ValueError("unknown manifest format")
        for rel, entry in files.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("size"), int)
                    and isinstance(entry.get("sha256"), str)):
                raise ValueError(f"bad entry for {rel!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as err:
        raise ResumeError(f"the checkpoint manifest is unreadable ({err})".replace("\n", " "), path=target,
                          hint=hint) from None
    return files


def _walk(folder: Path, *, refuse: bool = False) -> set[str]:
    """Relative POSIX paths of the regular files under ``folder``; links and special files are
    refused (when ``refuse``) without being followed or opened."""
    found = set()
    seen = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        seen += len(dirs) + len(files)
        if refuse and seen > MAX_ENTRIES:
            raise ResumeError(f"this folder holds more than {MAX_ENTRIES} files and folders, far more than a "
                              "checkpoint lutnav writes — it is refused", path=shown(folder),
                              hint="point resume at a checkpoint-N folder lutnav wrote, or set resume = \"none\"")
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                if refuse:
                    kind = "a link" if stat.S_ISLNK(mode) else "not a regular file"
                    raise ResumeError(f"this checkpoint holds {kind}, which lutnav never writes — the "
                                      "checkpoint is refused", path=shown(path), hint=_HINT)
                continue
            found.add(_rel(path, folder))
    return found


def shown(path: Path) -> str:
    """The path as the error shows it: quoted when its name holds line breaks or other controls."""
    text = str(path)
    return repr(text) if any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def _rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()

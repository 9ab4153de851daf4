"""Checkpoints on disk: complete or absent, never half-written.

A checkpoint is ``<output_dir>/checkpoint-<step>/``: whatever the task writes
(a PEFT adapter folder, a kohya ``.safetensors``) plus ``training_state/`` —
the resumable state in safetensors and JSON (:mod:`trainers.train_state`;
nothing is pickled) and a manifest of every file with its sha256
(:mod:`trainers.manifest`), checked before anything is read back.
It is assembled in a hidden temp folder and renamed into place, so a crash
or a kill leaves the previous checkpoints intact and never a broken one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from catalog.files.durable import fsync_dir
from trainers import manifest
from trainers.errors import ResumeError
from trainers.train_state import FORMAT, TRAINABLE_FILE  # noqa: F401  (re-exported: where the weights are)

STATE_DIR = "training_state"
STATE_FILE = "lutnav_state.json"
#: a state file larger than this is not one lutnav wrote
MAX_STATE_BYTES = 16 << 20
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"checkpoint-{step}"


def staging_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f".checkpoint-{step}.partial"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-<step>`` folder, oldest first (whoever wrote it: see :func:`find_resume`)."""
    found = []
    if output_dir.is_dir():
        for item in output_dir.iterdir():
            match = _NAME.match(item.name)
            if match and item.is_dir():
                found.append((int(match.group(1)), item))
    return sorted(found)


def read_state(folder: Path) -> dict[str, Any]:
    """The JSON part of a checkpoint's state (call after :func:`verify`)."""
    path = folder / STATE_DIR / STATE_FILE
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise ResumeError("training state is too large to be one lutnav wrote", path=path)
        state = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResumeError("not a lutnav checkpoint (no training state inside)", path=folder) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ResumeError(f"training state is unreadable ({err})", path=path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeError("this checkpoint was written by another lutnav version, in a format this one does "
                          "not read", path=path)
    for key, kind in _STATE_KEYS.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise ResumeError(f"training state key {key!r} is missing or not a {kind.__name__}", path=path)
    if state["processes"] < 1:
        raise ResumeError("training state key 'processes' is below 1", path=path)
    return state


#: what lutnav_state.json must hold, and of which type (checked before any value is used)
_STATE_KEYS = {"step": int, "epoch": int, "processes": int, "micro_steps": int, "fingerprint": dict,
               "optimizer": dict, "scheduler": dict, "metrics": dict}


def verify(folder: Path) -> None:
    """Refuse a checkpoint holding anything lutnav did not write there (see :mod:`trainers.manifest`)."""
    manifest.verify(folder, STATE_DIR)


def write_state(staging: Path, state: dict[str, Any]) -> None:
    path = staging / STATE_DIR / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, "format": FORMAT}, indent=2, sort_keys=True), "utf-8")


def publish(staging: Path, final: Path) -> None:
    """Write the manifest, then make the staged checkpoint visible in one rename
    (replacing one of the same step)."""
    manifest.write(staging, STATE_DIR)
    _fsync_tree(staging)
    old = None
    if os.path.lexists(final):
        old = final.with_name(f".{final.name}.old")
        remove(old)
        os.replace(final, old)
    os.replace(staging, final)
    fsync_dir(final.parent)
    if old is not None:
        remove(old)


def prune(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints lutnav wrote (``keep = 0`` keeps all)."""
    if keep <= 0:
        return []
    removed = []
    ours = [(s, p) for s, p in list_checkpoints(output_dir) if manifest.manifest_path(p, STATE_DIR).is_file()]
    for _, path in ours[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def clean_staging(output_dir: Path) -> None:
    """Remove leftovers of a save that was killed half-way."""
    if output_dir.is_dir():
        for item in output_dir.iterdir():
            if item.name.startswith(".checkpoint-") and item.name.endswith((".partial", ".old")):
                remove(item)


def find_resume(output_dir: Path, resume: str) -> Path | None:
    """The checkpoint to continue from: ``none``, ``auto`` (newest, if any) or a folder —
    verified against its manifest either way, before anything in it is read."""
    if resume == "none":
        return None
    if resume == "auto":
        _refuse_stand_ins(output_dir)
        found = list_checkpoints(output_dir)
        if not found:
            return None
        folder = found[-1][1]
    else:
        folder = Path(resume)
        if not folder.is_dir():
            raise ResumeError("resume names a folder that does not exist", path=folder)
    verify(folder)
    read_state(folder)
    return folder


def _refuse_stand_ins(output_dir: Path) -> None:
    """A ``checkpoint-N`` that is a link or a file is not one lutnav wrote: ``auto`` would
    follow the link out of ``output_dir`` or a later save would replace the file."""
    if not output_dir.is_dir():
        return
    for item in sorted(output_dir.iterdir()):
        if _NAME.match(item.name) and not stat.S_ISDIR(os.lstat(item).st_mode):
            kind = "a link" if item.is_symlink() else "not a folder"
            raise ResumeError(f"{item.name} in the output folder is {kind}, so not a checkpoint lutnav wrote",
                              path=manifest.shown(item),
                              hint="move it out of the output folder, or point resume at a checkpoint folder")


def remove(path: Path) -> None:
    """Remove a leftover of an earlier save: a folder with what is in it, or a link or file in
    its place (only the link itself, never what it points at)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_processes(folder: Path, state: dict[str, Any], *, processes: int, batch_size: int) -> None:
    """A run may resume on another number of processes only with the same global batch
    (``batch_size × processes``): then it continues on the same batches and schedule."""
    saved = int(state.get("processes", processes))
    saved_global = state.get("fingerprint", {}).get("global_batch", batch_size * processes)
    if saved == processes or saved_global == batch_size * processes:
        return
    again = f"run it on {saved} process(es) again (`accelerate launch --num_processes {saved} -m lutnav train …`)"
    other = (f"set batch_size = {saved_global // processes} for {processes}" if saved_global % processes == 0
             else "set resume = \"none\" to start over")
    raise ResumeError(f"the checkpoint was trained on {saved} process(es) × batch_size {saved_global // saved} "
                      f"(global batch {saved_global}); this run has {processes} × batch_size {batch_size} "
                      f"(global batch {batch_size * processes})", path=folder, hint=f"{again}, or {other}")


def check_fingerprint(folder: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to continue a run whose settings or data changed in ways that break it."""
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {now.get(k)!r}" for k in changed[:6])
        raise ResumeError(f"the checkpoint was trained with other settings or data ({detail})", path=folder)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(root))

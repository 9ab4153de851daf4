"""Checkpoints on disk: complete or absent, never half-written.

A checkpoint is ``<output_dir>/checkpoint-<step>/``: whatever the task writes
(a PEFT adapter folder, a kohya ``.safetensors``) plus ``training_state/`` —
accelerate's saved state (optimizer, scheduler, grad scaler, every RNG) and
lutnav's own ``lutnav_state.json`` (step, epoch, fingerprint of the settings).
It is assembled in a hidden temp folder and renamed into place, so a crash
or a kill leaves the previous checkpoints intact and never a broken one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from trainers.errors import ResumeError
from catalog.durable import fsync_dir

STATE_DIR = "training_state"
STATE_FILE = "lutnav_state.json"
TRAINABLE_FILE = "trainable.safetensors"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"checkpoint-{step}"


def staging_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f".checkpoint-{step}.partial"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    found = []
    if output_dir.is_dir():
        for item in output_dir.iterdir():
            match = _NAME.match(item.name)
            if match and (item / STATE_DIR / STATE_FILE).is_file():
                found.append((int(match.group(1)), item))
    return sorted(found)


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_DIR / STATE_FILE
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResumeError("not a lutnav checkpoint (no training state inside)", path=folder) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResumeError(f"training state is unreadable ({err})", path=path) from None


def write_state(staging: Path, state: dict[str, Any]) -> None:
    path = staging / STATE_DIR / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True), "utf-8")


def publish(staging: Path, final: Path) -> None:
    """Make a staged checkpoint visible in one rename (replacing one of the same step)."""
    _fsync_tree(staging)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staging, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prune(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (``keep = 0`` keeps all)."""
    if keep <= 0:
        return []
    removed = []
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def clean_staging(output_dir: Path) -> None:
    """Remove leftovers of a save that was killed half-way."""
    if output_dir.is_dir():
        for item in output_dir.iterdir():
            if item.name.startswith(".checkpoint-") and item.name.endswith((".partial", ".old")):
                shutil.rmtree(item, ignore_errors=True)


def find_resume(output_dir: Path, resume: str) -> Path | None:
    """The checkpoint to continue from: ``none``, ``auto`` (newest, if any) or a folder."""
    if resume == "none":
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    folder = Path(resume)
    if not folder.is_dir():
        raise ResumeError("resume names a folder that does not exist", path=folder)
    read_state(folder)
    return folder


def check_fingerprint(folder: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse to continue a run whose settings or data changed in ways that break it."""
    changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {now.get(k)!r}" for k in changed[:6])
        raise ResumeError(f"the checkpoint was trained with other settings or data ({detail})", path=folder)


def register_state_hooks(accelerator, model) -> None:
    """accelerate saves optimizer, scheduler, scaler and RNG; the loop keeps the model to itself,
    storing only the trainable tensors (a few MB instead of the whole base model)."""

    def on_save(models, weights, output_dir):
        weights.clear()

    def on_load(models, input_dir):
        models.clear()
        load_trainable(accelerator.unwrap_model(model), Path(input_dir) / TRAINABLE_FILE)

    accelerator.register_save_state_pre_hook(on_save)
    accelerator.register_load_state_pre_hook(on_load)


def save_trainable(model, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path))


def load_trainable(model, path: Path) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if missing:
        raise ResumeError(f"{len(missing)} trainable tensors are missing from the checkpoint, e.g. "
                               f"{missing[0]}", path=path)
    for name, tensor in saved.items():
        if name in params:
            params[name].data.copy_(tensor.to(params[name].device))


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

"""The resumable state of a run, written and read without pickle.

Everything a resumed run needs to continue bit for bit — the trainable
tensors, the optimizer's moments, the learning-rate schedule's position,
every random generator, the loss scaler — is split into tensors, which go to
``.safetensors`` files, and scalars, which go to JSON.  Neither format can
carry code, so a checkpoint folder someone else prepared can at worst hold
wrong numbers, never run anything (the manifest in :mod:`trainers.manifest`
catches those too).  ``torch.load`` is never called.

Files in ``<checkpoint>/training_state/``:

- ``trainable.safetensors``   the parameters that train (the adapters)
- ``optimizer.safetensors``   optimizer state tensors, keyed ``<param index>.<name>``
- ``rng-<rank>.safetensors``  one per process: torch CPU/CUDA, numpy and Python generators
- ``lutnav_state.json``       step, epoch, schedule, optimizer groups, scaler, fingerprint
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from trainers.errors import ResumeError, TrainerError

TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
#: bumped when what is stored changes; a checkpoint of another format is refused
FORMAT = 2


def rng_file(rank: int) -> str:
    return f"rng-{rank}.safetensors"


# --- trainable tensors ------------------------------------------------------------------------

def save_trainable(model, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path))


def load_trainable(model, path: Path) -> None:
    saved = _load_tensors(path)
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if missing:
        raise ResumeError(f"{len(missing)} trainable tensors are missing from the checkpoint, e.g. "
                          f"{missing[0]}", path=path)
    for name, tensor in saved.items():
        if name in params:
            if not tensor.is_floating_point():
                raise ResumeError(f"tensor {name} has dtype {tensor.dtype}, not a floating-point type", path=path)
            if params[name].shape != tensor.shape:
                raise ResumeError(f"tensor {name} has shape {tuple(tensor.shape)}, the model expects "
                                  f"{tuple(params[name].shape)}", path=path)
            params[name].data.copy_(tensor.to(params[name].device))


# --- optimizer ----------------------------------------------------------------------------------

def optimizer_state(optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON part) of ``optimizer.state_dict()``."""
    import torch

    saved = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in saved["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().to("cpu").clone().contiguous()
            elif value is None or isinstance(value, (bool, int, float, str)):
                scalars.setdefault(str(index), {})[key] = value
            else:
                raise TrainerError(f"the optimizer keeps a {type(value).__name__} in its state ({key}), which "
                                   "lutnav cannot save without pickle", hint="use optimizer = \"AdamW\"")
    groups = [{k: _jsonable(v, k) for k, v in group.items()} for group in saved["param_groups"]]
    return tensors, {"groups": groups, "scalars": scalars}


def load_optimizer(optimizer, path: Path, part: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        for key, tensor in _load_tensors(path).items():
            index, name = key.split(".", 1)
            _fits(optimizer, tensor, params, int(index), key)
            state.setdefault(int(index), {})[name] = tensor
        for index, values in part["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        current = optimizer.state_dict()["param_groups"]
        groups = [_like(saved, now) for saved, now in zip(part["groups"], current, strict=True)]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except ResumeError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError, RuntimeError) as err:
        raise ResumeError(f"the optimizer state does not fit this run ({_first_line(err)})", path=path) from None


def _fits(optimizer, tensor, params: list, index: int, key: str) -> None:
    """An optimizer state tensor must be a float shaped like its parameter, or a float scalar
    (Adam's ``step``; Adafactor also keeps row and column statistics): the fused kernels index
    memory by the parameter's size, so a tensor of another shape would be read and written out
    of bounds, not refused.  (bitsandbytes keeps quantised blocks, which it checks itself.)"""
    if not 0 <= index < len(params):
        raise ValueError(f"{key}: there is no parameter {index} (the run has {len(params)})")
    if type(optimizer).__module__.startswith("bitsandbytes"):
        return
    shape = tuple(params[index].shape)
    allowed = {shape, ()}
    if type(optimizer).__name__ == "Adafactor":
        allowed |= {shape[:-1], shape[:-2] + shape[-1:]}
    if not tensor.is_floating_point():
        raise ValueError(f"{key}: dtype {tensor.dtype} is not a floating-point type")
    if tuple(tensor.shape) not in allowed:
        raise ValueError(f"{key}: shape {tuple(tensor.shape)}, the parameter has {shape}")


def _like(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the keys and value types of ``now`` (JSON turns tuples such as ``betas``
    into lists: they are given back); anything else is refused rather than trained with."""
    _same_shape(saved, now)
    return {k: tuple(v) if isinstance(now[k], tuple) else v for k, v in saved.items()}


def _same_shape(saved: Any, now: dict[str, Any]) -> None:
    if not isinstance(saved, dict) or set(saved) != set(now):
        raise ValueError(f"expected the keys {sorted(now)}")
    for key, value in now.items():
        kind = list if isinstance(value, tuple) else type(value)
        if value is not None and not isinstance(saved[key], kind) and not (
                isinstance(value, float) and type(saved[key]) is int):
            raise ValueError(f"{key!r} should be a {kind.__name__}")


# --- random generators ----------------------------------------------------------------------

def save_rng(path: Path) -> None:
    """Every generator this process draws from, as tensors plus a few scalars in the header."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    tensors["python"] = torch.tensor(internal, dtype=torch.int64)
    meta = {"numpy": json.dumps([kind, int(pos), int(has_gauss), float(cached)]),
            "python": json.dumps([version, gauss_next])}
    save_file(tensors, str(path), metadata=meta)


def load_rng(path: Path) -> None:
    import numpy as np
    import torch
    from safetensors import safe_open

    tensors = _load_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        kind, pos, has_gauss, cached = json.loads(meta["numpy"])
        version, gauss_next = json.loads(meta["python"])
        torch.set_rng_state(tensors["torch"].to(torch.uint8))
        cuda = [tensors[f"cuda.{i}"] for i in range(sum(k.startswith("cuda.") for k in tensors))]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])
        np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
        random.setstate((version, tuple(int(v) for v in tensors["python"].tolist()), gauss_next))
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError, json.JSONDecodeError) as err:
        raise ResumeError(f"the random generator state is unreadable ({_first_line(err)})", path=path) from None


# --- the JSON part ----------------------------------------------------------------------------

def scheduler_state(scheduler) -> dict[str, Any]:
    return {k: _jsonable(v, k) for k, v in scheduler.state_dict().items()}


def load_scheduler(scheduler, saved: dict[str, Any], path: Path) -> None:
    try:
        _same_shape(saved, scheduler_state(scheduler))
        scheduler.load_state_dict(dict(saved))
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as err:
        raise ResumeError(f"the learning-rate schedule state does not fit this run ({_first_line(err)})",
                          path=path) from None


def _jsonable(value: Any, key: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, key) for k, v in value.items()}
    raise TrainerError(f"training state {key!r} holds a {type(value).__name__}, which lutnav cannot save "
                       "without pickle")


def _load_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ResumeError("a training state file is missing", path=path) from None
    except (SafetensorError, OSError, ValueError) as err:
        raise ResumeError(f"not a readable safetensors file ({_first_line(err)})", path=path) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --- the whole state, as the loop saves and loads it -------------------------------------------

def save(folder: Path, *, accelerator, model, optimizer, scheduler) -> dict[str, Any]:
    """Write this process's part of the state into ``folder``; every process calls it.

    Each process saves its own random generators; the main process also saves
    the tensors all processes share, and returns the JSON part to go into
    ``lutnav_state.json`` (``{}`` elsewhere).
    """
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_rng(folder / rng_file(accelerator.process_index))
    if not accelerator.is_main_process:
        return {}
    save_trainable(accelerator.unwrap_model(model), folder / TRAINABLE_FILE)
    tensors, optimizer_json = optimizer_state(optimizer)
    save_file(tensors, str(folder / OPTIMIZER_FILE))
    scaler = accelerator.scaler
    return {"optimizer": optimizer_json, "scheduler": scheduler_state(scheduler),
            "scaler": {k: _jsonable(v, k) for k, v in scaler.state_dict().items()} if scaler is not None else None,
            "micro_steps": int(accelerator.step), "processes": accelerator.num_processes}


def load(folder: Path, state: dict[str, Any], *, accelerator, model, optimizer, scheduler) -> None:
    """Put a verified checkpoint's state back (the random generators last, as they were saved)."""
    json_path = folder / "lutnav_state.json"
    try:
        load_trainable(accelerator.unwrap_model(model), folder / TRAINABLE_FILE)
        load_optimizer(optimizer, folder / OPTIMIZER_FILE, state["optimizer"])
        load_scheduler(scheduler, state["scheduler"], json_path)
        if accelerator.scaler is not None and state.get("scaler"):
            accelerator.scaler.load_state_dict(state["scaler"])
        accelerator.step = int(state["micro_steps"])
    except (KeyError, TypeError) as err:
        raise ResumeError(f"training state lacks {err}", path=json_path) from None
    own = folder / rng_file(accelerator.process_index)
    if own.is_file():  # absent when resuming on more processes than saved: those keep their seeded state
        load_rng(own)

"""A LoRA file's low-rank factors as numpy arrays, module by module, under one naming.

Merges and bakes need the numbers, not just the header: this is where a kohya
file and a diffusers/PEFT file become the same thing — for every adapted layer a
``down`` and an ``up`` matrix and the alpha that scales them. Names go through
:mod:`catalog.keynames`; alpha comes from the ``.alpha`` tensors, else from
diffusers' ``lora_adapter_metadata`` or a PEFT ``adapter_config.json``, else
alpha = rank (what every loader assumes). Arrays are zero-copy views of a
read-only memory map, so loading two SDXL LoRAs costs page cache, not RSS.
numpy is imported inside the functions (it comes with ``lutnav[train]``).
"""

from __future__ import annotations

import json
import mmap
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.header import read_header, read_scalars
from catalog.keynames import TE1, TE2, UNET, parse_key

from .errors import MergeInputError, MissingExtra

_METADATA_PREFIX = {UNET: "unet", TE1: "text_encoder", TE2: "text_encoder_2"}
FLOAT_TAGS = ("F16", "BF16", "F32", "F64")


def numpy():
    try:
        import numpy as np
    except ImportError:
        raise MissingExtra("merging and baking need numpy, which is not installed") from None
    return np


def storage(tag: str):
    """The numpy dtype that holds a safetensors float dtype's bytes (BF16: uint16)."""
    np = numpy()
    return {"F16": np.float16, "BF16": np.uint16, "F32": np.float32, "F64": np.float64}[tag]


def as_float(arr, tag: str, precision=None):
    """Stored values (``tag`` is the safetensors dtype) as a float array of ``precision``."""
    np = numpy()
    precision = precision or np.float32
    if tag == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(precision, copy=False)
    return arr.astype(precision, copy=False)


def from_float(arr, tag: str):
    """Float values stored as ``tag`` (BF16 rounded to nearest even, as torch does)."""
    np = numpy()
    if tag == "BF16":
        words = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32)
        return ((words + 0x7FFF + ((words >> 16) & 1)) >> 16).astype(np.uint16)
    return np.ascontiguousarray(arr, dtype={"F16": np.float16, "F32": np.float32, "F64": np.float64}[tag])


@dataclass
class Factors:
    """One adapted layer: ΔW = (alpha / rank) · up @ down (conv: down is r×in×kh×kw)."""

    down: Any  # numpy array of the stored values (BF16 as uint16)
    up: Any
    alpha: float
    dtype: str  # safetensors dtype of down/up

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass
class LoraFile:
    path: Path
    modules: dict[tuple[str, str], Factors]
    dtype: str  # the safetensors dtype most of its weights use
    styles: set[str]


def weights_path(path: str | Path) -> Path:
    """A PEFT adapter is a folder; its weights are ``adapter_model.safetensors`` inside."""
    p = Path(path)
    return p / "adapter_model.safetensors" if p.is_dir() else p


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def lora_weights(path: str | Path) -> Path:
    """The weights file of a LoRA given as a file or a PEFT folder, or one line saying why
    ``path`` is not one (missing, a plain folder, a pickle) before anything is read."""
    p = Path(path)
    if p.is_dir():
        if not (p / "adapter_model.safetensors").is_file():
            raise MergeInputError("folder is not a PEFT adapter (no adapter_model.safetensors inside)",
                                  path=p, hint="give a LoRA .safetensors file or a PEFT adapter folder")
        return p / "adapter_model.safetensors"
    if not p.exists():
        raise MergeInputError("no such file", path=p, hint="check the path, or give an entry name")
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise MergeInputError("a pickle file; lutnav never opens pickled weights (they can run code)",
                              path=p, hint="use a .safetensors version of it")
    return p


def load_lora(path: str | Path) -> LoraFile:
    """Every module's factors, keyed ``(part, diffusers path)``; refuses what cannot merge."""
    np = numpy()
    file = weights_path(path)
    header = read_header(file)
    groups: dict[tuple[str, str], dict[str, str]] = {}
    styles: set[str] = set()
    for key in header.tensors:
        name = parse_key(key)
        if name is None:
            raise MergeInputError(f"key {key!r} is not an SD UNet or text-encoder LoRA key", path=file)
        if name.role not in ("down", "up", "alpha"):
            raise MergeInputError(f"key {key!r} has role {name.role!r}; only low-rank "
                                  "down/up pairs can be merged", path=file)
        groups.setdefault(name.module, {})[name.role] = key
        styles.add(name.style)
    if not groups:
        raise MergeInputError("no LoRA modules in this file", path=file)
    stored = read_scalars(header, [r["alpha"] for r in groups.values() if "alpha" in r])
    fallback = _fallback_alphas(Path(path), header.metadata)
    with open(file, "rb") as fh:
        view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if header.file_size else b""

    def array(key: str):
        info = header.tensors[key]
        if info.dtype not in FLOAT_TAGS:
            raise MergeInputError(f"tensor {key!r} is {info.dtype}; LoRA weights are floats", path=file)
        kind = storage(info.dtype)
        count = (info.end - info.start) // np.dtype(kind).itemsize
        flat = np.frombuffer(view, dtype=kind, count=count, offset=header.data_offset + info.start)
        return flat.reshape(info.shape), info.dtype

    modules: dict[tuple[str, str], Factors] = {}
    dtypes: Counter = Counter()
    for module, roles in groups.items():
        if "down" not in roles or "up" not in roles:
            missing = "down" if "down" not in roles else "up"
            raise MergeInputError(f"module {module[1]!r} has no {missing} weight", path=file)
        (down, d_tag), (up, u_tag) = array(roles["down"]), array(roles["up"])
        _check_pair(file, module, down, up, d_tag, u_tag)
        alpha = stored.get(roles.get("alpha", ""))
        alpha = float(alpha) if alpha is not None else fallback(module, int(down.shape[0]))
        modules[module] = Factors(down, up, alpha, d_tag)
        dtypes[d_tag] += 1
    return LoraFile(file, modules, dtypes.most_common(1)[0][0], styles)


def _check_pair(file: Path, module: tuple[str, str], down, up, d_tag: str, u_tag: str) -> None:
    ok = (down.ndim in (2, 4) and up.ndim == down.ndim and up.shape[1] == down.shape[0]
          and (down.ndim == 2 or tuple(up.shape[2:]) == (1, 1)) and d_tag == u_tag)
    if not ok:
        raise MergeInputError(f"module {module[1]!r}: down {d_tag} {list(down.shape)} and up "
                              f"{u_tag} {list(up.shape)} are not a low-rank pair", path=file)


def _fallback_alphas(path: Path, metadata: dict[str, str]):
    """Alpha for modules without a ``.alpha`` tensor: adapter config, then metadata, then rank."""
    configs: dict[str, dict] = {}
    folder_config = path / "adapter_config.json" if path.is_dir() else None
    if folder_config is not None and folder_config.is_file():
        try:
            configs[""] = json.loads(folder_config.read_text("utf-8"))
        except (OSError, ValueError):
            configs[""] = {}
    raw = metadata.get("lora_adapter_metadata")
    if raw:
        try:
            flat = json.loads(raw)
        except ValueError:
            flat = {}
        for key, value in (flat.items() if isinstance(flat, dict) else ()):
            prefix, _, field = key.rpartition(".")
            configs.setdefault(prefix, {})[field] = value

    def alpha_for(module: tuple[str, str], rank: int) -> float:
        part, mpath = module
        cfg = configs.get(_METADATA_PREFIX[part]) or configs.get("") or {}
        for pattern, value in (cfg.get("alpha_pattern") or {}).items():
            if _pattern_hits(pattern, mpath):
                return float(value)
        value = cfg.get("lora_alpha")
        return float(value) if isinstance(value, (int, float)) else float(rank)

    return alpha_for


def _pattern_hits(pattern: str, path: str) -> bool:
    """PEFT's rule: a pattern names a module by its full path, a suffix, or a regex."""
    if path == pattern or path.endswith("." + pattern):
        return True
    try:
        return re.fullmatch(pattern, path) is not None
    except re.error:
        return False

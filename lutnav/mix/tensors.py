"""A LoRA file's low-rank factors as numpy arrays, module by module, under one naming.

Merges and bakes need the numbers, not just the header: this is where a kohya
file and a diffusers/PEFT file become the same thing — for every adapted layer a
``down`` and an ``up`` matrix and the alpha that scales them. Names go through
:mod:`catalog.detect.kohya_names`; alpha comes from the ``.alpha`` tensors, else from
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.detect.dit_keys import DitKey, names_of, parse_dit_key
from catalog.files.header import read_header, read_scalars
from catalog.detect.kohya_names import TE1, TE2, UNET, parse_key

from .errors import MergeInputError, MissingExtra

_METADATA_PREFIX = {UNET: "unet", TE1: "text_encoder", TE2: "text_encoder_2", "transformer": "transformer"}
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
    styles: set[str]  # SD: kohya/kohya-ldm/diffusers; transformer families: "<prefix kind>:<names>"
    family: str | None = None
    names: dict[tuple[str, str], Any] = field(default_factory=dict)  # transformer modules: a DitKey as written


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
    """Every module's factors, keyed ``(part, diffusers path)`` for SD and ``("transformer",
    flattened module)`` for the transformer families; refuses what cannot merge."""
    np = numpy()
    file = weights_path(path)
    header = read_header(file)
    family = _family_of(header, path)
    groups: dict[tuple[str, str], dict[str, str]] = {}
    styles: set[str] = set()
    raw: dict[tuple[str, str], DitKey] = {}
    for key in header.tensors:
        module, role, style = _understood(key, family, file)
        if role in ("hada_t1", "hada_t2", "lokr_t2"):
            raise MergeInputError(f"key {key!r} is a Tucker core of a LyCORIS conv layer; lutnav merges "
                                  "LoHa/LoKr on linear and 1x1 layers only", path=file)
        if role not in ("down", "up", "alpha") and not role.startswith(("hada_", "lokr_")):
            raise MergeInputError(f"key {key!r} has role {role!r}; only low-rank "
                                  "down/up pairs can be merged", path=file)
        groups.setdefault(module, {})[role] = key
        styles.add(style)
        if module[0] == "transformer":
            raw.setdefault(module, parse_dit_key(key))
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
        if any(r.startswith(("hada_", "lokr_")) for r in roles):
            alpha = stored.get(roles.get("alpha", ""))
            modules[module] = _lycoris_factors(file, module, roles, array, None if alpha is None else float(alpha))
            dtypes[modules[module].dtype] += 1
            continue
        if "down" not in roles or "up" not in roles:
            missing = "down" if "down" not in roles else "up"
            raise MergeInputError(f"module {module[1]!r} has no {missing} weight", path=file)
        (down, d_tag), (up, u_tag) = array(roles["down"]), array(roles["up"])
        _check_pair(file, module, down, up, d_tag, u_tag)
        alpha = stored.get(roles.get("alpha", ""))
        alpha = float(alpha) if alpha is not None else fallback(module, int(down.shape[0]))
        modules[module] = Factors(down, up, alpha, d_tag)
        dtypes[d_tag] += 1
    if raw:
        _xlabs_to_original(modules, raw, family)
    return LoraFile(file, modules, dtypes.most_common(1)[0][0], styles, family, raw)


_SD = frozenset({"sd1", "sd2", "sdxl"})
_LOHA = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


def _lycoris_factors(file: Path, module, roles: dict[str, str], array, alpha: float | None) -> Factors:
    """A LoHa or LoKr module as one exact low-rank pair (float32), so it stacks and compresses like a LoRA.

    LoHa: ΔW = (w1a·w1b) ⊙ (w2a·w2b) · α/r = Σᵢⱼ (w1a[:,i]⊙w2a[:,j]) (w1b[i]⊙w2b[j]) · α/r, a pair of
    rank r². LoKr: ΔW = (U₁V₁) ⊗ (U₂V₂) · α/dim = (U₁⊗U₂)(V₁⊗V₂) · α/dim, where a whole factor
    is split as I·W or W·I (whichever is narrower). Both are the dense delta, factored without error.
    """
    np = numpy()

    def get(role: str):
        arr, tag = array(roles[role])
        if arr.ndim != 2:
            raise MergeInputError(f"module {module[1]!r}: {role} is {arr.ndim}-D; lutnav merges LoHa/LoKr on "
                                  "linear and 1x1 layers only", path=file)
        return as_float(arr, tag, np.float32)

    if "hada_w1_a" in roles:
        if not all(r in roles for r in _LOHA):
            raise MergeInputError(f"module {module[1]!r} lacks one of {', '.join(_LOHA)}", path=file)
        w1a, w1b, w2a, w2b = (get(r) for r in _LOHA)
        r = w1b.shape[0]
        up = (w1a[:, :, None] * w2a[:, None, :]).reshape(w1a.shape[0], -1)
        down = (w1b[:, None, :] * w2b[None, :, :]).reshape(-1, w1b.shape[1])
        scale = (alpha if alpha is not None else r) / r
    else:
        (u1, v1, d1), (u2, v2, d2) = _kron_factor(roles, get, "w1"), _kron_factor(roles, get, "w2")
        up, down = np.kron(u1, u2), np.kron(v1, v2)
        dim = d2 or d1
        scale = alpha / dim if alpha is not None and dim else 1.0
    return Factors(np.ascontiguousarray(down, np.float32), np.ascontiguousarray(up, np.float32),
                   scale * down.shape[0], "F32")


def _kron_factor(roles: dict[str, str], get, w: str):
    """(U, V, low rank or None) with U·V the Kronecker factor ``w``."""
    np = numpy()
    if f"lokr_{w}" in roles:
        whole = get(f"lokr_{w}")
        rows, cols = whole.shape
        return (np.eye(rows, dtype=np.float32), whole, None) if rows <= cols else \
            (whole, np.eye(cols, dtype=np.float32), None)
    a, b = get(f"lokr_{w}_a"), get(f"lokr_{w}_b")
    return a, b, b.shape[0]


def _family_of(header, path) -> str | None:
    """The detected base model, which decides whether keys are read with the SD or the DiT rules."""
    from catalog.detect.classify import classify

    config = Path(path) / "adapter_config.json" if Path(path).is_dir() else None
    adapter = json.loads(config.read_text("utf-8")) if config is not None and config.is_file() else None
    family = classify(header, adapter).base_model
    return None if family == "unknown" else family


def _understood(key: str, family: str | None, file: Path) -> tuple[tuple[str, str], str, str]:
    """((part, module), role, style) of one key, under the rules of the file's family."""
    sd_name = parse_key(key) if family in _SD or family is None or key.startswith(("lora_te", "text_encoder")) \
        else None
    if sd_name is not None:
        return sd_name.module, sd_name.role, sd_name.style
    if family in _SD or family == "llm":
        raise MergeInputError(f"key {key!r} is not an SD UNet or text-encoder LoRA key", path=file)
    d = parse_dit_key(key)
    if d is None:
        raise MergeInputError(f"key {key!r} is not a LoRA key lutnav can read (no lora_down/lora_up, "
                              "lora_A/lora_B or .alpha ending)", path=file)
    if family is None:
        raise MergeInputError(f"the base model of this file is unknown, so key {key!r} cannot be placed; "
                              "lutnav merges LoRAs of a family it names (see `lutnav show`)", path=file)
    return ("transformer", d.flat), d.role, f"{d.prefix}:{names_of(d.flat, family)}"


#: XLabs' Flux processors and the original layers they adapt (single blocks: a slice of linear1/linear2)
_XLABS = {"qkv_lora1": "img_attn_qkv", "qkv_lora2": "txt_attn_qkv", "proj_lora1": "img_attn_proj",
          "proj_lora2": "txt_attn_proj", "qkv": "linear1", "proj": "linear2"}


def _xlabs_to_original(modules: dict, raw: dict, family: str | None) -> None:
    """Rename XLabs modules to the original Flux layers, padding single-block factors with zeros (exact).

    linear1 writes q, k, v (3·h) then the MLP input (4·h): the qkv pair's ``up`` gets zero rows
    for the MLP part; linear2 reads the attention output (h) then the MLP (4·h): the proj pair's
    ``down`` gets zero columns for the MLP part. So the merged file speaks the names every client loads.
    """
    np = numpy()
    for module in [m for m in modules if m[0] == "transformer" and names_of(m[1], family or "") == "xlabs"]:
        f = modules.pop(module)
        group, index, layer = _split(module[1])
        layer = layer.removesuffix("_lora") if group == "single_blocks" else layer
        new = (module[0], f"{group}_{index}_{_XLABS[layer]}")
        if group == "single_blocks" and layer == "qkv":
            up = np.zeros((f.up.shape[0] // 3 * 7, f.up.shape[1]), f.up.dtype)
            up[: f.up.shape[0]] = f.up
            f = Factors(f.down, up, f.alpha, f.dtype)
        elif group == "single_blocks" and layer == "proj":
            down = np.zeros((f.down.shape[0], f.down.shape[1] * 5), f.down.dtype)
            down[:, : f.down.shape[1]] = f.down
            f = Factors(down, f.up, f.alpha, f.dtype)
        modules[new] = f
        d = raw.pop(module)
        raw[new] = DitKey("kohya", new[1], d.role)


def _split(flat: str) -> tuple[str, str, str]:
    group, _, rest = flat.partition("_blocks_")
    index, _, layer = rest.partition("_")
    return group + "_blocks", index, layer


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

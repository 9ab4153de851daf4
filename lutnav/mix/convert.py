"""Key-name conversion of a LoRA file: kohya ↔ diffusers, tensor bytes copied as they are.

``--to kohya`` gives the names every client loads fully (ComfyUI, A1111/Forge,
diffusers) with the real alpha as ``.alpha`` tensors — taken from the file's
``.alpha`` tensors, diffusers' ``lora_adapter_metadata`` or a PEFT config, else
alpha = rank. ``--to diffusers`` writes ``lora_A``/``lora_B``; diffusers keys
carry no alpha, so where alpha ≠ rank the scale is folded into ``lora_B`` and
every loader (which then assumes alpha = rank) applies the same ΔW. Only that
fold needs numpy; renaming alone is pure Python.

The converted file behaves exactly like its source, so it gets the source's card
fields (trigger words, strength, notes…; not its previews) in a card of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.cards.card_file import write_card
from catalog.cards.card_slot import claim_card
from catalog.files.header import read_header, read_scalars
from catalog.detect.kohya_names import KeyName, diffusers_key, kohya_key, parse_key
from catalog.detect.registry import FAMILIES
from catalog.files.safetensors_writer import encode_floats, write_safetensors

from .errors import MergeInputError, MissingExtra, MixError, OutputDirMissing, OutputExists

TARGETS = ("kohya", "diffusers", "comfyui", "peft")
_SD = ("sd1", "sd2", "sdxl")


@dataclass
class ConvertResult:
    path: Path
    tensors: int
    modules: int
    folded: int  # modules whose alpha/rank scale went into lora_B
    family: str | None
    card: Path | None = None  # the card written beside it (the source's fields)


def default_output(src: Path, to: str) -> Path:
    stem = src.name if src.is_dir() else src.stem
    return src.parent / f"{stem}.{to}.safetensors"


def convert_file(src: str | Path, to: str, out: str | Path | None = None, *,
                 overwrite: bool = False, family: str | None = None) -> ConvertResult:
    """Rewrite ``src`` with ``to`` key names into ``out`` (atomic; never over ``src``)."""
    from catalog.detect.classify import classify
    from .tensors import _fallback_alphas, lora_weights

    if to not in TARGETS:
        raise MixError(f"--to must be one of {', '.join(TARGETS)}, not {to!r}")
    src = Path(src)
    file = lora_weights(src)
    out = Path(out) if out is not None else default_output(src, to)
    if out.resolve() == file.resolve():
        raise MixError("refusing to convert a file onto itself", path=out,
                       hint="give --out another name")
    if not out.parent.is_dir():
        raise OutputDirMissing(f"folder {out.parent} does not exist", path=out)
    if out.exists() and not overwrite:
        raise OutputExists("file exists", path=out)
    slot = claim_card(out, replace=overwrite, is_folder=False)
    header = read_header(file)
    detected = classify(header)
    if detected.base_model not in (*_SD, "unknown", "llm"):
        return _convert_dit(src, to, out, detected.base_model, header.metadata)
    if to not in ("kohya", "diffusers"):
        raise MixError(f"--to {to} is for transformer families (Flux, Qwen-Image, Wan, …); SD LoRAs convert "
                       "--to kohya or --to diffusers", path=src)
    family = family or _family(detected, header)
    groups = _group(file, header)
    alpha_of = _fallback_alphas(src, header.metadata)
    stored = read_scalars(header, [r["alpha"] for r in groups.values() if "alpha" in r])
    tensors: dict[str, tuple] = {}
    folded = 0
    with open(file, "rb") as fh:
        def raw(key: str) -> bytes:
            info = header.tensors[key]
            fh.seek(header.data_offset + info.start)
            return fh.read(info.end - info.start)

        for module, roles in groups.items():
            down_key, up_key = roles["down"], roles["up"]
            d_info, u_info = header.tensors[down_key], header.tensors[up_key]
            rank = d_info.shape[0]
            alpha = stored.get(roles.get("alpha", ""))
            alpha = float(alpha) if alpha is not None else alpha_of(module, rank)
            name = KeyName(module[0], module[1], "down", to)
            if to == "kohya":
                outs = {kohya_key(name, family=family): (d_info, raw(down_key)),
                        kohya_key(_as(name, "up"), family=family): (u_info, raw(up_key))}
                tensors[kohya_key(_as(name, "alpha"), family=family)] = ("F32", [], encode_floats([alpha], "F32"))
            else:
                up_bytes = raw(up_key)
                if abs(alpha - rank) > 1e-6 * rank:
                    up_bytes = fold_scale(up_bytes, u_info.dtype, alpha / rank, file, up_key)
                    folded += 1
                outs = {diffusers_key(name): (d_info, raw(down_key)),
                        diffusers_key(_as(name, "up")): (u_info, up_bytes)}
            for key, (info, data) in outs.items():
                if key in tensors:
                    raise MergeInputError(f"two modules map to the same key {key!r}", path=file)
                tensors[key] = (info.dtype, list(info.shape), data)
    metadata = _metadata(header.metadata, to, family)
    write_safetensors(out, tensors, metadata)
    carried = source_card(src)
    if carried:
        write_card(slot.path, carried, expected_digest=slot.digest, base=slot.values)
    return ConvertResult(out, len(tensors), len(groups), folded, family, slot.path if carried else None)


def source_card(src: Path) -> dict:
    """The card fields of ``src`` from all its sidecars (lutnav card, A1111, README…), less
    its previews, which are files of the source."""
    from catalog.cards.sidecars import read_entry_cards

    fields = read_entry_cards(src, {}, {}).fields
    return {key: value for key, (value, _) in fields.items() if key != "previews"}


def _convert_dit(src: Path, to: str, out: Path, family: str, meta: dict[str, str]) -> ConvertResult:
    """A transformer-family LoRA in the spelling ``to``: names from the registry, alpha kept or folded."""
    from .tensors import as_float, from_float, load_lora

    from .dit_output import choose_target, harmonise, module_key, role_suffixes

    lora = load_lora(src)
    harmonise([lora], family, to)
    target, names = choose_target([lora], family, to)
    down_s, up_s, with_alpha = role_suffixes(target)
    tensors: dict[str, tuple] = {}
    folded = 0
    for module, f in lora.modules.items():
        stem = module_key(module, lora.names.get(module), target, family)
        up = f.up
        if with_alpha:
            tensors[stem + ".alpha"] = ("F32", [], encode_floats([f.alpha], "F32"))
        elif abs(f.alpha - f.rank) > 1e-6 * f.rank:
            up = from_float(as_float(f.up, f.dtype) * (f.alpha / f.rank), f.dtype)
            folded += 1
        for key, arr in ((stem + down_s, f.down), (stem + up_s, up)):
            if key in tensors:
                raise MergeInputError(f"two modules map to the same key {key!r}", path=src)
            tensors[key] = (f.dtype, list(arr.shape), memoryview(arr).cast("B") if arr.flags.c_contiguous
                            else arr.tobytes())
    metadata = {k: v for k, v in meta.items() if k != "lora_adapter_metadata"}
    metadata["lutnav_converted_to"] = f"{target}:{names}"
    fam = FAMILIES[family]
    if fam.ss_base:  # the new spelling may no longer show the family (XLabs names did): say it
        metadata.setdefault("ss_base_model_version", fam.ss_base)
        metadata.setdefault("modelspec.architecture", fam.architecture)
    write_safetensors(out, tensors, metadata)
    return ConvertResult(out, len(tensors), len(lora.modules), folded, family)


def _as(name: KeyName, role: str) -> KeyName:
    return KeyName(name.part, name.path, role, name.style)


def _family(c, header) -> str | None:
    if c.base_model in ("sd1", "sd2", "sdxl"):
        return c.base_model
    if any(k.startswith(("lora_te2_", "text_encoder_2.")) for k in header.tensors):
        return "sdxl"
    return None


def _group(file: Path, header) -> dict[tuple[str, str], dict[str, str]]:
    """Every key understood, or a refusal that names the first one that is not."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for key in header.tensors:
        name = parse_key(key)
        if name is None:
            raise MergeInputError(f"key {key!r} is not an SD UNet or text-encoder LoRA key; "
                                  "lutnav converts SD1/SD2/SDXL LoRAs only", path=file)
        if name.role not in ("down", "up", "alpha"):
            raise MergeInputError(f"key {key!r} ({name.role}) has no equivalent in plain LoRA "
                                  "names; LoHa/LoKr/DoRA files keep their own layout", path=file)
        groups.setdefault(name.module, {})[name.role] = key
    for module, roles in groups.items():
        if "down" not in roles or "up" not in roles:
            raise MergeInputError(f"module {module[1]!r} lacks its {'up' if 'down' in roles else 'down'} "
                                  "weight", path=file)
    if not groups:
        raise MergeInputError("no LoRA modules in this file", path=file)
    return groups


def _metadata(meta: dict[str, str], to: str, family: str | None) -> dict[str, str]:
    out = {k: v for k, v in meta.items() if k != "lora_adapter_metadata"}
    out["lutnav_converted_to"] = to
    if to == "kohya":
        out.setdefault("ss_network_module", "networks.lora")
    else:
        out.setdefault("format", "pt")
    return out


def fold_scale(data: bytes, dtype: str, scale: float, file: Path, key: str) -> bytes:
    """``data`` times ``scale``, in the same dtype (BF16 rounded to nearest even)."""
    try:
        import numpy as np
    except ImportError:
        raise MissingExtra("folding alpha into lora_B needs numpy", path=file) from None
    if dtype in ("F16", "F32", "F64"):
        kind = {"F16": np.float16, "F32": np.float32, "F64": np.float64}[dtype]
        values = np.frombuffer(data, dtype=kind).astype(np.float64) * scale
        return values.astype(kind).tobytes()
    if dtype == "BF16":
        bits = np.frombuffer(data, dtype=np.uint16).astype(np.uint32) << 16
        values = (bits.view(np.float32).astype(np.float64) * scale).astype(np.float32)
        words = values.view(np.uint32)
        rounded = (words + 0x7FFF + ((words >> 16) & 1)) >> 16
        return rounded.astype(np.uint16).tobytes()
    raise MergeInputError(f"tensor {key!r} is {dtype}; only float weights can be scaled", path=file)

"""A LoRA's alpha, from wherever its writer put it.

The scale a loader applies is alpha / rank, so a wrong alpha is a LoRA at the
wrong strength. kohya and LyCORIS store it as a scalar tensor per module (the
tensor is what loaders read, so it is the truth; ``ss_network_alpha`` only
confirms), peft in ``adapter_config.json``, newer diffusers in the header's
``lora_adapter_metadata``; without any of them every loader assumes alpha = rank.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import orjson

from catalog.errors import CatalogError
from catalog.files.header import Header, TensorTable
from catalog.detect.module_keys import LoraKeys

#: alphas read per file, evenly spread over the modules (and a few over the 3x3
#: convs, whose alpha LoCon sets apart): block-wise alphas still show, while a
#: 1,000-module SDXL file costs a couple of dozen small reads on the scan path
ALPHA_READS, CONV_ALPHA_READS = 16, 4


def alpha_from_tensors(header: Header, keys: LoraKeys, read: Callable, rank: int | None, meta: dict[str, str],
                       warnings: list[str]) -> tuple[float, str, float | None] | None:
    """(alpha, source, conv alpha) from the ``.alpha`` scalars; None when the file has none."""
    if not keys.maybe_alpha:
        return None
    picks = _spread(range(len(keys.anchors)), ALPHA_READS) + _spread(sorted(keys.conv), CONV_ALPHA_READS)
    found = [(i, at) for i in sorted(set(picks)) if (at := keys.alpha_at(i)) is not None]
    if not found:
        return None
    sample = [(i, keys.index.names[at]) for i, at in found]
    try:
        values = read(_only(header, keys, [at for _, at in found]), [key for _, key in sample])
    except (CatalogError, OSError) as exc:
        warnings.append(f"the .alpha tensors could not be read ({exc}); alpha unknown")
        return None
    linear = Counter(v for i, key in sample if (v := values.get(key)) is not None and i not in keys.conv)
    convs = Counter(v for i, key in sample if (v := values.get(key)) is not None and i in keys.conv)
    if not (linear or convs):
        warnings.append("the .alpha tensors hold no plain number; alpha unknown")
        return None
    alpha = (linear or convs).most_common(1)[0][0]
    conv_alpha = convs.most_common(1)[0][0] if convs else None
    if len(linear) > 1:
        shown = ", ".join(f"{_num(v)} ×{n}" for v, n in linear.most_common(4))
        warnings.append(f"alpha varies per module ({shown} of {sum(linear.values())} read); "
                        f"showing the most common, {_num(alpha)}")
    dtype = keys.index.dtypes[found[0][1]] if keys.index.dtypes else None
    if dtype in ("I64", "I32") and rank is not None and alpha == rank:
        warnings.append(f"alpha is stored as an integer equal to the rank ({rank}), as diffusers' kohya "
                        "converter writes it whatever alpha was trained; the strength may be off")
    claimed = _float(meta.get("ss_network_alpha"))
    if claimed is not None and not math.isclose(claimed, alpha, rel_tol=1e-3):
        warnings.append(f"ss_network_alpha says {_num(claimed)} but the .alpha tensors hold {_num(alpha)}; "
                        "loaders use the tensors")
    dim = _float(meta.get("ss_network_dim"))
    if dim is not None and rank is not None and dim != rank:
        warnings.append(f"ss_network_dim says {_num(dim)} but the tensors have rank {rank}")
    return alpha, "tensor", conv_alpha


def _only(header: Header, keys: LoraKeys, positions: list[int]) -> Header:
    """The header narrowed to the tensors at ``positions``, so reading them never indexes every name."""
    table, index = header.tensors, keys.index
    names = [index.names[i] for i in positions]
    if hasattr(table, "starts"):
        starts, ends = [table.starts[i] for i in positions], [table.ends[i] for i in positions]
    else:  # a plain name -> TensorInfo mapping
        starts, ends = [table[n].start for n in names], [table[n].end for n in names]
    sub = TensorTable(names, [index.dtypes[i] for i in positions], [index.shapes[i] for i in positions],
                      starts, ends)
    return Header(header.path, header.file_size, header.header_len, sub, {}, fd=header.fd)


def alpha_from_config(config: dict, rank: int | None, warnings: list[str]) -> tuple[float | None, str]:
    """peft's ``lora_alpha`` (and its per-module ``alpha_pattern``)."""
    r = config.get("r")
    if isinstance(r, int) and rank is not None and r != rank and not config.get("rank_pattern"):
        warnings.append(f"adapter_config.json says r={r} but the tensors have rank {rank}")
    pattern = config.get("alpha_pattern")
    if isinstance(pattern, dict) and pattern:
        values = ", ".join(f"{k}: {_num(v)}" for k, v in list(pattern.items())[:3])
        warnings.append(f"alpha varies per module (alpha_pattern {values}{', …' if len(pattern) > 3 else ''}); "
                        "showing lora_alpha")
    if config.get("use_rslora"):
        warnings.append("rsLoRA: the scale is alpha / sqrt(rank), not alpha / rank")
    alpha = config.get("lora_alpha")
    if isinstance(alpha, int | float) and not isinstance(alpha, bool):
        return float(alpha), "adapter_config.json"
    return None, "missing: adapter_config.json has no lora_alpha (peft's default is 8)"


def alpha_from_metadata(meta: dict[str, str], warnings: list[str]) -> tuple[float, str] | None:
    """Newer diffusers' ``lora_adapter_metadata`` header entry (peft config, maybe per component)."""
    raw = meta.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        warnings.append("lora_adapter_metadata in the header is not valid JSON; alpha unknown")
        return None
    if not isinstance(data, dict):
        return None
    found = {k: v for k, v in data.items() if (k == "lora_alpha" or k.endswith(".lora_alpha"))
             and isinstance(v, int | float) and not isinstance(v, bool)}
    if not found:
        return None
    key = next((k for k in ("unet.lora_alpha", "transformer.lora_alpha", "lora_alpha") if k in found),
               next(iter(found)))
    if len(set(found.values())) > 1:
        shown = ", ".join(f"{k.rsplit('.', 1)[0] if '.' in k else 'all'} {_num(v)}" for k, v in found.items())
        warnings.append(f"lora_adapter_metadata gives different alphas ({shown}); showing {key}")
    return float(found[key]), "lora_adapter_metadata"


def _spread(items: Sequence[int], count: int) -> list[int]:
    """``count`` items evenly spread from first to last."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(k * step)] for k in range(count)]


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"

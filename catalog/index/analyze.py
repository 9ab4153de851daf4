"""Reading one entry's weights file into index facts (runs in scan workers).

Everything here must be cheap and picklable: it runs in worker processes on the
cold-scan hot path, and returns a plain dict that the parent merges with the
sidecars and writes in one transaction.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from catalog.files.durable import open_regular
from catalog.errors import CatalogError
from catalog.files.header import read_header
from catalog.files.header_cache import HeaderCache

#: an adapter_config.json larger than this is not a PEFT config
MAX_ADAPTER_CONFIG = 1024 * 1024

#: per-process: files from one trainer share their tensor table byte for byte
_HEADERS = HeaderCache()


def analyze(abs_path: str, kind: str) -> dict:
    """Facts about one entry; a broken file gives ``error`` instead of raising."""
    if kind == "pickle":
        return _pickle_facts()
    weights = Path(abs_path, "adapter_model.safetensors") if kind == "folder" else Path(abs_path)
    try:
        adapter_config = _read_adapter_config(Path(abs_path)) if kind == "folder" else None
        # kept open: the alpha scalars are read through it, not by opening the file again
        header = read_header(weights, _HEADERS, keep_open=True)
    except CatalogError as exc:
        return _broken(str(exc))
    except OSError as exc:
        return _broken(f"{weights}: cannot read ({exc.strerror or exc})")
    from catalog.detect.classify import classify  # imported here so a pickle-only scan stays tiny

    with header:
        c = classify(header, adapter_config)
    sd = c.base_model in ("sd1", "sd2", "sdxl")
    dit = not sd and c.base_model not in ("unknown", "llm") and c.format != "checkpoint"
    if (sd and c.format in ("diffusers", "lycoris")) or (dit and c.format in ("diffusers", "peft")):
        from catalog.detect.clients import client_warning  # only files some client half-ignores pay for it

        line = client_warning(list(header.tensors), c.base_model)
        if line:
            c.warnings.append(line)
    return {
        "format": c.format,
        "network": c.network,
        "base_model": c.base_model,
        "base_model_name": c.base_model_name,
        "base_variant": c.base_variant,
        "arch": c.arch,
        "model_kind": c.model_kind,
        "base_candidates": list(c.base_candidates),
        "evidence": c.evidence,
        "rank": c.rank,
        "alpha": c.alpha,
        "alpha_source": c.alpha_source,
        "dtype": c.dtype,
        "tensor_count": c.tensor_count,
        "parts": list(c.parts),
        "has_conv": int(bool(c.has_conv)),
        "data_size": header.file_size - header.data_offset,
        "header_digest": header.fingerprint,
        "warnings": list(c.warnings),
        "header_fields": c.header_fields,
        "header_sources": c.header_sources,
        "metadata": header.metadata,
        "error": None,
    }


def _pickle_facts() -> dict:
    return {
        "format": "pickle",
        "base_model": "unknown",
        "warnings": ["pickle — not loaded: lutnav never unpickles .ckpt/.pt/.bin files; "
                     "use a .safetensors version of this LoRA"],
        "header_fields": {},
        "header_sources": {},
        "metadata": {},
        "parts": [],
        "error": None,
    }


def _broken(message: str) -> dict:
    return {
        "format": "unknown",
        "base_model": "unknown",
        "warnings": [],
        "header_fields": {},
        "header_sources": {},
        "metadata": {},
        "parts": [],
        "error": message,
    }


def _read_adapter_config(folder: Path) -> dict:
    path = folder / "adapter_config.json"
    with open_regular(path) as fh:
        raw = fh.read(MAX_ADAPTER_CONFIG + 1)
    if len(raw) > MAX_ADAPTER_CONFIG:
        raise CatalogError("adapter_config.json is larger than 1 MB; not a PEFT config", path=path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"adapter_config.json is not valid JSON ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise CatalogError("adapter_config.json must hold a JSON object", path=path)
    return data


def forget() -> None:
    """Release the per-process caches once a scan is over."""
    from catalog.detect.classify import forget as forget_layouts

    _HEADERS.clear()
    forget_layouts()


def cpu_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))

"""Is a downloaded file a LoRA lutnav can use?  Asked of the catalog's own reader.

The header is read with :func:`catalog.files.header.read_header` (which refuses exactly
what the safetensors library refuses) and classified with
:func:`catalog.detect.classify.classify`, so a pull accepts the same files a scan
recognises: full checkpoints, textual-inversion embeddings and tensors with no
LoRA pairs are refused with the reason the classifier found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from catalog.detect.classify import classify
from catalog.errors import SafetensorsError
from catalog.files.header import read_header

from .errors import NotALora

MAX_ADAPTER_CONFIG = 1024 * 1024
NOT_LORA_FORMATS = {"checkpoint", "embedding", "unknown"}


@dataclass
class Verified:
    format: str
    network: str | None
    base_model: str
    rank: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    header_fields: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def verify(weights: Path, adapter_config: Path | None, label: str) -> Verified:
    """The classification of ``weights`` (a file, or a PEFT folder's config + weights)."""
    config = _read_config(adapter_config, label) if adapter_config is not None else None
    path = weights / "adapter_model.safetensors" if weights.is_dir() else weights
    try:
        header = read_header(path)
    except SafetensorsError as exc:
        raise NotALora(f"{label}: not a readable safetensors file ({exc.message})") from None
    c = classify(header, config)
    if c.format in NOT_LORA_FORMATS:
        raise NotALora(f"{label}: not a LoRA ({_reason(c.format, c.warnings)})")
    return Verified(c.format, c.network, c.base_model, c.rank, dict(header.metadata),
                    dict(c.header_fields), list(c.warnings))


def _reason(fmt: str, warnings: list[str]) -> str:
    if fmt == "embedding":
        return "a textual-inversion embedding"
    if fmt == "checkpoint":
        return "a full model checkpoint"
    return warnings[0] if warnings else "no LoRA tensors found"


def _read_config(path: Path, label: str) -> dict:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_ADAPTER_CONFIG + 1)
    try:
        data = orjson.loads(raw) if len(raw) <= MAX_ADAPTER_CONFIG else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise NotALora(f"{label}: adapter_config.json is not a JSON object of at most 1 MB")
    return data


#: first bytes of pickled data: protocol 2+ opcodes, and torch's zip container
_PICKLE_HEADS = tuple(bytes([0x80, proto]) for proto in range(2, 6)) + (b"PK\x03\x04",)


def sidecar_problem(path: Path) -> str | None:
    """Why a carried JSON sidecar must not be copied into the library, or None.

    Sidecars are never loaded as code, but a pickle dressed as ``x.civitai.info``
    sitting in the library is still a loaded gun for the next tool; only what
    parses as the JSON object its name promises is carried over.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(_PICKLE_HEADS):
        return "pickled data (can run code when loaded), not JSON; not copied"
    try:
        parsed = orjson.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return "not a JSON text file; not copied"
    return None if isinstance(parsed, dict) else "not a JSON object; not copied"

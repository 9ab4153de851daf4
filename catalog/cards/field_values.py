"""Card field values: how text and foreign JSON become typed values, and which source wins.

Every source (lutnav's card, the ecosystem's sidecars, the folder README, the
safetensors header) speaks about the same handful of fields in its own spelling.
The readers turn each spelling into a *kind* of value here, so that a range
written ``0.6 ～ 0.8`` in a Chinese README and ``[0.6, 0.8]`` in a card end up
identical, and one merge decides which source wins each field.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

#: Sources from most to least trusted.  Header labels ("modelspec", "kohya ss_*")
#: are not listed: any label not here ranks with ``header``, last.
SOURCE_ORDER: tuple[str, ...] = (
    "card", "a1111", "lora-manager", "civitai", "stability-matrix", "readme", "hub-card", "header",
)

#: Words that mean "no trigger words" (a LoRA that works without one).
NONE_WORDS = frozenset({
    "无", "沒有", "没有", "无需", "不需要", "none", "no", "n/a", "na", "nil", "-", "—", "–",
})

_LIST_SPLIT = re.compile(r"\s*[,，、;；]\s*")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*(?:~|-|–|—|to|至|到|,)\s*({_NUMBER})\s*$", re.IGNORECASE)
_TRAILING_NOTE = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")

#: What each kind of value looks like, for messages ("expected …").
EXPECTED: dict[str, str] = {
    "str": "a text string",
    "float": "a number like 0.7",
    "strlist": "a list of strings (in text: comma-separated, e.g. `mo_shui, ink`)",
    "range": "two numbers low ≤ high, e.g. `0.6~0.8` or [0.6, 0.8]",
    "table": "a table of key = value pairs",
}


def precedence(source: str) -> int:
    """Rank of a source; smaller wins.  Unknown labels are header metadata."""
    try:
        return SOURCE_ORDER.index(source)
    except ValueError:
        return len(SOURCE_ORDER) - 1


def merge_layers(layers: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, tuple[Any, str]]:
    """Pick, for every field, the value of the most trusted source that has one.

    A value of ``None`` means "this source says nothing"; an empty list is a real
    statement ("no trigger words") and wins like any other value.
    """
    ranked = sorted(layers, key=lambda layer: precedence(layer[0]))  # stable: ties keep caller order
    merged: dict[str, tuple[Any, str]] = {}
    for source, values in ranked:
        for name, value in values.items():
            if value is not None and name not in merged:
                merged[name] = (value, source)
    return merged


def split_list(text: str) -> list[str]:
    """Split ``a, b，c、d; e`` into items; a "none" word alone gives ``[]``."""
    text = text.strip()
    if not text or is_none_word(text):
        return []
    return _clean_items(_LIST_SPLIT.split(text))


def _clean_items(items: Iterable[str]) -> list[str]:
    """Trimmed (also of stray commas), empties dropped, first occurrence kept."""
    out: list[str] = []
    for item in items:
        item = item.strip().strip(",，、").strip()
        if item and item not in out:
            out.append(item)
    return out


def is_none_word(text: str) -> bool:
    """True for ``无``, ``none``, ``-`` and the like, also with a note: ``无(全局生效)``."""
    bare = _TRAILING_NOTE.sub("", text.strip())
    return unicodedata.normalize("NFKC", bare).strip().casefold() in NONE_WORDS


def parse_number(text: str) -> float:
    """Parse a finite number, accepting full-width digits and a trailing note in brackets."""
    bare = unicodedata.normalize("NFKC", _TRAILING_NOTE.sub("", text)).strip()
    if not re.fullmatch(_NUMBER, bare):
        raise ValueError(EXPECTED["float"])
    value = float(bare)
    if not math.isfinite(value):
        raise ValueError(EXPECTED["float"])
    return value


def parse_range(text: str) -> list[float]:
    """Parse ``0.6 ~ 0.8`` / ``0.6～0.8`` / ``0.6-0.8`` / ``0.6 to 0.8`` / ``0.6,0.8``."""
    bare = unicodedata.normalize("NFKC", _TRAILING_NOTE.sub("", text)).strip()
    bare = bare.strip("[]() ")
    match = _RANGE.match(bare)
    if not match:
        raise ValueError(EXPECTED["range"])
    return check_range([float(match.group(1)), float(match.group(2))])


def check_range(pair: list[float]) -> list[float]:
    lo, hi = pair
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(EXPECTED["range"])
    if lo > hi:
        raise ValueError(f"{EXPECTED['range']} (low {lo:g} is above high {hi:g})")
    return [lo, hi]


def parse_text(kind: str, text: str) -> Any:
    """Turn human-typed text (README line, ``--set`` value) into a value of ``kind``."""
    if kind == "str":
        return text.strip()
    if kind == "float":
        return parse_number(text)
    if kind == "strlist":
        return split_list(text)
    if kind == "range":
        return parse_range(text)
    raise ValueError(EXPECTED[kind])


def coerce(kind: str, value: Any) -> Any:
    """Check a value decoded from JSON/TOML/YAML and normalise it to ``kind``.

    Foreign files carry the wrong types often enough (``"preferred weight": "abc"``,
    ``"trainedWords": 5``) that every value passes through here; a ``ValueError``
    says what was expected and the caller turns it into a warning.  Empty strings
    and empty text become ``None`` (the source says nothing).
    """
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(EXPECTED["str"])
        return value.strip() or None
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(EXPECTED["float"])
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ValueError(EXPECTED["float"])
            return float(value)
        if isinstance(value, str):
            return parse_number(value) if value.strip() else None
        raise ValueError(EXPECTED["float"])
    if kind == "strlist":
        if isinstance(value, str):
            return split_list(value) if value.strip() else None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(EXPECTED["strlist"])
        return _clean_items(value)
    if kind == "range":
        if isinstance(value, str):
            return parse_range(value)
        if (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            return check_range([float(value[0]), float(value[1])])
        raise ValueError(EXPECTED["range"])
    if kind == "table":
        if not isinstance(value, dict):
            raise ValueError(EXPECTED["table"])
        return value
    raise ValueError(f"unknown field kind {kind!r}")


"""``NAME[:WEIGHT]`` specs and the A1111/Forge ``<lora:name:weight>`` tag line.

One parser for every verb that takes specs (prompt, mix, the TUI basket), so a
bad weight is refused the same way everywhere.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from catalog.errors import CatalogError
from catalog.index.library import Library


class SpecError(CatalogError, ValueError):
    hint = "write NAME or NAME:WEIGHT, e.g. ink_wash_v2:0.7"


@dataclass(frozen=True)
class Spec:
    name: str
    weight: float | None  # None: use the card's strength, else 1.0


def parse_spec(text: str) -> Spec:
    name, sep, raw = text.rpartition(":") if ":" in text else (text, "", "")
    if not sep:
        name = text
    if not name:
        raise SpecError(f"{text!r}: missing the entry name")
    if not sep:
        return Spec(name, None)
    if not raw.strip():
        raise SpecError(f"{text!r}: missing the weight after ':'")
    try:
        weight = float(raw)
    except ValueError:
        raise SpecError(f"{text!r}: weight {raw!r} is not a number") from None
    if not math.isfinite(weight):
        raise SpecError(f"{text!r}: weight must be a finite number, not {raw!r}")
    return Spec(name, weight)


def parse_specs(texts: list[str] | tuple[str, ...]) -> list[Spec]:
    return [parse_spec(t) for t in texts]


def default_weight(lib: Library, rel: str) -> float:
    strength = lib.strength(rel)
    return float(strength) if strength is not None else 1.0


def _unprintable(ch: str) -> bool:
    """Control, format (bidi overrides, zero-width) and line/paragraph separator characters."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def tag_name(name: str) -> str:
    """A file stem made safe inside a tag: newlines, control characters and ``<>:`` become ``_``.

    A name is whatever a file was called; printed raw, ``new\nline`` splits the
    prompt and ``a>b`` closes the tag early.
    """
    return "".join("_" if ch in "<>:" or _unprintable(ch) else ch for ch in name)


def prompt_text(text: str) -> str:
    """Card text (trigger words) made safe in a prompt: one line, and no tag of its own."""
    return "".join(" " if _unprintable(ch) else "" if ch in "<>" else ch for ch in text)


def tag(name: str, weight: float) -> str:
    return f"<lora:{tag_name(name)}:{weight:g}>"


def format_tags(lib: Library, specs: list[Spec]) -> str:
    """Resolve each spec through the index and render the tag line."""
    out = []
    for spec in specs:
        rel = lib.resolve(spec.name)
        weight = spec.weight if spec.weight is not None else default_weight(lib, rel)
        out.append(tag(rel.rsplit("/", 1)[-1].removesuffix(".safetensors"), weight))
    return " ".join(out)

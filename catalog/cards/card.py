"""lutnav's own model card: the typed record, its JSON Schema, and ``--set`` parsing.

The dataclass is the single definition of the card.  The JSON Schema shipped in
``schemas/model-card.schema.json`` is generated from it (``python -m catalog.cards.card``
rewrites the file; a test keeps the two equal), and every reader and writer
checks values through :func:`check_card_dict`, which follows the same field kinds.
Reading and writing card files lives in :mod:`catalog.cards.card_file`.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import dataclass, fields
from typing import Any

from catalog.cards.field_values import EXPECTED, coerce, parse_text
from catalog.errors import CardError
from catalog.files.textfile import loads_toml
from catalog.schema import check_table, check_value, declared, unknown_key_message
from catalog.schema.json_schema import document, schema_text

#: A relative path that stays inside the card's folder (no absolute path, no `..`).
RELATIVE_PATH_PATTERN = r"^(?![/\\]|[A-Za-z]:)(?!(?:.*[/\\])?\.\.(?:[/\\]|$)).+$"


def _doc(text: str, **rules: Any) -> Any:
    return declared(None, text, **rules)


@dataclass(slots=True)
class Card:
    """Everything a person (or lutnav) states about one LoRA; every field optional."""

    title: str | None = _doc("Display name.")
    description: str | None = _doc("What the LoRA does, in a sentence or a paragraph.")
    trigger_words: list[str] | None = _doc("Words to put in the prompt; [] means it needs none.")
    strength: float | None = _doc("Recommended weight, e.g. 0.7.")
    strength_range: tuple[float, float] | None = _doc("Useful weights [low, high], low <= high.")
    negative_prompt: str | None = _doc("Text to add to the negative prompt.")
    notes: str | None = _doc("Usage notes and cautions.")
    themes: list[str] | None = _doc("Subjects it suits, e.g. ['landscape', 'still life'].")
    tags: list[str] | None = _doc("Free search tags.")
    type: str | None = _doc("Kind of LoRA, e.g. 'style transfer' / '风格迁移'.")
    base_model_claim: str | None = _doc(
        "Base model a card or sidecar names (e.g. 'SDXL 1.0'); the catalog detects the real one from shapes."
    )
    source: str | None = _doc("Where it came from: 'repo@revision'.")
    license: str | None = _doc("License name or URL.")
    previews: list[str] | None = _doc("Preview images, relative to the folder holding the card.",
                                      pattern=(RELATIVE_PATH_PATTERN, "relative paths inside the card's folder"))
    parents: list[str] | None = _doc("LoRAs this one was merged from.")
    training: dict[str, Any] | None = _doc("Free training details (steps, rank, learning rate, …).")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Card:
        """Build from values already checked by :func:`check_card_dict`."""
        data = dict(values)
        if data.get("strength_range") is not None:
            data["strength_range"] = tuple(data["strength_range"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Set fields only, in schema order, JSON/TOML-ready (ranges as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _kind(hint: Any) -> str:
    """Map a field's type hint to a value kind of :mod:`catalog.cards.field_values`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    inner = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    origin = typing.get_origin(inner) or inner
    return {str: "str", float: "float", list: "strlist", tuple: "range", dict: "table"}[origin]


_HINTS = typing.get_type_hints(Card)
#: field name → value kind, in card order
FIELD_KINDS: dict[str, str] = {f.name: _kind(_HINTS[f.name]) for f in fields(Card)}
FIELD_DOCS: dict[str, str] = {f.name: f.metadata["doc"] for f in fields(Card)}

#: Spellings people try, pointing at the real key in "did you mean" hints.
_SPELLINGS = {
    "weight": "strength", "trigger": "trigger_words", "triggers": "trigger_words",
    "trigger_word": "trigger_words", "activation_text": "trigger_words", "range": "strength_range",
    "base_model": "base_model_claim", "base": "base_model_claim", "preview": "previews",
    "tag": "tags", "theme": "themes", "negative": "negative_prompt", "name": "title",
}

#: How a key is called in messages.
NOUN = "card field"


def card_schema() -> dict[str, Any]:
    """The card's JSON Schema (draft 2020-12), generated from :class:`Card`."""
    return document(
        Card, schema_id="https://lutnav.dev/schemas/model-card.schema.json", title="lutnav model card",
        description="The <stem>.toml beside a LoRA file (lutnav.toml inside a PEFT folder).")


def card_schema_text() -> str:
    """The exact text of ``schemas/model-card.schema.json``."""
    return schema_text(card_schema())


def _lenient(name: str, value: Any) -> Any:
    """Card values are read as the field's kind (``"0.7"`` is a strength, ``"a, b"`` a list)."""
    return coerce(FIELD_KINDS[name], value)


def unknown_card_key(key: str) -> str:
    return unknown_key_message(Card, key, noun=NOUN, spellings=_SPELLINGS)


def check_field(name: str, value: Any) -> Any:
    """Normalise one card value or raise ``ValueError`` saying what was expected."""
    return check_value(Card, name, value, parse=_lenient)


def check_card_dict(raw: dict[str, Any], text: str | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Split a decoded card into clean values and ``(key, message)`` problems.

    With the card's ``text``, each message starts with the line of its key.
    """
    clean, findings = check_table(Card, raw, text=text, noun=NOUN, spellings=_SPELLINGS, parse=_lenient)
    return clean, [(f.key, str(f)) for f in findings]


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn CLI ``--set key=value`` items into card updates.

    ``key=`` (nothing after ``=``) clears the field (``None``).  Lists split on
    ``,``/``，``/``、``/``;``; ``none``/``无`` gives ``[]``.  Ranges take ``0.6~0.8``
    or ``0.6,0.8``.  ``training.KEY=VALUE`` sets one training detail (VALUE read
    as a TOML value when it is one: ``1e-4``, ``true``, ``"text"``).
    """
    updates: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CardError(f"`--set {item}`: expected KEY=VALUE, e.g. strength=0.7")
        if key.startswith("training."):
            sub = key.removeprefix("training.").strip()
            if not sub:
                raise CardError(f"`--set {item}`: expected training.NAME=VALUE")
            table = updates.setdefault("training", {})
            if not isinstance(table, dict):
                raise CardError(f"`--set {item}`: training is already being cleared in this command")
            table[sub] = _toml_scalar(text) if text.strip() else None
            continue
        if key not in FIELD_KINDS:
            raise CardError(unknown_card_key(key))
        updates[key] = _parse_set_value(key, text)
    return updates


def _parse_set_value(key: str, text: str) -> Any:
    kind = FIELD_KINDS[key]
    if not text.strip():
        return None
    try:
        if kind == "table":
            value = loads_toml(f"v = {text}")["v"]
        else:
            value = parse_text(kind, text)
        return check_field(key, value)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        expected = err if kind != "table" else EXPECTED["table"] + " like {steps = 1000}"
        raise CardError(f"`{key}` = {text.strip()!r}: expected {expected}") from None


def _toml_scalar(text: str) -> Any:
    """``1e-4`` → 0.0001, ``true`` → True, anything that is not TOML → the text."""
    try:
        return loads_toml(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


if __name__ == "__main__":  # regenerate schemas/model-card.schema.json
    from pathlib import Path

    target = Path(__file__).resolve().parents[2] / "schemas" / "model-card.schema.json"
    target.write_text(card_schema_text(), encoding="utf-8")
    print(f"wrote {target}")

"""Declared fields: one declaration per key gives its check, its message and its JSON Schema.

A record read from TOML (the model card, a training config, a mix recipe) is a
dataclass whose fields are made with :func:`declared`.  The type hint says
what a value must be; the metadata adds the documentation, the allowed
choices, the bounds, the aliases and the path rule.  Checking a parsed file
(:mod:`catalog.schema.check`) and writing the JSON Schema
(:mod:`catalog.schema.json_schema`) both read this one declaration, so the
code and the shipped schemas cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

MISSING = dataclasses.MISSING


def declared(default: Any = MISSING, doc: str = "", *, choices: tuple[str, ...] | None = None,
             minimum: float | None = None, maximum: float | None = None,
             exclusive_minimum: float | None = None, exclusive_maximum: float | None = None,
             multiple_of: int | None = None, min_items: int | None = None, min_length: int | None = None,
             pattern: tuple[str, str] | None = None, path: bool = False, aliases: tuple[str, ...] = (),
             schema_default: Any = MISSING) -> Any:
    """A declared field.

    ``choices`` are matched case-insensitively and stored in their canonical
    spelling.  Numeric bounds apply to every number of the value (a pair, a
    list).  ``pattern`` is ``(regex, what it means)``: every string of the value
    must match, and the message says the meaning, not the regex.  ``path``: a
    file path that the reader resolves against the file's folder.  ``aliases``
    are other accepted spellings of the key.  ``schema_default`` overrides the
    default shown in the JSON Schema.
    """
    meta = {
        "doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum,
        "exclusive_minimum": exclusive_minimum, "exclusive_maximum": exclusive_maximum,
        "multiple_of": multiple_of, "min_items": min_items, "min_length": min_length,
        "pattern": pattern, "path": path, "aliases": aliases,
        "schema_default": default if schema_default is MISSING else schema_default,
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared_fields(cls: type) -> list[dataclasses.Field]:
    """The declared fields of a record class, in declaration order (plain fields left out)."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


@cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a record class (annotations are strings here)."""
    return typing.get_type_hints(cls)


def is_required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def options(hint: Any) -> list[Any]:
    """The members of a union hint (``int | None`` → ``[int, None]``), else the hint alone."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return list(typing.get_args(hint))
    return [hint]


def is_record(tp: Any) -> bool:
    """A nested table: a dataclass with declared fields."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def record_of(hint: Any) -> tuple[type | None, bool]:
    """``(record class, is an array of tables)`` for a table-valued hint, else ``(None, False)``."""
    for opt in options(hint):
        if is_record(opt):
            return opt, False
        if typing.get_origin(opt) is list and is_record(typing.get_args(opt)[0]):
            return typing.get_args(opt)[0], True
    return None, False

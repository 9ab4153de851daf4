"""Typed settings: one declaration per config key gives its check, its message and its schema.

A config class is a dataclass whose fields are made with :func:`setting`.  The
type hint says what a value must be; the metadata adds the documentation, the
allowed choices, the range and the aliases.  Loading (:mod:`trainers.config`)
and the JSON Schema (:mod:`trainers.schema`) both read the same declaration,
so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, doc: str = "", *, choices: tuple[str, ...] | None = None,
            minimum: float | None = None, maximum: float | None = None,
            exclusive_minimum: float | None = None, exclusive_maximum: float | None = None,
            path: bool = False, aliases: tuple[str, ...] = (), schema_default: Any = _MISSING) -> Any:
    """A config field.  ``path``: resolved against the config file's folder."""
    meta = {
        "doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum,
        "exclusive_minimum": exclusive_minimum, "exclusive_maximum": exclusive_maximum,
        "path": path, "aliases": aliases,
        "schema_default": default if schema_default is _MISSING else schema_default,
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def config_fields(cls: type) -> list[dataclasses.Field]:
    """The user-facing settings of a config class, in declaration order."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# --- checking -------------------------------------------------------------------


def _options(hint: Any) -> list[Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return list(typing.get_args(hint))
    return [hint]


def describe(hint: Any) -> str:
    """What a value of this type looks like, for "expected …" messages."""
    words = []
    for opt in _options(hint):
        origin = typing.get_origin(opt)
        if opt is type(None):
            continue
        if origin is list:
            words.append(f"a list of {_plain(typing.get_args(opt)[0])}s")
        elif origin is tuple:
            words.append(f"a list of {len(typing.get_args(opt))} {_plain(typing.get_args(opt)[0])}s")
        else:
            words.append(f"{_article(_plain(opt))} {_plain(opt)}")
    return " or ".join(words)


def _plain(tp: Any) -> str:
    return {str: "string", int: "integer", float: "number", bool: "boolean (true/false)"}.get(tp, str(tp))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _scalar(tp: Any, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ValueError


def convert(hint: Any, value: Any) -> Any:
    """Check ``value`` against ``hint``; raise ``ValueError("expected …")`` when it does not fit."""
    for opt in _options(hint):
        origin = typing.get_origin(opt)
        try:
            if opt is type(None):
                continue
            if origin is list:
                (item,) = typing.get_args(opt)
                if isinstance(value, list):
                    return [_scalar(item, v) for v in value]
            elif origin is tuple:
                items = typing.get_args(opt)
                if isinstance(value, list) and len(value) == len(items):
                    return tuple(_scalar(t, v) for t, v in zip(items, value))
            else:
                return _scalar(opt, value)
        except ValueError:
            continue
    raise ValueError(f"expected {describe(hint)}")


def check_bounds(f: dataclasses.Field, value: Any) -> Any:
    """Choices (case-insensitive, returned in canonical spelling) and numeric ranges."""
    m = f.metadata
    if m["choices"] and isinstance(value, str):
        for choice in m["choices"]:
            if value.lower() == choice.lower():
                return choice
        raise ValueError(f"expected one of {', '.join(repr(c) for c in m['choices'])}")
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for v in numbers:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if m["minimum"] is not None and v < m["minimum"]:
            raise ValueError(f"expected a value >= {m['minimum']}")
        if m["maximum"] is not None and v > m["maximum"]:
            raise ValueError(f"expected a value <= {m['maximum']}")
        if m["exclusive_minimum"] is not None and v <= m["exclusive_minimum"]:
            raise ValueError(f"expected a value > {m['exclusive_minimum']}")
        if m["exclusive_maximum"] is not None and v >= m["exclusive_maximum"]:
            raise ValueError(f"expected a value < {m['exclusive_maximum']}")
    return value


# --- schema fragments -------------------------------------------------------------


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint (the subset that settings use)."""
    variants = []
    for opt in _options(hint):
        origin = typing.get_origin(opt)
        if opt is type(None):
            continue  # TOML has no null: an optional setting is simply left out
        if origin is list:
            variants.append({"type": "array", "items": _scalar_schema(typing.get_args(opt)[0])})
        elif origin is tuple:
            items = [_scalar_schema(t) for t in typing.get_args(opt)]
            variants.append({"type": "array", "prefixItems": items, "items": False,
                             "minItems": len(items)})
        else:
            variants.append(_scalar_schema(opt))
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _scalar_schema(tp: Any) -> dict[str, Any]:
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[tp]}


def field_schema(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    m = f.metadata
    prop: dict[str, Any] = {"description": m["doc"], **json_type(hint)}
    bounds = {"minimum": m["minimum"], "maximum": m["maximum"],
              "exclusiveMinimum": m["exclusive_minimum"], "exclusiveMaximum": m["exclusive_maximum"]}
    _apply_bounds(prop, {k: v for k, v in bounds.items() if v is not None})
    if m["choices"]:
        prop["enum"] = list(m["choices"])
    default = m["schema_default"]
    if default is not _MISSING and default is not None:
        prop["default"] = list(default) if isinstance(default, tuple) else default
    return prop


def _apply_bounds(schema: dict[str, Any], bounds: dict[str, float]) -> None:
    """Put numeric bounds on every number inside ``schema`` (plain, list items, tuples, unions)."""
    if not bounds:
        return
    if schema.get("type") in ("integer", "number"):
        schema.update(bounds)
    for variant in schema.get("anyOf", []):
        _apply_bounds(variant, bounds)
    for item in schema.get("prefixItems", []):
        _apply_bounds(item, bounds)
    if isinstance(schema.get("items"), dict):
        _apply_bounds(schema["items"], bounds)

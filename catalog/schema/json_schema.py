"""JSON Schemas (draft 2020-12) generated from the declared fields.

The files in ``schemas/`` are this module's output for the card, the train
config and the mix recipe; each has a generator (``python -m …``) and a test
that keeps the committed file equal to it, so editors and other tools check
exactly what lutnav checks.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from catalog.schema.declare import MISSING, declared_fields, is_required, is_record, options, type_hints

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def document(cls: type, *, schema_id: str, title: str, description: str) -> dict[str, Any]:
    """A whole schema file for a record class: its properties, required keys, nothing else."""
    return {"$schema": DRAFT, "$id": schema_id, "title": title, "description": description,
            **object_schema(cls)}


def object_schema(cls: type) -> dict[str, Any]:
    """A closed object: the declared fields (and their aliases) as properties."""
    props, required = properties(cls)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def properties(cls: type, names: set[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """``(properties, required)`` of ``cls``'s declared fields (only ``names``, when given)."""
    hints = type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in declared_fields(cls):
        if names is not None and f.name not in names:
            continue
        props[f.name] = field_schema(f, hints[f.name])
        for alias in f.metadata["aliases"]:
            props[alias] = {**field_schema(f, hints[f.name]), "description": f"Alias of `{f.name}`."}
        if is_required(f):
            required.append(f.name)
    return props, required


def field_schema(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """One property: its doc, its type, then bounds, choices and default from the declaration."""
    m = f.metadata
    prop: dict[str, Any] = {"description": m["doc"], **json_type(hint)}
    bounds = {"minimum": m["minimum"], "maximum": m["maximum"],
              "exclusiveMinimum": m["exclusive_minimum"], "exclusiveMaximum": m["exclusive_maximum"],
              "multipleOf": m["multiple_of"]}
    _apply(prop, ("integer", "number"), {k: v for k, v in bounds.items() if v is not None})
    strings = {"minLength": m["min_length"], "pattern": m["pattern"][0] if m["pattern"] else None}
    _apply(prop, ("string",), {k: v for k, v in strings.items() if v is not None})
    if m["min_items"] is not None:
        prop["minItems"] = m["min_items"]
    if m["choices"]:
        prop["enum"] = list(m["choices"])
    default = m["schema_default"]
    if default is not MISSING and default is not None:
        prop["default"] = list(default) if isinstance(default, tuple) else default
    return prop


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint (the subset that declared fields use)."""
    variants = []
    for opt in options(hint):
        origin = typing.get_origin(opt)
        if opt is type(None):
            continue  # TOML has no null: an optional key is simply left out
        if origin is list:
            variants.append({"type": "array", "items": _item_schema(typing.get_args(opt)[0])})
        elif origin is tuple:
            items = [_item_schema(t) for t in typing.get_args(opt)]
            variants.append({"type": "array", "prefixItems": items, "items": False, "minItems": len(items)})
        else:
            variants.append(_item_schema(opt))
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _item_schema(tp: Any) -> dict[str, Any]:
    if is_record(tp):
        return object_schema(tp)
    if tp is dict or typing.get_origin(tp) is dict:
        return {"type": "object"}
    return {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[tp]}


def _apply(schema: dict[str, Any], types: tuple[str, ...], keywords: dict[str, Any]) -> None:
    """Put keywords on every value of those types inside ``schema`` (plain, list items, tuples, unions)."""
    if not keywords:
        return
    if schema.get("type") in types:
        schema.update(keywords)
    for variant in schema.get("anyOf", []):
        _apply(variant, types, keywords)
    for item in schema.get("prefixItems", []):
        _apply(item, types, keywords)
    if isinstance(schema.get("items"), dict) and schema["items"].get("type") != "object":
        _apply(schema["items"], types, keywords)


def schema_text(schema: dict[str, Any]) -> str:
    """The exact text of a committed schema file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"

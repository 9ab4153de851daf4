"""The train config's JSON Schema, generated from the config classes.

``schemas/train-config.schema.json`` is this module's output (``python -m
trainers.schema`` rewrites it; a test keeps the two equal).  Shared settings
sit at the top; each registered task adds its own settings in an
``if task_type == … then …`` branch, and ``unevaluatedProperties: false``
refuses keys that belong to no branch — so a new task only has to register.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from trainers.config import CommonConfig
from trainers.registry import get_task, task_types
from trainers.settings import config_fields, field_schema, hints

SCHEMA_ID = "https://lutnav.dev/schemas/train-config.schema.json"


def _properties(cls: type, names: set[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    types = hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in config_fields(cls):
        if names is not None and f.name not in names:
            continue
        props[f.name] = field_schema(f, types[f.name])
        for alias in f.metadata["aliases"]:
            props[alias] = {**field_schema(f, types[f.name]), "description": f"Alias of `{f.name}`."}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return props, required


def _own_fields(cls: type) -> set[str]:
    """Settings a task adds, or whose declaration (default, doc) it changes."""
    common = {f.name: f for f in config_fields(CommonConfig)}
    own = set()
    for f in config_fields(cls):
        base = common.get(f.name)
        if base is None or base.default != f.default or dict(base.metadata) != dict(f.metadata):
            own.add(f.name)
    return own


def train_config_schema() -> dict[str, Any]:
    props, required = _properties(CommonConfig)
    tasks = task_types()
    props["task_type"]["enum"] = tasks
    branches = []
    for task_type in tasks:
        cls = get_task(task_type).config_class
        own, own_required = _properties(cls, _own_fields(cls))
        then: dict[str, Any] = {"properties": own}
        if own_required:
            then["required"] = own_required
        branches.append({
            "if": {"properties": {"task_type": {"const": task_type}}, "required": ["task_type"]},
            "then": then,
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "lutnav train config",
        "description": "The TOML file given to `lutnav train`; settings are top-level keys.",
        "type": "object",
        "properties": props,
        "required": required,
        "allOf": branches,
        "unevaluatedProperties": False,
    }


def schema_text() -> str:
    """The exact text of ``schemas/train-config.schema.json``."""
    return json.dumps(train_config_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # regenerate schemas/train-config.schema.json
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / "schemas" / "train-config.schema.json"
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")

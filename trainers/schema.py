"""The train config's JSON Schema, generated from the config classes.

``schemas/train-config.schema.json`` is this module's output (``python -m
trainers.schema`` rewrites it; a test keeps the two equal).  Shared settings
sit at the top; each registered task adds its own settings in an
``if task_type == … then …`` branch, and ``unevaluatedProperties: false``
refuses keys that belong to no branch — so a new task only has to register.
"""

from __future__ import annotations

from typing import Any

from catalog.schema import declared_fields, json_schema
from catalog.schema.json_schema import DRAFT, properties
from trainers.config import CommonConfig
from trainers.registry import get_task, task_types

SCHEMA_ID = "https://lutnav.dev/schemas/train-config.schema.json"


def _own_fields(cls: type) -> set[str]:
    """Settings a task adds, or whose declaration (default, doc) it changes."""
    common = {f.name: f for f in declared_fields(CommonConfig)}
    own = set()
    for f in declared_fields(cls):
        base = common.get(f.name)
        if base is None or base.default != f.default or dict(base.metadata) != dict(f.metadata):
            own.add(f.name)
    return own


def train_config_schema() -> dict[str, Any]:
    props, required = properties(CommonConfig)
    tasks = task_types()
    props["task_type"]["enum"] = tasks
    branches = []
    for task_type in tasks:
        cls = get_task(task_type).config_class
        own, own_required = properties(cls, _own_fields(cls))
        then: dict[str, Any] = {"properties": own}
        if own_required:
            then["required"] = own_required
        branches.append({
            "if": {"properties": {"task_type": {"const": task_type}}, "required": ["task_type"]},
            "then": then,
        })
    return {
        "$schema": DRAFT,
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
    return json_schema.schema_text(train_config_schema())


if __name__ == "__main__":  # regenerate schemas/train-config.schema.json
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / "schemas" / "train-config.schema.json"
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")

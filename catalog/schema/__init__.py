"""One schema framework for every TOML file lutnav reads: the model card, the train config, the mix recipe.

- :mod:`~catalog.schema.declare` — :func:`declared` fields on a dataclass: type, doc, choices,
  bounds, patterns, aliases;
- :mod:`~catalog.schema.values` — type conversion, bounds and the words of the messages;
- :mod:`~catalog.schema.check` — a parsed table against a class: clean values, or findings
  naming key, line and what was expected, with "did you mean" for near misses;
- :mod:`~catalog.schema.json_schema` — the JSON Schema files generated from the same fields.
"""

from catalog.schema.check import Finding, check_table, check_value, unknown_key_message
from catalog.schema.declare import declared, declared_fields, is_required, type_hints
from catalog.schema.values import describe, nearest, pick_choice, show_value

__all__ = [
    "Finding", "check_table", "check_value", "declared", "declared_fields", "describe", "is_required",
    "nearest", "pick_choice", "show_value", "type_hints", "unknown_key_message",
]

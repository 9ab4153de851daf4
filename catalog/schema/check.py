"""Checking a parsed TOML table against a record class: clean values, or findings with lines.

tomllib gives values without positions, so the text is passed along and each
finding gets its line from :mod:`catalog.files.toml_lines`.  Every key is
checked at once (a file is fixed in one round, not one complaint per run):
an unknown key gets the nearest real key ("did you mean"), a bad value the
key, the value and what was expected, a bad choice the choices.  What a
finding becomes — a warning, a ``CardError``, a ``ConfigError`` listing them
all — is the caller's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from catalog.files.toml_lines import header_line, key_lines, line_of
from catalog.schema.declare import declared_fields, is_required, record_of, type_hints
from catalog.schema.values import check_bounds, convert, describe, nearest, normalise, show_value

#: A reader's own way of turning a raw value into a field's value (``(name, value) -> value``),
#: raising ``ValueError(what was expected)``; ``None`` from it means "says nothing".
Parse = Callable[[str, Any], Any]

#: Up to this many keys, an unknown key with no near miss gets the list of valid keys.
LIST_KEYS_UP_TO = 20


@dataclass(frozen=True)
class Finding:
    """One problem in a checked table: the key (dotted inside nested tables), its line, the words."""

    key: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class _Reading:
    text: str | None
    noun: str
    spellings: Mapping[str, str]
    parse: Parse | None
    findings: list[Finding] = dataclasses.field(default_factory=list)
    _top: dict[str, int] | None = None

    def line(self, key: str, table: str | None, index: int) -> int | None:
        if self.text is None:
            return None
        if table is None:
            if self._top is None:
                self._top = key_lines(self.text)
            return self._top.get(key)
        return line_of(self.text, key, table=table, index=index)

    def table_line(self, table: str | None, index: int) -> int | None:
        """Where a table starts, for what is missing from it."""
        if self.text is None or table is None:
            return None
        return header_line(self.text, table, index)


def check_table(cls: type, raw: Mapping[str, Any], *, text: str | None = None, noun: str = "key",
                spellings: Mapping[str, str] | None = None,
                parse: Parse | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """Split ``raw`` (a parsed TOML table) into clean values of ``cls``'s fields and findings.

    ``text`` is the file's text, for line numbers.  ``noun`` names a key in
    messages ("setting", "card field").  ``spellings`` maps names people try
    (other tools' keys) to real ones, for hints only.  ``parse`` replaces the
    strict type check for readers that accept looser values.  The clean values
    hold only the keys given (nested tables as dicts), in declaration order.
    """
    reading = _Reading(text, noun, spellings or {}, parse)
    clean = _check(cls, raw, reading, prefix=(), table=None, index=0)
    return clean, reading.findings


def check_value(cls: type, name: str, value: Any, *, parse: Parse | None = None) -> Any:
    """One field's clean value, or ``ValueError`` saying what was expected."""
    shape = _shape(cls)
    value = parse(name, value) if parse else convert(shape.hints[name], value)
    return None if value is None else check_bounds(shape.fields[name].metadata, value)


def unknown_key_message(cls: type, key: str, *, noun: str, spellings: Mapping[str, str] | None = None,
                        where: str = "") -> str:
    """"`key` is not a <noun> — did you mean `near`?" (or the list of keys, when there are few)."""
    names = list(_shape(cls).fields)
    near = _suggest(key, names, spellings or {}, _shape(cls).aliases)
    if near:
        hint = f" — did you mean `{near}`?"
    elif len(names) <= LIST_KEYS_UP_TO:
        hint = f" — {noun}s: {', '.join(names)}"
    else:
        hint = ""
    return f"`{key}`{where} is not a {noun}{hint}"


def _suggest(key: str, names: list[str], spellings: Mapping[str, str], aliases: dict[str, str]) -> str | None:
    norm = normalise(key)
    for table in (spellings, aliases):
        if table.get(norm) in names:
            return table[norm]
    return nearest(key, names)


@dataclass(frozen=True)
class _Shape:
    """What checking needs of a class, worked out once (a scan checks thousands of cards)."""

    fields: dict[str, dataclasses.Field]
    hints: dict[str, Any]
    aliases: dict[str, str]
    records: dict[str, tuple[type | None, bool]]
    takes_tables: bool
    required: tuple[str, ...]
    #: fields with no choices, bounds or patterns skip that check
    ruled: frozenset[str]


@cache
def _shape(cls: type) -> _Shape:
    fields = {f.name: f for f in declared_fields(cls)}
    hints = type_hints(cls)
    return _Shape(fields, hints, {a: f.name for f in fields.values() for a in f.metadata["aliases"]},
                  {name: record_of(hints[name]) for name in fields},
                  any(_takes_table(hints[name]) for name in fields),
                  tuple(name for name, f in fields.items() if is_required(f)),
                  frozenset(name for name, f in fields.items()
                            if any(f.metadata[rule] is not None for rule in _RULES)))


_RULES = ("choices", "minimum", "maximum", "exclusive_minimum", "exclusive_maximum", "multiple_of",
          "min_items", "min_length", "pattern")


def _check(cls: type, raw: Mapping[str, Any], reading: _Reading, *, prefix: tuple, table: str | None,
           index: int) -> dict[str, Any]:
    shape = _shape(cls)
    fields, aliases = shape.fields, shape.aliases
    values: dict[str, Any] = {}
    spoken: dict[str, str] = {}  # field name → the key that gave it
    for key, value in raw.items():
        name = aliases.get(key, key)
        message = None
        if name not in fields:
            if isinstance(value, dict) and not shape.takes_tables:
                message = f"`[{key}]` is a table; {reading.noun}s are top-level `key = value` lines"
            else:
                where = f" in `{_dotted(prefix)}`" if prefix else ""
                message = unknown_key_message(cls, key, noun=reading.noun, spellings=reading.spellings,
                                              where=where)
        elif name in spoken:
            message = f"`{key}` and `{spoken[name]}` are the same {reading.noun}; keep one"
        else:
            spoken[name] = key
            try:
                checked = _value(fields[name], shape.hints[name], shape.records[name], key, value, reading,
                                 prefix, name in shape.ruled)
            except ValueError as err:
                message = f"`{_dotted((*prefix, key))}` = {show_value(value)}: expected {err}"
            else:
                if checked is not None:
                    values[name] = checked
        if message is not None:  # lines are looked up only for what is wrong
            reading.findings.append(Finding(_dotted((*prefix, key)), reading.line(key, table, index), message))
    for name in shape.required:
        if name not in spoken:
            dotted = _dotted((*prefix, name))
            reading.findings.append(Finding(dotted, reading.table_line(table, index),
                                            f"`{dotted}` is required: {fields[name].metadata['doc']}"))
    return {name: values[name] for name in fields if name in values}


def _dotted(parts: tuple) -> str:
    """``("lora", 1, "weight")`` → ``lora.1.weight``."""
    return ".".join(map(str, parts))


def _value(f: dataclasses.Field, hint: Any, table: tuple[type | None, bool], key: str, value: Any,
           reading: _Reading, prefix: tuple, ruled: bool) -> Any:
    record, many = table
    if record is None:
        value = reading.parse(f.name, value) if reading.parse is not None else convert(hint, value)
        return check_bounds(f.metadata, value) if ruled and value is not None else value
    if many:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValueError(f"a list of tables ([[{key}]])")
        check_bounds(f.metadata, value)
        return [_check(record, item, reading, prefix=(*prefix, key, i), table=key, index=i)
                for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(describe(hint))
    return _check(record, value, reading, prefix=(*prefix, key), table=key, index=0)


def _takes_table(hint: Any) -> bool:
    if record_of(hint)[0] is not None:
        return True
    try:
        convert(hint, {})
        return True
    except ValueError:
        return False

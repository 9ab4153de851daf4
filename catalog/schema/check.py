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
    meta = next(f.metadata for f in declared_fields(cls) if f.name == name)
    value = parse(name, value) if parse else convert(type_hints(cls)[name], value)
    return None if value is None else check_bounds(meta, value)


def unknown_key_message(cls: type, key: str, *, noun: str, spellings: Mapping[str, str] | None = None,
                        where: str = "") -> str:
    """"`key` is not a <noun> — did you mean `near`?" (or the list of keys, when there are few)."""
    names = [f.name for f in declared_fields(cls)]
    near = _suggest(key, names, spellings or {}, _aliases(cls))
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


def _aliases(cls: type) -> dict[str, str]:
    return {a: f.name for f in declared_fields(cls) for a in f.metadata["aliases"]}


def _check(cls: type, raw: Mapping[str, Any], reading: _Reading, *, prefix: tuple, table: str | None,
           index: int) -> dict[str, Any]:
    fields = {f.name: f for f in declared_fields(cls)}
    aliases = _aliases(cls)
    hints = type_hints(cls)
    values: dict[str, Any] = {}
    spoken: dict[str, str] = {}  # field name → the key that gave it
    for key, value in raw.items():
        name = aliases.get(key, key)
        dotted = ".".join(map(str, (*prefix, key)))
        find = _finder(reading, dotted, reading.line(key, table, index))
        if name not in fields:
            if isinstance(value, dict) and not any(_takes_table(hints[n]) for n in fields):
                find(f"`[{key}]` is a table; {reading.noun}s are top-level `key = value` lines")
            else:
                where = f" in `{'.'.join(map(str, prefix))}`" if prefix else ""
                find(unknown_key_message(cls, key, noun=reading.noun, spellings=reading.spellings, where=where))
            continue
        if name in spoken:
            find(f"`{key}` and `{spoken[name]}` are the same {reading.noun}; keep one")
            continue
        spoken[name] = key
        try:
            checked = _value(cls, fields[name], hints[name], key, value, reading, prefix)
        except ValueError as err:
            find(f"`{dotted}` = {show_value(value)}: expected {err}")
            continue
        if checked is not None:
            values[name] = checked
    for name, f in fields.items():
        if is_required(f) and name not in spoken:
            dotted = ".".join(map(str, (*prefix, name)))
            reading.findings.append(Finding(dotted, reading.table_line(table, index),
                                            f"`{dotted}` is required: {f.metadata['doc']}"))
    return {name: values[name] for name in fields if name in values}


def _finder(reading: _Reading, dotted: str, line: int | None) -> Callable[[str], None]:
    """Record a finding about one key."""
    return lambda message: reading.findings.append(Finding(dotted, line, message))


def _value(cls: type, f: dataclasses.Field, hint: Any, key: str, value: Any, reading: _Reading,
           prefix: tuple) -> Any:
    record, many = record_of(hint)
    if record is None:
        if reading.parse is not None:
            value = reading.parse(f.name, value)
            return None if value is None else check_bounds(f.metadata, value)
        return check_bounds(f.metadata, convert(hint, value))
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

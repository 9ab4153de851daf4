"""Editing a card's text the way a person would: only the fields that change, in place.

A card is the user's text.  Rewriting it from a dict (as ``tomli_w`` does) loses
their comments, reorders the keys and reflows the values, so edits go through
tomlkit, which keeps the document's layout: a field is touched only when its
value really changes, a new field goes after the existing top-level keys (before
any table), and a cleared field is removed with its line.  A file written with
Windows line endings keeps them for the lines lutnav adds.
"""

from __future__ import annotations

import re
from typing import Any

from catalog.cards.card import FIELD_KINDS


class CardTextError(ValueError):
    """tomlkit could not take the text apart (the caller names the file)."""


def plain(value: Any) -> Any:
    """A value as the plain Python that tomllib would give: tomlkit wrappers unwrapped,
    tuples as lists (for comparing what is on disk with what an edit wants)."""
    if hasattr(value, "unwrap"):
        value = value.unwrap()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def edit_text(text: str, updates: dict[str, Any], *, fresh: bool = False) -> str:
    """``text`` with ``updates`` applied; everything else byte for byte as it was.

    ``None`` removes a field; a dict for a table field (``training``) sets or, with
    ``None``, removes its keys one by one.  ``fresh`` starts from an empty card
    (a writer that replaces the card as a whole).
    """
    import tomlkit  # 35 ms: only writers pay for it, not `ls` or the TUI's start
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.document() if fresh else tomlkit.parse(text)
    except TOMLKitError as err:
        raise CardTextError(str(err)) from None
    except RecursionError:  # tomlkit recurses per nested value, as tomllib does
        raise CardTextError("values are nested too deeply") from None
    for key, value in updates.items():
        if isinstance(value, dict) and FIELD_KINDS.get(key) == "table":
            _edit_table(doc, key, value)
        elif value is None:
            if key in doc:
                del doc[key]
        elif key not in doc or plain(doc[key]) != plain(value):
            doc[key] = plain(value)
    out = tomlkit.dumps(doc)
    if "\r\n" in text and "\n" not in text.replace("\r\n", ""):
        out = re.sub(r"(?<!\r)\n", "\r\n", out)
    return out


def _edit_table(doc: Any, key: str, changes: dict[str, Any]) -> None:
    import tomlkit

    table = doc.get(key)
    if not isinstance(table, dict):
        table = None
    for sub, value in changes.items():
        if value is None:
            if table is not None and sub in table:
                del table[sub]
            continue
        if table is None:
            doc[key] = tomlkit.table()
            table = doc[key]
        if sub not in table or plain(table[sub]) != plain(value):
            table[sub] = plain(value)
    if table is not None and not table and key in doc:
        del doc[key]

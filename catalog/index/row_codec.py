"""Compact stored forms of the columns that repeat what a row already holds.

At a million entries the index must stay under a gigabyte, and three JSON
columns were a third of every row while saying little of their own:

- ``sources`` ends with the header-fact labels (``format``, ``base_model``,
  ``rank``, ``alpha``), which follow from the row's own facts: only the card
  part is stored, the rest is derived again on reading, and a card field
  whose source is the header's own label for it is only named;
- ``header_fields`` mostly repeats card fields the header won (title, tags,
  training), and ``header_sources`` gives each of them the same label
  ("kohya ss_*"): they are stored as one list, naming a field instead of
  repeating a value the row holds, and one label for all when they share it.

Both forms are checked when written: a row whose values would not come back
exactly is stored in full, so reading yields the same dicts either way.
"""

from __future__ import annotations

from typing import Any

import orjson

#: the ``sources`` keys taken from the header's facts, in the order they are added
FACT_KEYS = ("format", "base_model", "rank", "alpha")


def fact_sources(row: dict) -> dict[str, str]:
    """Where the header facts of ``row`` came from (tensor keys, tensor shapes, …)."""
    out = {}
    if row.get("format") and row["format"] != "pickle" and not row.get("error"):
        out["format"] = "tensor keys"
        out["base_model"] = f"tensor shapes: {row.get('evidence') or 'no evidence'}"
        if row.get("base_candidates") and row.get("base_model") != "unknown":
            out["base_model"] += (f" (fit {'/'.join(row['base_candidates'])}; the card's base model "
                                  f"{row.get('base_model_claim')!r} picks {row['base_model']})")
        if row.get("rank") is not None:
            out["rank"] = "tensor shapes"
        out["alpha"] = row.get("alpha_source") or "unknown"
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as stored JSON (``32`` and ``32.0`` are not)."""
    return orjson.dumps(a) == orjson.dumps(b)


def pack(row: dict) -> None:
    """Turn ``sources`` / ``header_fields`` / ``header_sources`` of a finished (bounded,
    not yet JSON-encoded) row into their compact forms, in place."""
    fields, labels = row.get("header_fields"), row.get("header_sources")
    header_labels = labels if isinstance(labels, dict) else {}
    sources = row.get("sources")
    if isinstance(sources, dict):
        facts = fact_sources(row)
        cards = {k: v for k, v in sources.items() if k not in facts}
        if list({**cards, **facts}.items()) == list(sources.items()):
            # a list marks the compact form (a dict is stored in full); a field whose
            # source is the header's own label for it is named alone
            row["sources"] = [[k if header_labels.get(k) == v else [k, v] for k, v in cards.items()]]
    if isinstance(fields, dict) and isinstance(labels, dict):
        items: list = [k if k in row and k not in _OWN and _same(v, row[k]) else [k, v]
                       for k, v in fields.items()]
        shared = set(labels.values())
        label: Any = labels
        if len(shared) == 1 and list(labels) == list(fields):
            label = shared.pop()
        row["header_fields"], row["header_sources"] = ([items, label] if fields else None), None

#: row columns that are never card fields: a header field of that name is always stored
_OWN = frozenset({"header_fields", "header_sources", "sources", "path"})


def unpack(row: dict) -> None:
    """The full forms back, in place, on a row whose JSON columns are parsed."""
    fields = row.get("header_fields")
    if isinstance(fields, list):
        items, label = fields
        full = {}
        for item in items:
            if isinstance(item, str):
                full[item] = row.get(item)
            else:
                full[item[0]] = item[1]
        row["header_fields"] = full
        row["header_sources"] = {k: label for k in full} if isinstance(label, str) else label
    elif fields is None and "header_fields" in row and row.get("header_sources") is None:
        row["header_fields"], row["header_sources"] = {}, {}
    sources = row.get("sources")
    if isinstance(sources, list):
        labels = row.get("header_sources") or {}
        cards = {}
        for item in sources[0]:
            if isinstance(item, str):
                cards[item] = labels[item]
            else:
                cards[item[0]] = item[1]
        row["sources"] = {**cards, **fact_sources(row)}

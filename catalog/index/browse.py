"""What a browsing front end asks of the index, without ever loading every row.

A browser shows one *view* of the library (a search, folder and facet filters,
a sort column) as a long list it cannot hold: 100,000 entries must scroll like
12.  So the view is answered in pieces — its length (:func:`count`), one page
of rows (:func:`page`), where a given entry sits in it (:func:`position`) — and
the page query walks an index for the row ids before touching the wide rows.
Cards are opened here too as a *draft*: the text and digest a form edits, so a
card that is not valid TOML can still be shown, edited and saved.
"""

from __future__ import annotations

import json
import os
import re
import stat
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from catalog.cards import card_file
from catalog.cards.card import FIELD_KINDS, Card, check_card_dict
from catalog.errors import CardError, SidecarError
from catalog.index.entry import TABLE_FIELDS, Entry
from catalog.index.library_folder import LibraryFolder
from catalog.detect.registry import base_filter
from catalog.index.query import SORTABLE, fts_query
from catalog.index.db import decode, entry_count

#: the columns a table row needs (the wide ones — notes, sources — stay on disk)
ROW_COLUMNS = TABLE_FIELDS
#: columns a front end may offer as filter facets
FACETS = ("category", "base_model", "format")


@dataclass(frozen=True)
class View:
    """One way of looking at the library; every field narrows or orders it."""

    query: str = ""
    category: str | None = None
    theme: str | None = None
    base: str | None = None
    fmt: str | None = None
    order_by: str = "name"
    descending: bool = False

    def with_(self, **changes: Any) -> View:
        return replace(self, **changes)

    def key(self) -> tuple:
        """Equal for views that hold the same rows in the same order ("ink" and "ink ")."""
        return (fts_query(self.query) if self.query else "", self.category, self.theme, self.base,
                self.fmt, self.order_by, self.descending)


def folder_counts(lib: LibraryFolder) -> list[tuple[str, str, int]]:
    """``(category, theme, entries)`` for every folder pair, sorted; ``""`` for none."""
    sql = "select category, theme, count(*) from entries group by category, theme"
    return sorted((r[0] or "", r[1] or "", r[2]) for r in lib.db.execute(sql))


def facet(lib: LibraryFolder, column: str) -> list[tuple[str, int]]:
    """The values of a facet column with their entry counts, most common first."""
    if column not in FACETS:
        raise ValueError(f"{column!r} is not a facet column ({', '.join(FACETS)})")
    sql = f"select {column}, count(*) from entries where {column} is not null group by 1"
    rows = sorted(((r[0], r[1]) for r in lib.db.execute(sql)), key=lambda r: (-r[1], r[0]))
    if column == "base_model":  # SDXL variants filter like families (base_model stays sdxl)
        sql = "select base_variant, count(*) from entries where base_variant is not null group by 1"
        rows += sorted(((r[0], r[1]) for r in lib.db.execute(sql)), key=lambda r: (-r[1], r[0]))
    return rows


def count(lib: LibraryFolder, view: View) -> int:
    """How many entries the view holds."""
    match = _match(view)
    if not match and not _filters(view)[0]:
        return entry_count(lib.db)  # the whole library: kept by triggers
    if match and not _filters(view)[0]:
        return _hits(lib, match)  # the full-text index counts alone, without the rows
    source, where, args = _from_where(view, lib)
    return lib.db.execute(f"select count(*) {source}{where}", args).fetchone()[0]


def page(lib: LibraryFolder, view: View, *, limit: int, offset: int = 0) -> list[Entry]:
    """Entries ``offset … offset+limit`` of the view, in order, holding ``ROW_COLUMNS`` only.

    The ids come from an index-only walk (sort column + rowid), so a deep offset
    skips index entries rather than decoding 90,000 rows it then throws away.
    """
    source, where, args = _from_where(view, lib)
    ids_sql = f"select e.rowid {source}{where}{_order(view)} limit ? offset ?"
    ids = [r[0] for r in lib.db.execute(ids_sql, [*args, int(limit), max(0, int(offset))])]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = {r["rowid"]: r for r in lib.db.query(
        f"select rowid, {', '.join(ROW_COLUMNS)} from entries where rowid in ({marks})", ids)}
    out = []
    for rowid in ids:
        if rowid in rows:
            row = decode(rows[rowid])
            row.pop("rowid", None)
            out.append(Entry.from_row(row))
    return out


def position(lib: LibraryFolder, view: View, path: str) -> int | None:
    """Where ``path`` sits in the view (0-based), or ``None`` when it is not in it.

    Counted as "rows that sort before it", which the sort column's index
    answers without numbering the whole view.
    """
    source, where, args = _from_where(view, lib)
    col = _sort_column(view)
    glue = " and " if where else " where "
    found = lib.db.execute(f"select e.{col}, e.rowid {source}{where}{glue}e.path = ?",
                           [*args, path]).fetchone()
    if found is None:
        return None
    value, rowid = found
    if not view.descending:
        before = ("(e.{c} is null and e.rowid < ?)" if value is None
                  else "(e.{c} is null or e.{c} < ? or (e.{c} = ? and e.rowid < ?))")
    else:
        before = ("(e.{c} is not null or e.rowid > ?)" if value is None
                  else "(e.{c} > ? or (e.{c} = ? and e.rowid > ?))")
    keys = [rowid] if value is None else [value, value, rowid]
    sql = f"select count(*) {source}{where}{glue}{before.format(c=col)}"
    return lib.db.execute(sql, [*args, *keys]).fetchone()[0]


#: sort columns with an index of their own (name, base_model, format; path is the key)
INDEXED_SORTS = frozenset({"name", "path", "base_model", "format"})
#: below this many full-text hits, reading and sorting the hits beats walking an index
FEW_HITS = 2000


def _match(view: View) -> str:
    return fts_query(view.query) if view.query else ""


_HITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _hits(lib: LibraryFolder, match: str) -> int:
    """Full-text hits of ``match``; remembered until the index changes (count, then page, ask twice)."""
    conn = lib.db.conn
    key = (match, conn.execute("pragma data_version").fetchone()[0], conn.total_changes)
    known = _HITS.setdefault(lib.db, {})
    if key not in known:
        if len(known) > 64:
            known.clear()
        known[key] = conn.execute("select count(*) from entries_fts where entries_fts match ?",
                                  [match]).fetchone()[0]
    return known[key]


def _filters(view: View) -> tuple[list[str], list]:
    clauses: list[str] = []
    args: list = []
    for col, value in (("category", view.category), ("theme", view.theme),
                       base_filter(view.base) if view.base else ("base_model", view.base), ("format", view.fmt)):
        if value == "":
            clauses.append(f"e.{col} is null")
        elif value is not None:
            clauses.append(f"e.{col} = ?")
            args.append(value)
    return clauses, args


def _from_where(view: View, lib: LibraryFolder) -> tuple[str, str, list]:
    """FROM and WHERE for the view, with the loop order that suits its search.

    Few hits: the full-text hits drive (CROSS JOIN pins that order) and are
    sorted.  Many hits in a view sorted by an indexed column: the sort index
    drives and each row is checked against the hit list, stopping at the page
    end — "i" matching half of 100,000 entries then costs a few hundred rows.
    """
    clauses, args = _filters(view)
    source = "from entries e"
    match = _match(view)
    if match:
        many = _sort_column(view) in INDEXED_SORTS and _hits(lib, match) >= FEW_HITS
        if many:  # unary + keeps the rowid out of the plan's index choice
            clauses.insert(0, "+e.rowid in (select rowid from entries_fts where entries_fts match ?)")
        else:
            source = "from entries_fts f cross join entries e on e.rowid = f.rowid"
            clauses.insert(0, "entries_fts match ?")
        args.insert(0, match)
    return source, (" where " + " and ".join(clauses)) if clauses else "", args


def _sort_column(view: View) -> str:
    return view.order_by if view.order_by in SORTABLE else "name"


def _order(view: View) -> str:
    col = _sort_column(view)
    way = "desc" if view.descending else "asc"
    return f" order by e.{col} {way}, e.rowid {way}"


# --- cards as drafts --------------------------------------------------------------


@dataclass
class CardDraft:
    """A card as a form edits it: field texts, or the raw text when it does not parse."""

    path: Path
    #: digest of the bytes on disk when opened (``None``: there was no card)
    digest: str | None
    #: field → text as a person types it; ``None`` when the file must be edited raw
    fields: dict[str, str] | None
    text: str
    error: str | None = None
    #: the card's values when opened (``write_card(base=...)``: edits of other fields since are kept)
    values: dict[str, Any] | None = None


def open_card(path: Path) -> CardDraft:
    """Read the card at ``path`` for editing; a broken file opens raw, with its error."""
    data = card_file.read_card_bytes(path)
    if data is None:
        return CardDraft(path, None, {k: "" for k in FIELD_KINDS}, "")
    digest = card_file.digest(data)
    text = data.decode("utf-8", errors="replace")
    try:
        clean, problems = check_card_dict(card_file.parse_card_bytes(path, data))
    except SidecarError as err:
        return CardDraft(path, digest, None, text, str(err))
    if problems:
        return CardDraft(path, digest, None, text, "; ".join(m for _, m in problems))
    return CardDraft(path, digest, {k: field_text(k, clean.get(k)) for k in FIELD_KINDS}, text,
                     values=clean)


def field_text(name: str, value: Any) -> str:
    """A card value as the text a form shows (and ``parse_set`` reads back)."""
    if value is None:
        return ""
    kind = FIELD_KINDS[name]
    if kind == "strlist":
        return ", ".join(value) if value else "none"
    if kind == "range":
        return f"{value[0]:g}~{value[1]:g}"
    if kind == "float":
        return f"{value:g}"
    if kind == "table":
        return _inline_toml(value)
    return str(value)


def _inline_toml(value: Any) -> str:
    """A value as one line of TOML (``{steps = 1500, rank = 4}``), as ``card --set`` reads it."""
    if isinstance(value, dict):
        keys = (k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in value)
        return "{" + ", ".join(f"{k} = {_inline_toml(v)}" for k, v in zip(keys, value.values())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline_toml(v) for v in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def changed_fields(draft: CardDraft, texts: dict[str, str]) -> list[str]:
    """``key=value`` items (``parse_set`` input) for the fields whose text changed."""
    old = draft.fields or {}
    return [f"{k}={v}" for k, v in texts.items() if v.strip() != (old.get(k) or "").strip()]


def save_card_text(draft: CardDraft, text: str) -> Card:
    """Replace a card with ``text`` as typed, after checking it like any card.

    This is how a card that is not valid TOML gets fixed from a front end: the
    text must parse and fit the schema, and the file must still hold the bytes
    the draft was opened from; otherwise nothing is written.
    """
    path = draft.path
    data = text.encode("utf-8")
    values = card_file.parse_card_bytes(path, data)
    clean, problems = check_card_dict(values)
    if problems:
        raise CardError("; ".join(m for _, m in problems), path=path)
    card = Card.from_dict(clean)
    card_file._validate_schema(path, card.to_dict())
    with card_file.card_lock(path):
        current = card_file.read_card_bytes(path)
        card_file._check_unchanged(path, current, draft.digest)
        mode = stat.S_IMODE(os.stat(path).st_mode) if current is not None else 0o644
        card_file._atomic_write(path, data, mode, draft.digest)
    return card


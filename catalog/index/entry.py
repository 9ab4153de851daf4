"""One catalog entry, typed: the single declaration of what the index holds about a LoRA.

Every list of entry fields derives from the dataclass below: the JSON columns,
the full-text columns, the card fields a scan merges, the ``ls --json`` and
``show --json`` contracts (their order is the declaration order), the columns
a browsing table reads, and the blank row a scan starts from. Adding a field
is one line here and a migration in :mod:`catalog.index.db` (a test checks the
created table against :func:`column_names`).

The class is ``slots`` but not frozen: a frozen dataclass sets each of its 50
fields through ``object.__setattr__``, 10 µs a row against 1.5 µs, and ``ls``
builds one per row. Treat an ``Entry`` as read-only all the same; the index is
changed by scans, never through these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

#: what ``ls --json`` (and ``search --json``) shows of an entry
LS = "ls"
#: what ``show --json`` adds to the ``ls`` object
SHOW = "show"


def _col(shown: str | None = None, *, json: bool = False, fts: int | None = None,
         card: int | None = None, listed: bool = False, table: bool = False,
         blank: Any = None, fact: bool = False) -> Any:
    """A field with its facts as a column.

    ``shown``: in the ``ls`` contract, only in ``show``, or internal (None);
    ``json``: stored as JSON text; ``fts``: position among the full-text columns;
    ``card``: position among the card fields a scan merges from sidecars
    (``listed``: a card list, ``[]`` when no card gives it); ``table``: read for a
    browsing table's rows; ``fact``: read from the weights' header, with
    ``blank`` the value a scan starts from before the header is read.
    """
    return field(default=None, metadata={
        "shown": shown, "json": json, "fts": fts, "card": card, "listed": listed,
        "table": table, "blank": blank, "fact": fact})


@dataclass(slots=True)
class Entry:
    """A LoRA file (or PEFT folder) as the index knows it.

    An entry read for a listing holds the columns the listing asked for (see
    ``fields`` of :func:`catalog.index.query.iter_entries`); the others stay ``None``.
    """

    # --- the ``ls --json`` contract, in its order
    path: str = _col(LS, table=True)
    category: str | None = _col(LS, fts=2, table=True)
    theme: str | None = _col(LS, fts=3, table=True)
    name: str = _col(LS, fts=1, table=True)
    kind: str = _col(LS, table=True)
    format: str | None = _col(LS, table=True, fact=True)
    network: str | None = _col(LS, fact=True)
    base_model: str = _col(LS, table=True, fact=True, blank="unknown")
    base_model_name: str | None = _col(LS, fact=True)
    base_variant: str | None = _col(LS, fact=True)
    base_candidates: list[str] | None = _col(LS, json=True, fact=True, blank=[])
    arch: str | None = _col(LS, fact=True)
    model_kind: str | None = _col(LS, fact=True)
    rank: int | None = _col(LS, table=True, fact=True)
    alpha: float | None = _col(LS, fact=True)
    dtype: str | None = _col(LS, fact=True)
    tensor_count: int | None = _col(LS, fact=True)
    parts: list[str] | None = _col(LS, json=True, fact=True, blank=[])
    size: int | None = _col(LS, table=True)
    trigger_words: list[str] | None = _col(LS, json=True, fts=5, card=3, listed=True, table=True)
    strength: float | None = _col(LS, card=4, table=True)
    strength_range: list[float] | None = _col(LS, json=True, card=5)
    notes: str | None = _col(LS, fts=8, card=7)
    source: str | None = _col(LS, card=12)
    previews: list[str] | None = _col(LS, json=True)
    warnings: list[str] | None = _col(LS, json=True, table=True, fact=True, blank=[])
    error: str | None = _col(LS, table=True, fact=True)

    # --- what ``show --json`` adds, in its order
    title: str | None = _col(SHOW, fts=4, card=1)
    description: str | None = _col(SHOW, fts=9, card=2)
    negative_prompt: str | None = _col(SHOW, card=6)
    themes: list[str] | None = _col(SHOW, json=True, fts=6, card=8, listed=True)
    tags: list[str] | None = _col(SHOW, json=True, fts=7, card=9, listed=True)
    type: str | None = _col(SHOW, card=10)
    base_model_claim: str | None = _col(SHOW, card=11)
    license: str | None = _col(SHOW, card=13)
    parents: list[str] | None = _col(SHOW, json=True, card=14, listed=True)
    training: dict[str, Any] | None = _col(SHOW, json=True, card=15)
    evidence: str | None = _col(SHOW, fact=True)
    alpha_source: str | None = _col(SHOW, fact=True)
    #: 0 or 1 as stored (``show --json`` says true or false)
    has_conv: int | None = _col(SHOW, fact=True, blank=0)
    data_size: int | None = _col(SHOW, fact=True)
    #: field → where its value came from (a sidecar, the header, the tensor shapes)
    sources: dict[str, str] | None = _col(SHOW, json=True)
    card_digest: str | None = _col(SHOW)

    # --- the index's own bookkeeping
    mtime_ns: int | None = _col()
    inode: int | None = _col()
    sidecar_sig: str | None = _col()
    header_digest: str | None = _col(fact=True)
    #: card fields the header's metadata gives, and where each came from
    header_fields: dict[str, Any] | None = _col(json=True, fact=True, blank={})
    header_sources: dict[str, str] | None = _col(json=True, fact=True, blank={})
    scanned_at: float | None = _col()

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Entry:
        """An entry from a decoded row (:func:`catalog.index.db.decode`), or any subset of one."""
        return cls(**row)

    def to_json(self) -> dict[str, Any]:
        """The ``ls --json`` object: the stable contract, in its order."""
        return dict(zip(LS_FIELDS, _ls_values(self)))

    def show_json(self) -> dict[str, Any]:
        """The ``ls --json`` object followed by what ``show --json`` adds (before its
        metadata and hashes, which are not columns of the entry)."""
        out = dict(zip(SHOW_FIELDS, _show_values(self)))
        out["has_conv"] = bool(out["has_conv"])
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every column, as the decoded row holds it."""
        return dict(zip(COLUMNS, _all_values(self)))


def _meta(key: str) -> list[tuple[str, Any]]:
    return [(f.name, f.metadata[key]) for f in fields(Entry)]


#: every column of ``entries``, in the declaration order
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Entry))
#: the ``ls --json`` contract, in order
LS_FIELDS: tuple[str, ...] = tuple(n for n, s in _meta("shown") if s == LS)
#: the ``show --json`` object's columns, in order
SHOW_FIELDS: tuple[str, ...] = LS_FIELDS + tuple(n for n, s in _meta("shown") if s == SHOW)
#: columns stored as JSON text (lists and dicts)
JSON_COLUMNS: tuple[str, ...] = tuple(n for n, j in _meta("json") if j)
#: text columns the full-text index covers, in the order of its columns
FTS_COLUMNS: tuple[str, ...] = tuple(n for n, _ in sorted(((n, p) for n, p in _meta("fts") if p),
                                                          key=lambda item: item[1]))
#: card fields a scan merges from sidecars and header metadata, in precedence order of ``sources``
CARD_FIELDS: tuple[str, ...] = tuple(n for n, _ in sorted(((n, p) for n, p in _meta("card") if p),
                                                          key=lambda item: item[1]))
#: card fields that are lists: ``[]`` when no card gives them
LIST_FIELDS: frozenset[str] = frozenset(n for n, v in _meta("listed") if v)
#: the columns a browsing table's rows need (the wide ones — notes, sources — stay on disk)
TABLE_FIELDS: tuple[str, ...] = tuple(n for n, v in _meta("table") if v)
#: columns read from the weights' header
FACT_FIELDS: tuple[str, ...] = tuple(n for n, v in _meta("fact") if v)

_BLANK = {f.name: f.metadata["blank"] for f in fields(Entry) if f.metadata["fact"]}
_ls_values = attrgetter(*LS_FIELDS)
_show_values = attrgetter(*SHOW_FIELDS)
_all_values = attrgetter(*COLUMNS)


def blank_facts() -> dict[str, Any]:
    """The header facts of a row before its header is read (fresh lists and dicts each call)."""
    return {name: value.copy() if isinstance(value, list | dict) else value
            for name, value in _BLANK.items()}


def column_names() -> set[str]:
    """The columns the ``entries`` table must have."""
    return set(COLUMNS)


@dataclass(slots=True)
class EntryDetails:
    """What ``show`` tells of one entry: the entry, its header metadata and hashes, and
    warnings found on reading it (metadata cut short when stored, an alpha loaders assume)."""

    entry: Entry
    #: the header's ``__metadata__``, in full when the file still holds it
    metadata: dict[str, Any] | None
    #: sha256, AutoV2 and the tensor hash, when computed for the file as it is now
    hashes: dict[str, str] | None
    #: the entry's warnings and those of this reading
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        """The ``show --json`` object."""
        out = self.entry.show_json()
        out["warnings"] = self.warnings
        out["metadata"] = self.metadata
        out["hashes"] = self.hashes
        return out

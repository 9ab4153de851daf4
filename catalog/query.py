"""Reading the index: listing, full-text search, name resolution, ``show``.

The ``ls --json`` object is built in one place (``public``) so the CLI, the TUI
and other tools all see the same contract.
"""

from __future__ import annotations

import difflib
import re

import orjson

from .errors import AmbiguousName, EntryNotFound
from .library import Library
from .registry import base_filter, base_words
from .rows import decode

#: the ``ls --json`` contract, in order
PUBLIC_FIELDS = (
    "path", "category", "theme", "name", "kind", "format", "network", "base_model",
    "base_model_name", "base_variant", "base_candidates", "arch", "model_kind", "rank", "alpha", "dtype", "tensor_count", "parts", "size",
    "trigger_words", "strength", "strength_range", "notes", "source", "previews",
    "warnings", "error",
)
SORTABLE = {"path", "name", "category", "theme", "base_model", "rank", "strength", "format",
            "size", "alpha", "mtime_ns"}
MAX_QUERY_CHARS = 1000


def public(row: dict) -> dict:
    """The ``ls --json`` object of a decoded row."""
    return {k: row.get(k) for k in PUBLIC_FIELDS}


def list_entries(lib: Library, *, category: str | None = None, theme: str | None = None,
                 base: str | None = None, fmt: str | None = None, order_by: str = "path",
                 descending: bool = False, limit: int | None = None,
                 offset: int = 0) -> list[dict]:
    where, args = _filters(category=category, theme=theme, base=base, fmt=fmt)
    sql = f"select * from entries{where}{_order(order_by, descending)}"
    if limit is not None:
        sql += f" limit {int(limit)} offset {int(offset)}"
    return [public(decode(r)) for r in lib.db.query(sql, args)]


def count_entries(lib: Library, **filters: str | None) -> int:
    where, args = _filters(**filters)
    return lib.db.execute(f"select count(*) from entries{where}", args).fetchone()[0]


def search(lib: Library, query: str, *, limit: int = 200, category: str | None = None,
           base: str | None = None, fmt: str | None = None) -> list[dict]:
    """Full-text search; every word must match (as a prefix), best matches first.

    A word that names a family or SDXL variant (``flux``, ``qwen-image``, ``pony``) filters the
    base model instead, unless ``base`` is already given.
    """
    if base is None:
        query, base = base_words(query)
    match = fts_query(query)
    if not match:
        return list_entries(lib, category=category, base=base, fmt=fmt, limit=limit)
    where, args = _filters(category=category, base=base, fmt=fmt, table="e")
    where = where.replace(" where ", " and ", 1)
    order = "order by f.rank" if _few_matches(lib, match) else "order by f.rowid"
    sql = (
        "select e.* from entries_fts f join entries e on e.rowid = f.rowid "
        f"where entries_fts match ?{where} {order} limit {int(limit)}"
    )
    return [public(decode(r)) for r in lib.db.query(sql, [match, *args])]


#: above this many matches, relevance ranking costs more than it tells
RANKED_MATCHES = 2000


def _few_matches(lib: Library, match: str) -> bool:
    """Whether ranking the matches is cheap: bm25 scores every match before the limit.

    A one-letter or very common word matches a large share of a 100k library;
    ranking all of it costs ~70 ms and says little, so those come back in index
    order, which FTS5 streams and the limit cuts short.
    """
    sql = f"select count(*) from (select 1 from entries_fts where entries_fts match ? limit {RANKED_MATCHES + 1})"
    return lib.db.execute(sql, [match]).fetchone()[0] <= RANKED_MATCHES


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: quoted prefix terms, ANDed.

    Users type punctuation, quotes and operators; quoting each word keeps the
    FTS5 syntax out of their way, and the length cap keeps a pasted novel cheap.
    """
    words = re.findall(r"\w+", text[:MAX_QUERY_CHARS])
    return " ".join(f'"{w}"*' for w in words[:32])


def resolve(lib: Library, name_or_path: str) -> str:
    """The library path of an entry given by its name (the file stem) or a path."""
    db = lib.db
    if _looks_like_path(name_or_path):
        rel = lib.relpath(name_or_path) if not _is_rel_known(lib, name_or_path) else name_or_path
        rel = rel.rstrip("/")
        if list(db.query("select 1 from entries where path = ?", [rel])):
            return rel
        raise EntryNotFound(f"no entry at {rel!r} in the index", path=lib.root)
    paths = [r["path"] for r in db.query("select path from entries where name = ?", [name_or_path])]
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        raise AmbiguousName(f"{name_or_path!r} matches {len(paths)} entries: " + ", ".join(paths))
    names = [r[0] for r in db.execute("select name from entries")]
    close = difflib.get_close_matches(name_or_path, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else None
    raise EntryNotFound(f"no entry named {name_or_path!r}", hint=hint)


def show(lib: Library, name_or_path: str) -> dict:
    """Everything known about one entry, with the source of each field."""
    rel = resolve(lib, name_or_path)
    row = decode(next(lib.db.query("select * from entries where path = ?", [rel])))
    out = public(row)
    for key in ("title", "description", "negative_prompt", "themes", "tags", "type",
                "base_model_claim", "license", "parents", "training", "evidence",
                "alpha_source", "has_conv", "data_size", "sources", "card_digest"):
        out[key] = row.get(key)
    out["has_conv"] = bool(out["has_conv"])
    meta = list(lib.db.query("select metadata from header_metadata where path = ?", [rel]))
    out["metadata"] = orjson.loads(meta[0]["metadata"]) if meta else {}
    hashes = list(lib.db.query("select sha256, autov2, tensor_sha256, size, mtime_ns from hashes "
                               "where path = ?", [rel]))
    out["hashes"] = _fresh_hashes(hashes[0], row) if hashes else None
    if row.get("alpha") is None and row.get("rank") and row.get("format") == "diffusers":
        out["warnings"] = out["warnings"] + [
            "no alpha stored: loaders assume alpha = rank (scale 1.0)"]
    return out


def _fresh_hashes(h: dict, row: dict) -> dict | None:
    if h["size"] != row["size"] or h["mtime_ns"] != row["mtime_ns"]:
        return None
    return {"sha256": h["sha256"], "autov2": h["autov2"], "tensor_sha256": h["tensor_sha256"]}


def _looks_like_path(text: str) -> bool:
    return "/" in text or text.endswith((".safetensors", ".ckpt", ".pt", ".bin", ".pth"))


def _is_rel_known(lib: Library, text: str) -> bool:
    return bool(list(lib.db.query("select 1 from entries where path = ?", [text.rstrip("/")])))


def _filters(*, category: str | None = None, theme: str | None = None, base: str | None = None,
             fmt: str | None = None, table: str = "") -> tuple[str, list]:
    prefix = f"{table}." if table else ""
    clauses, args = [], []
    for col, value in (("category", category), ("theme", theme), base_filter(base or ""),
                       ("format", fmt)):
        if value:
            clauses.append(f"{prefix}{col} = ?")
            args.append(value)
    return ((" where " + " and ".join(clauses)) if clauses else "", args)


def _order(order_by: str, descending: bool) -> str:
    col = order_by if order_by in SORTABLE else "path"
    return f" order by {col} {'desc' if descending else 'asc'}, path"

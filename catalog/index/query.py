"""Reading the index: listing, full-text search, name resolution, ``show``.

Entries come back as :class:`~catalog.index.entry.Entry` objects; their
``to_json()`` is the ``ls --json`` contract, so the CLI, the TUI and other tools
all see the same one.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from catalog.index import stored_metadata
from catalog.errors import AmbiguousName, EntryNotFound, PathOutsideLibrary
from catalog.index.db import JSON_COLUMNS, decode
from catalog.index.entry import COLUMNS, LS_FIELDS, Entry, EntryDetails
from catalog.index.library_folder import LibraryFolder
from catalog.index.row_codec import inflated
from catalog.detect.registry import base_filter, base_words

#: the ``ls --json`` contract, in order (declared by :class:`Entry`)
PUBLIC_FIELDS = LS_FIELDS
SORTABLE = {"path", "name", "category", "theme", "base_model", "rank", "strength", "format",
            "size", "alpha", "mtime_ns"}
MAX_QUERY_CHARS = 1000


def list_entries(lib: LibraryFolder, *, category: str | None = None, theme: str | None = None,
                 base: str | None = None, fmt: str | None = None, order_by: str = "path",
                 descending: bool = False, limit: int | None = None,
                 offset: int = 0) -> list[Entry]:
    return list(iter_entries(lib, category=category, theme=theme, base=base, fmt=fmt, order_by=order_by,
                             descending=descending, limit=limit, offset=offset))


def iter_entries(lib: LibraryFolder, *, category: str | None = None, theme: str | None = None,
                 base: str | None = None, fmt: str | None = None, order_by: str = "path",
                 descending: bool = False, limit: int | None = None, offset: int = 0,
                 fields: tuple[str, ...] = PUBLIC_FIELDS) -> Iterator[Entry]:
    """Entries one at a time, in order, holding only ``fields`` (a subset of
    ``PUBLIC_FIELDS``; the JSON columns among them decoded, the rest ``None``).

    Rows stream from SQLite: ``ls --json | head`` over a million entries prints its
    first rows at once, and ``ls`` of 10,000 reads only the columns it shows.
    """
    where, args = _filters(category=category, theme=theme, base=base, fmt=fmt)
    cols = ", ".join(f"[{f}]" for f in fields)
    sql = f"select {cols} from entries{where}{_order(order_by, descending)}"
    if limit is not None:
        sql += f" limit {int(limit)} offset {int(offset)}"
    json_at = [i for i, f in enumerate(fields) if f in JSON_COLUMNS]
    loads = orjson.loads
    # the ``ls --json`` fields lead the declaration: passed by position, an entry costs a
    # quarter of what keywords cost (10,000 rows: 20 ms less)
    by_position = fields == COLUMNS[:len(fields)]
    cursor = lib.db.conn.execute(sql, args)
    while batch := cursor.fetchmany(512):
        for row in batch:
            if json_at:
                row = list(row)
                for i in json_at:
                    if isinstance(row[i], str):
                        row[i] = loads(row[i])
                    elif isinstance(row[i], bytes):  # stored deflated (catalog.index.row_codec)
                        row[i] = loads(inflated(row[i]))
            yield Entry(*row) if by_position else Entry(**dict(zip(fields, row)))


def count_entries(lib: LibraryFolder, **filters: str | None) -> int:
    where, args = _filters(**filters)
    return lib.db.execute(f"select count(*) from entries{where}", args).fetchone()[0]


def entry_names(lib: LibraryFolder) -> set[str]:
    """Every entry name in the index: a new entry must not take one (a name must stay unambiguous)."""
    return {r[0] for r in lib.db.execute("select name from entries")}


def loadable_paths(lib: LibraryFolder) -> list[str]:
    """Every entry whose tensors can be read (not a pickle), by path: what ``hash --all`` reads."""
    return [r[0] for r in lib.db.execute(
        "select path from entries where format != 'pickle' or format is null order by path")]


def strength(lib: LibraryFolder, rel: str) -> float | None:
    """The recommended strength of the entry at ``rel`` (None when no card or header says)."""
    row = next(lib.db.query("select strength from entries where path = ?", [rel]), None)
    if row is None:
        raise EntryNotFound(f"no entry at {rel!r}", hint="run `lutnav scan` to index it")
    return row["strength"]


def search(lib: LibraryFolder, query: str, *, limit: int = 200, category: str | None = None,
           base: str | None = None, fmt: str | None = None) -> list[Entry]:
    """Full-text search; every word must match (as a prefix), best matches first.

    CJK text has no spaces between words, so its runs of characters match as
    substrings anywhere (``风景`` finds ``自然风景``) through :func:`_search_cjk`;
    other words in the same query still match as word prefixes. A word that names a
    family or SDXL variant (``flux``, ``qwen-image``, ``pony``) filters the base model
    instead, unless ``base`` is already given.
    """
    if base is None:
        query, base = base_words(query)
    runs = cjk_runs(query[:MAX_QUERY_CHARS])
    if runs:
        return _search_cjk(lib, query, runs, limit=limit, category=category, base=base, fmt=fmt)
    match = fts_query(query)
    if not match:
        return list_entries(lib, category=category, base=base, fmt=fmt, limit=limit)
    where, args = _filters(category=category, base=base, fmt=fmt, table="e")
    where = where.replace(" where ", " and ", 1)
    cols = ", ".join(f"e.[{f}]" for f in PUBLIC_FIELDS)
    if not where:
        return _search_all(lib, match, cols, limit)
    order = "order by f.rank" if _few_matches(lib, match) else "order by f.rowid"
    sql = (
        f"select {cols} from entries_fts f join entries e on e.rowid = f.rowid "
        f"where entries_fts match ?{where} {order} limit {int(limit)}"
    )
    return [_entry(r) for r in lib.db.execute(sql, [match, *args])]


#: above this many matches, relevance ranking costs more than it tells
RANKED_MATCHES = 2000


def _entry(values: tuple) -> Entry:
    """An entry from the ``PUBLIC_FIELDS`` columns of one row."""
    return Entry.from_row(decode(dict(zip(PUBLIC_FIELDS, values))))


def _search_all(lib: LibraryFolder, match: str, cols: str, limit: int) -> list[Entry]:
    """``search`` without filters, reading the full-text index once for common words.

    The first ``RANKED_MATCHES + 1`` hits (in index order) both count the matches and,
    when there are more, are the answer; a prefix that matches a large share of a
    million entries is the costly part, so it is read once, not once to count and once
    to list. Few hits are then ranked, which is cheap for them.
    """
    conn = lib.db.conn
    ids = [r[0] for r in conn.execute(
        f"select rowid from entries_fts where entries_fts match ? limit {RANKED_MATCHES + 1}", [match])]
    if len(ids) <= RANKED_MATCHES:
        sql = (f"select {cols} from entries_fts f join entries e on e.rowid = f.rowid "
               f"where entries_fts match ? order by f.rank limit {int(limit)}")
        return [_entry(r) for r in conn.execute(sql, [match])]
    ids = ids[:max(0, int(limit))]
    if not ids:
        return []
    rows = {r[0]: r[1:] for r in conn.execute(
        f"select e.rowid, {cols} from entries e where e.rowid in ({','.join('?' * len(ids))})", ids)}
    return [_entry(rows[i]) for i in ids if i in rows]


def _few_matches(lib: LibraryFolder, match: str) -> bool:
    """Whether ranking the matches is cheap: bm25 scores every match before the limit.

    A one-letter or very common word matches a large share of a 100k library;
    ranking all of it costs ~70 ms and says little, so those come back in index
    order, which FTS5 streams and the limit cuts short.
    """
    sql = f"select count(*) from (select 1 from entries_fts where entries_fts match ? limit {RANKED_MATCHES + 1})"
    return lib.db.execute(sql, [match]).fetchone()[0] <= RANKED_MATCHES


_CJK_RUN = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]+")


def cjk_runs(text: str) -> list[str]:
    """The runs of CJK characters (ideographs, kana, hangul, full-width forms) in ``text``."""
    return _CJK_RUN.findall(text)


def _search_cjk(lib: LibraryFolder, query: str, runs: list[str], *, limit: int, category: str | None,
                base: str | None, fmt: str | None) -> list[Entry]:
    """Entries whose text holds every CJK run of ``query`` and every other word in it.

    All of it runs on the trigram table, which holds only the rows with CJK text:
    terms of three or more characters through its index, shorter ones (which
    trigrams cannot match) checked on each row it yields. Other words of a mixed
    query match as substrings here, not only as word prefixes. Rows come in index
    order, the limit cutting the scan short.
    """
    text = query[:MAX_QUERY_CHARS]
    words = re.findall(r"\w+", _CJK_RUN.sub(" ", text))
    terms = list(dict.fromkeys([*runs, *words]))[:32]
    clauses, args = [], []
    long = [t for t in terms if len(t) >= 3]
    if long:
        clauses.append("c.text match ?")
        args.append(" ".join('"' + t.replace('"', '""') + '"' for t in long))
    for term in (t for t in terms if len(t) < 3):
        if _CJK_RUN.fullmatch(term):  # CJK has no case: no lower() on every row
            clauses.append("instr(c.text, ?) > 0")
            args.append(term)
        else:
            clauses.append("instr(lower(c.text), ?) > 0")
            args.append(term.lower())
    where, filter_args = _filters(category=category, base=base, fmt=fmt, table="e")
    cols = ", ".join(f"e.[{f}]" for f in PUBLIC_FIELDS)
    sql = (f"select {cols} from entries_cjk c join entries e on e.rowid = c.rowid where "
           + " and ".join(clauses) + where.replace(" where ", " and ", 1)
           + f" order by c.rowid limit {int(limit)}")
    return [_entry(r) for r in lib.db.execute(sql, [*args, *filter_args])]


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: quoted prefix terms, ANDed.

    Users type punctuation, quotes and operators; quoting each word keeps the
    FTS5 syntax out of their way, and the length cap keeps a pasted novel cheap.
    """
    words = re.findall(r"\w+", text[:MAX_QUERY_CHARS])
    return " ".join(f'"{w}"*' for w in words[:32])


def is_path_arg(text: str) -> bool:
    """The one rule every verb follows: a path contains a separator or starts with ``.`` or
    ``~``; anything else is an entry name, looked up in the catalog.

    So an entry called ``empty`` is found by name even when the current folder
    happens to hold a folder ``./empty``; write ``./empty`` to mean the folder.
    """
    return "/" in text or os.sep in text or text.startswith((".", "~"))


def resolve(lib: LibraryFolder, name_or_path: str) -> str:
    """The library path of an entry given by its name (the file stem) or a path."""
    db = lib.db
    if is_path_arg(name_or_path):
        if _is_rel_known(lib, name_or_path):
            return name_or_path.rstrip("/")
        path = Path(name_or_path).expanduser()
        if not path.exists() and not path.is_symlink():
            raise EntryNotFound("no such file or folder", path=name_or_path,
                                hint="a word without '/' is looked up as an entry name; "
                                     "`lutnav ls` lists them")
        try:
            rel = lib.relpath(path).rstrip("/")
        except PathOutsideLibrary:
            raise PathOutsideLibrary(f"not inside the library {lib.root}", path=name_or_path,
                                     hint=f"`lutnav pull {name_or_path}` adds it to the library") from None
        if list(db.query("select 1 from entries where path = ?", [rel])):
            return rel
        raise EntryNotFound(f"no entry at {rel!r} in the index", path=lib.root,
                            hint="run `lutnav scan` if the file is new; a folder is an entry only when it "
                                 "is a PEFT adapter")
    paths = _named(db, name_or_path)
    if not paths and name_or_path.lower().endswith(LORA_SUFFIXES):
        paths = _named(db, name_or_path.rsplit(".", 1)[0])
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        raise AmbiguousName(f"{name_or_path!r} matches {len(paths)} entries: " + ", ".join(paths))
    names = [r[0] for r in db.execute("select name from entries")]
    close = difflib.get_close_matches(name_or_path, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else None
    raise EntryNotFound(f"no entry named {name_or_path!r}", hint=hint)


LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".pth")


def _named(db, name: str) -> list[str]:
    return [r["path"] for r in db.query("select path from entries where name = ?", [name])]


def get(lib: LibraryFolder, name_or_path: str) -> Entry:
    """The entry given by its name or path, every column of it."""
    rel = resolve(lib, name_or_path)
    return Entry.from_row(decode(next(lib.db.query("select * from entries where path = ?", [rel]))))


def show(lib: LibraryFolder, name_or_path: str) -> EntryDetails:
    """Everything known about one entry, with the source of each field."""
    entry = get(lib, name_or_path)
    rel = entry.path
    meta = list(lib.db.query("select metadata from header_metadata where path = ?", [rel]))
    weights = lib.abspath(rel) / "adapter_model.safetensors" if entry.kind == "folder" \
        else lib.abspath(rel)
    metadata, problem = stored_metadata.full(meta[0]["metadata"] if meta else None, weights,
                                             entry.header_digest)
    warnings = entry.warnings + [problem] if problem else entry.warnings
    hashes = list(lib.db.query("select sha256, autov2, tensor_sha256, size, mtime_ns from hashes "
                               "where path = ?", [rel]))
    if entry.alpha is None and entry.rank and entry.format == "diffusers":
        warnings = warnings + ["no alpha stored: loaders assume alpha = rank (scale 1.0)"]
    return EntryDetails(entry, metadata, _fresh_hashes(hashes[0], entry) if hashes else None, warnings)


def _fresh_hashes(h: dict, entry: Entry) -> dict | None:
    if h["size"] != entry.size or h["mtime_ns"] != entry.mtime_ns:
        return None
    return {"sha256": h["sha256"], "autov2": h["autov2"], "tensor_sha256": h["tensor_sha256"]}


def _is_rel_known(lib: LibraryFolder, text: str) -> bool:
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
    tie = "" if col == "path" else ", path"  # path is unique: ordered by it, rows stream off its index
    return f" order by {col} {'desc' if descending else 'asc'}{tie}"

"""The index database: opened in one place, WAL, migrated on open.

The tree and its sidecars are the truth; everything here can be rebuilt by a
scan, so a migration that cannot carry data over may simply clear a table.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

import orjson

from catalog.index import row_codec
from catalog.index.entry import FTS_COLUMNS, JSON_COLUMNS  # noqa: F401  (the columns, declared by Entry)
from catalog.errors import IndexDamaged, IndexReadOnly


def _import_sqlite_utils():
    """Import sqlite-utils without letting it pull in numpy and pandas.

    ``sqlite_utils.db`` imports both at module level (``importlib.import_module``
    under ``try/except ImportError``), only to map their scalar types to column
    types; the catalog never stores those. There is no switch to turn that off,
    and numpy costs about 0.1 s of every ``lutnav`` start-up (``lutnav --help``
    0.21 s with this, 0.28 s without) and breaks the catalog's no-numpy rule.

    A ``None`` entry in ``sys.modules`` is the documented way to make one import
    raise ImportError; the entries are removed right after, so a later
    ``import numpy`` works as usual. Where numpy is already loaded (inside a
    trainer) nothing is hidden. ``tests/test_db_import.py`` checks all three,
    and tells when a new sqlite-utils makes this unnecessary.
    """
    hidden = [m for m in ("numpy", "pandas") if m not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail fast
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()
Migrations = sqlite_utils.Migrations

migrations = Migrations("lutnav")


def decode(row: dict) -> dict:
    """A row from SQLite with its JSON columns parsed back (deflated and compact forms expanded)."""
    out = dict(row)
    row_codec.inflate(out)
    for col in JSON_COLUMNS:
        value = out.get(col)
        if isinstance(value, str):
            out[col] = orjson.loads(value)
    if "sources" in out or "header_fields" in out:
        row_codec.unpack(out)
    return out


#: The full-text columns of m001–m003 are :data:`FTS_COLUMNS`, declared by ``Entry``;
#: ``tests/test_entry.py`` pins them, since changing them needs a migration of its own.
@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["entries"].create(
        {
            "path": str, "kind": str, "category": str, "theme": str, "name": str,
            "size": int, "mtime_ns": int, "inode": int, "sidecar_sig": str,
            "format": str, "network": str, "base_model": str, "base_model_name": str,
            "evidence": str, "rank": int, "alpha": float, "alpha_source": str,
            "dtype": str, "tensor_count": int, "parts": str, "has_conv": int,
            "data_size": int, "header_digest": str,
            "title": str, "description": str, "trigger_words": str, "strength": float,
            "strength_range": str, "negative_prompt": str, "notes": str, "themes": str,
            "tags": str, "type": str, "base_model_claim": str, "source": str,
            "license": str, "previews": str, "parents": str, "training": str,
            "sources": str, "header_fields": str, "header_sources": str,
            "card_digest": str, "warnings": str, "error": str, "scanned_at": float,
        },
        pk="path",
    )
    for cols in (["name"], ["category", "theme"], ["base_model"], ["format"], ["data_size"]):
        db["entries"].create_index(cols)
    db["header_metadata"].create({"path": str, "metadata": str}, pk="path")
    db["hashes"].create(
        {"path": str, "size": int, "mtime_ns": int, "sha256": str, "autov2": str,
         "tensor_sha256": str, "computed_at": float},
        pk="path",
    )
    db["hashes"].create_index(["tensor_sha256"])
    db["entries"].enable_fts(FTS_COLUMNS, create_triggers=True, tokenize="unicode61 remove_diacritics 2")


def _fts_table(db: sqlite_utils.Database, prefix: str, update_of: bool) -> None:
    """The word index of ``entries`` and the triggers that keep it, as m002 and m007 write them."""
    cols = ", ".join(f"[{c}]" for c in FTS_COLUMNS)
    new = ", ".join(f"new.[{c}]" for c in FTS_COLUMNS)
    old = ", ".join(f"old.[{c}]" for c in FTS_COLUMNS)
    db.execute(f"create virtual table [entries_fts] using fts5({cols}, "
               f"tokenize='unicode61 remove_diacritics 2', prefix='{prefix}', content=[entries])")
    db.execute(f"create trigger [entries_ai] after insert on [entries] begin "
               f"insert into [entries_fts] (rowid, {cols}) values (new.rowid, {new}); end")
    db.execute(f"create trigger [entries_ad] after delete on [entries] begin "
               f"insert into [entries_fts] ([entries_fts], rowid, {cols}) "
               f"values ('delete', old.rowid, {old}); end")
    db.execute(f"create trigger [entries_au] after update {f'of {cols} ' if update_of else ''}on [entries] "
               f"begin insert into [entries_fts] ([entries_fts], rowid, {cols}) "
               f"values ('delete', old.rowid, {old}); "
               f"insert into [entries_fts] (rowid, {cols}) values (new.rowid, {new}); end")


def _drop_fts_table(db: sqlite_utils.Database) -> None:
    for trigger in ("entries_ai", "entries_ad", "entries_au"):
        db.execute(f"drop trigger if exists [{trigger}]")
    db.execute("drop table if exists [entries_fts]")


@migrations()
def m002_fts_prefix_index(db: sqlite_utils.Database) -> None:
    """Prefix indexes for 1–3 characters: live search types one letter at a time.

    Measured at 100k entries: 'ink' 27 → 11 ms, 'ink w' 51 → 20 ms.
    sqlite-utils' ``enable_fts`` has no prefix option, so the table and its
    triggers are written out here, in the same shape.
    """
    db["entries"].disable_fts()
    _fts_table(db, prefix="1 2 3", update_of=False)
    db.execute("insert into [entries_fts] ([entries_fts]) values ('rebuild')")


def _cjk_text(row: str) -> str:
    return " || ' ' || ".join(f"coalesce({row}.[{c}], '')" for c in FTS_COLUMNS)


def _non_ascii(expr: str) -> str:
    """True when ``expr`` holds a character outside ASCII (its UTF-8 bytes outnumber its
    characters): a check that costs next to nothing on the English rows of a scan."""
    return f"length(cast(({expr}) as blob)) != length({expr})"


@migrations()
def m003_cjk_trigram(db: sqlite_utils.Database) -> None:
    """A trigram index of the rows that hold non-ASCII text, for search inside CJK words.

    The word index cannot find 风景 in 自然风景: Chinese and Japanese have no
    spaces, so a whole run of characters is one token. Trigrams match any
    substring of three or more characters; shorter CJK queries scan this table
    only. The triggers skip plain-ASCII rows, so an English library pays a
    length check per row, and they fire on updates of the text columns only.
    """
    db.execute("create virtual table [entries_cjk] using fts5(text, tokenize='trigram')")
    new, cols = _cjk_text("new"), ", ".join(f"[{c}]" for c in FTS_COLUMNS)
    db.execute(f"create trigger [entries_cjk_ai] after insert on [entries] when {_non_ascii(new)} begin "
               f"delete from [entries_cjk] where rowid = new.rowid; "
               f"insert into [entries_cjk] (rowid, text) values (new.rowid, {new}); end")
    db.execute("create trigger [entries_cjk_ad] after delete on [entries] begin "
               "delete from [entries_cjk] where rowid = old.rowid; end")
    db.execute(f"create trigger [entries_cjk_au] after update of {cols} on [entries] begin "
               f"delete from [entries_cjk] where rowid = old.rowid; "
               f"insert into [entries_cjk] (rowid, text) select new.rowid, {new} where {_non_ascii(new)}; end")
    text = _cjk_text("entries")
    db.execute(f"insert into [entries_cjk] (rowid, text) select rowid, {text} from [entries] "
               f"where {_non_ascii(text)}")


@migrations()
def m004_entry_count(db: sqlite_utils.Database) -> None:
    """The number of entries kept by triggers: ``count(*)`` reads every row of an index
    (a tenth of a second at a million entries), and the TUI asks for it on start."""
    db["entries"].enable_counts()


def entry_count(db: sqlite_utils.Database) -> int:
    """How many entries the index holds, from the trigger-kept count."""
    try:
        found = db.execute("select count from [_counts] where [table] = 'entries'").fetchone()
    except sqlite3.OperationalError:  # the count table was removed by hand: count the rows
        found = None
    return found[0] if found else db.execute("select count(*) from entries").fetchone()[0]


@migrations()
def m005_family_fields(db: sqlite_utils.Database) -> None:
    """What the family registry adds: an SDXL variant, an LLM's architecture, a full model's kind,
    and the families the shapes allow when they allow several (a sidecar may pick among them).

    The registry also names families older versions left unknown, so every row is
    marked stale (its mtime forgotten): the next scan re-reads each header once.
    """
    for col in ("base_variant", "arch", "model_kind", "base_candidates"):
        if col not in db["entries"].columns_dict:
            db["entries"].add_column(col, str)
    db["entries"].create_index(["base_variant"], if_not_exists=True)
    db.execute("update entries set mtime_ns = -1")


@migrations()
def m006_compact_sources(db: sqlite_utils.Database) -> None:
    """``sources``, ``header_fields`` and ``header_sources`` in their compact forms
    (:mod:`catalog.index.row_codec`): a third less per row, the same dicts on reading."""
    conn = db.conn
    cols = ("sources", "header_fields", "header_sources")
    todo = conn.execute("select rowid, * from entries where header_sources is not null "
                        "or sources like '{%'")
    names = [d[0] for d in todo.description]
    updates = []
    for values in todo:
        row = decode(dict(zip(names, values)))
        row_codec.pack(row)
        updates.append([*(None if row[c] is None else orjson.dumps(row[c]).decode() for c in cols),
                        row["rowid"]])
    conn.executemany("update entries set sources = ?, header_fields = ?, header_sources = ? "
                     "where rowid = ?", updates)
    if updates:  # the update trigger re-indexed every row: merge the full-text segments back
        conn.execute("insert into [entries_fts] ([entries_fts]) values ('optimize')")


@migrations()
def m007_smaller_index(db: sqlite_utils.Database) -> None:
    """A million entries in under a gigabyte (1.68 GB before), every reader seeing the same.

    - The columns only ``show`` and listings' JSON read are stored deflated against a
      preset dictionary (:data:`row_codec.DEFLATED_COLUMNS`): two fifths of a row.
    - The word index keeps its 1-character prefix index only (``prefix='1'``): the
      2- and 3-character ones were half of its size, and a 2–3 letter prefix is few
      enough words to merge at search time (``bench/scan.py`` measures it). The
      1-character one stays: a search of one letter would merge every word.
    - Its update trigger fires only when a column it indexes changes (as the CJK
      one does), so rewriting any other column never re-indexes a row.
    - ``base_variant`` (SDXL only, empty elsewhere) is indexed where it is set.

    Existing rows are carried over in rowid order, a slice at a time (a million
    never sit in memory), with the word index dropped meanwhile and rebuilt once.
    """
    conn = db.conn
    _drop_fts_table(db)
    packed = row_codec.DEFLATED_COLUMNS
    select = f"select rowid, {', '.join(packed)} from entries where rowid > ? order by rowid limit 5000"
    update = f"update entries set {', '.join(f'[{c}] = ?' for c in packed)} where rowid = ?"
    last = -(2**63)
    while batch := conn.execute(select, [last]).fetchall():
        updates = []
        for rowid, *values in batch:
            row = dict(zip(packed, values))
            row_codec.deflate(row)
            if list(row.values()) != values:
                updates.append([*row.values(), rowid])
        conn.executemany(update, updates)
        last = batch[-1][0]
    _fts_table(db, prefix="1", update_of=True)
    db.execute("insert into [entries_fts] ([entries_fts]) values ('rebuild')")
    db.execute("drop index if exists [idx_entries_base_variant]")
    db.execute("create index [idx_entries_base_variant] on [entries] ([base_variant]) "
               "where [base_variant] is not null")


#: the page size of a new index: rows of about a kilobyte waste less of a page of 8 KB
#: than of one of 4 KB (an index made before keeps its own; only VACUUM could change it)
PAGE_SIZE = 8192


def connect(path: Path, *, migrate: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) and, unless told not to, migrate the index at ``path``."""
    conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    # no plugins: loading them scans every installed distribution's entry points (tens
    # of ms in a venv with the training stack, on every `ls`), and the index uses none
    db = sqlite_utils.Database(conn, execute_plugins=False)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # takes effect on a new, empty file only
        db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrate and migrations.pending(db):
            migrations.apply(db)
    except sqlite3.DatabaseError as err:
        conn.close()
        raise damaged(path, err) from None
    return db


def damaged(path: Path, err: sqlite3.DatabaseError) -> Exception:
    """``err`` as the one line it deserves: :class:`IndexDamaged` when the file is not a
    database (or is corrupt), ``err`` itself for errors of the moment (a lock, a full disk)."""
    if isinstance(err, sqlite3.OperationalError) and not _CORRUPT.search(str(err)):
        return err
    return IndexDamaged(f"the index is damaged ({err})", path=path)


#: what SQLite says of a file that is not (or no longer) a database
_CORRUPT = re.compile(r"not a database|malformed|corrupt", re.IGNORECASE)


def pending(db: sqlite_utils.Database) -> bool:
    """Whether the index needs migrating (which takes the library lock)."""
    return bool(migrations.pending(db))


def connect_read_only(path: Path) -> sqlite_utils.Database:
    """Open an index that this user cannot write (a read-only share, another user's library).

    ``mode=ro`` reads a WAL index while its owner may still write it; where SQLite
    cannot even create the shared-memory file beside it, ``immutable=1`` reads it
    as it stands (nobody can be writing it there either).
    """
    from urllib.parse import quote

    if not path.is_file():
        raise IndexReadOnly("the library was never indexed, and its index cannot be created here",
                            path=path.parent)
    base = f"file:{quote(str(path))}"
    for flags in ("?mode=ro", "?mode=ro&immutable=1"):
        conn = sqlite3.connect(base + flags, uri=True, timeout=30.0, check_same_thread=False)
        try:
            conn.execute("select count(*) from sqlite_master").fetchone()
        except sqlite3.DatabaseError as err:
            conn.close()
            if _CORRUPT.search(str(err)):
                raise damaged(path, err) from None
            continue
        db = sqlite_utils.Database(conn)
        if migrations.pending(db):
            conn.close()
            raise IndexReadOnly("the index was written by an older lutnav and cannot be upgraded here",
                                path=path)
        return db
    raise IndexReadOnly("the index cannot be opened for reading", path=path)

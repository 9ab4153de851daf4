"""The compact stored forms of ``sources`` / ``header_fields`` (migration m006) and the
deflated columns (m007): an index written by an older lutnav upgrades in place, and every
reader sees the same dicts."""

from __future__ import annotations

import json

import orjson
from click.testing import CliRunner

from catalog.cards.card_slot import card_slot
from catalog.index import row_codec
from catalog.index.db import PAGE_SIZE, decode
from catalog.index.library import Library
from lutnav.cli import cli


def _cli_json(root, *args) -> object:
    result = CliRunner().invoke(cli, ["--library", str(root), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _outputs(lib: Library) -> dict:
    """``ls --json`` and every entry's ``show --json``, as a user's script reads them."""
    root = lib.root
    listed = _cli_json(root, "ls", "--json")
    return {"ls": listed, **{e["path"]: _cli_json(root, "show", e["path"], "--json") for e in listed}}


def _rows(lib: Library) -> dict[str, dict]:
    return {r["path"]: decode(r) for r in lib.db.query("select * from entries")}


def _stored(lib: Library, *cols: str) -> list[list]:
    """The stored values of ``cols``, deflated ones as their text."""
    out = []
    for values in lib.db.execute(f"select {', '.join(cols)} from entries"):
        row = dict(zip(cols, values))
        row_codec.inflate(row)
        out.append([row[c] for c in cols])
    return out


#: the full-text update trigger as m002 wrote it: on any update of a row
_OLD_TRIGGER = (
    "create trigger [entries_au] after update on [entries] begin "
    "insert into [entries_fts] ([entries_fts], rowid, {cols}) values ('delete', old.rowid, {old}); "
    "insert into [entries_fts] (rowid, {cols}) values (new.rowid, {new}); end")


def _old_trigger(lib: Library) -> None:
    from catalog.index.db import FTS_COLUMNS

    lib.db.execute("drop trigger [entries_au]")
    lib.db.execute(_OLD_TRIGGER.format(cols=", ".join(f"[{c}]" for c in FTS_COLUMNS),
                                       old=", ".join(f"old.[{c}]" for c in FTS_COLUMNS),
                                       new=", ".join(f"new.[{c}]" for c in FTS_COLUMNS)))


def _downgrade(lib: Library) -> None:
    """Write every row back as an index before m006 held it (full forms, all text, the
    update trigger of m002), and forget m006 and m007."""
    db = lib.db
    for path, row in _rows(lib).items():
        db.execute("update entries set sources = ?, header_fields = ?, header_sources = ?, training = ?, "
                   "evidence = ? where path = ?",
                   [orjson.dumps(row[c]).decode() for c in ("sources", "header_fields", "header_sources")]
                   + [None if row["training"] is None else orjson.dumps(row["training"]).decode(),
                      row["evidence"], path])
    _old_trigger(lib)
    db.execute("delete from _sqlite_migrations where name in ('m006_compact_sources', 'm007_smaller_index')")
    db.conn.commit()


def test_an_older_index_upgrades_to_the_compact_forms_with_identical_output(demo_library):
    lib = demo_library
    fresh_rows, fresh_out = _rows(lib), _outputs(lib)
    stored = _stored(lib, "sources", "header_fields", "header_sources")
    assert all(s is None or s.startswith("[") for row in stored for s in row), "a scan writes compact forms"
    assert any(json.loads(hf or "[[]]")[0] for _, hf, _ in stored), "the demo has header card fields"

    _downgrade(lib)
    old = list(lib.db.execute("select sources from entries"))
    assert all(s.startswith("{") for (s,) in old)
    old_rows = _rows(lib)
    assert old_rows == fresh_rows  # both stored forms read back as the same dicts
    old_size = sum(len(s) for (s,) in old)
    lib.db.conn.close()

    upgraded = Library(lib.root)  # opening migrates
    stored = _stored(upgraded, "sources", "header_fields", "header_sources")
    assert all(hs is None for _, _, hs in stored)
    assert sum(len(s or "") for s, _, _ in stored) < old_size / 2
    assert _rows(upgraded) == fresh_rows
    assert _outputs(upgraded) == fresh_out


def test_a_sidecar_edit_after_the_upgrade_keeps_the_header_card_fields(demo_library):
    """A card re-merge reads the stored header fields back: the header's values and
    labels must still rank under the new card."""
    lib = demo_library
    rows = _rows(lib)
    path, row, card = next((p, r, card_slot(lib.abspath(p)).path) for p, r in rows.items()
                           if r["header_fields"].get("title") and not card_slot(lib.abspath(p)).path.exists())
    _downgrade(lib)
    lib.db.conn.close()
    upgraded = Library(lib.root)
    card.write_text('notes = "edited"\n', encoding="utf-8")
    upgraded.scan_all()
    after = _rows(upgraded)[path]
    assert after["notes"] == "edited" and after["sources"]["notes"] == "card"
    assert after["header_fields"] == row["header_fields"]
    assert after["header_sources"] == row["header_sources"]
    assert after["title"] == row["title"] and after["sources"]["title"] == row["sources"]["title"]


_DEFLATED = ", ".join(row_codec.DEFLATED_COLUMNS)


def test_a_scan_stores_the_show_only_columns_deflated_and_reads_them_back(demo_library):
    lib = demo_library
    raw = list(lib.db.execute(f"select {_DEFLATED} from entries"))
    assert any(isinstance(v, bytes) for row in raw for v in row), "the demo's training/evidence deflate"
    assert all(v is None or isinstance(v, bytes) or len(v.encode()) < 40 for row in raw for v in row), \
        "only values too short to gain stay text"
    text = _stored(lib, *row_codec.DEFLATED_COLUMNS)
    assert sum(len(v) for row in raw for v in row if v) < sum(len(v.encode()) for row in text for v in row if v) / 2
    shown = _cli_json(lib.root, "show", next(r["path"] for r in _rows(lib).values() if r["training"]), "--json")
    assert isinstance(shown["training"], dict) and shown["evidence"]


def test_an_index_before_the_deflated_columns_upgrades_with_identical_output(demo_library):
    """An index of m006 (the show-only columns as text, the old update trigger, prefix
    indexes of 1-3 characters) opens: its rows are deflated in place, ``ls``/``show``
    print the same bytes, and searches find the same entries."""
    lib = demo_library
    fresh_out = _outputs(lib)
    searches = ("in", "ink", "i", "wa", "anime girl", "风景", "sd")
    found = {q: [e.path for e in lib.search(q)] for q in searches}
    from catalog.index.db import _drop_fts_table, _fts_table

    _drop_fts_table(lib.db)
    _fts_table(lib.db, prefix="1 2 3", update_of=False)
    lib.db.execute("insert into [entries_fts] ([entries_fts]) values ('rebuild')")
    cols = row_codec.DEFLATED_COLUMNS
    for rowid, *values in lib.db.execute(f"select rowid, {_DEFLATED} from entries").fetchall():
        row = dict(zip(cols, values))
        row_codec.inflate(row)
        lib.db.execute(f"update entries set {', '.join(f'{c} = ?' for c in cols)} where rowid = ?",
                       [*row.values(), rowid])
    lib.db.execute("delete from _sqlite_migrations where name = 'm007_smaller_index'")
    lib.db.conn.commit()
    assert all(not isinstance(v, bytes) for row in lib.db.execute(f"select {_DEFLATED} from entries")
               for v in row)
    assert {q: [e.path for e in lib.search(q)] for q in searches} == found
    lib.db.conn.close()

    upgraded = Library(lib.root)
    raw = list(upgraded.db.execute(f"select {_DEFLATED} from entries"))
    assert any(isinstance(v, bytes) for row in raw for v in row)
    assert _outputs(upgraded) == fresh_out
    assert {q: [e.path for e in upgraded.search(q)] for q in searches} == found
    assert all(found[q] for q in ("in", "ink", "i", "wa")), "the demo has entries for these prefixes"
    prefix = upgraded.db.execute("select sql from sqlite_master where name = 'entries_fts'").fetchone()[0]
    assert "prefix='1'" in prefix


def _fts_pages(root) -> list:
    import sqlite3

    with sqlite3.connect(root / ".lutnav" / "catalog.db") as conn:
        return conn.execute("select id, block from entries_fts_data order by id").fetchall()


def test_the_update_trigger_reindexes_search_columns_only(demo_library):
    lib = demo_library
    path = next(iter(_rows(lib)))
    before = _fts_pages(lib.root)
    lib.db.execute("update entries set training = null, warnings = '[]', mtime_ns = -1 where path = ?", [path])
    lib.db.conn.commit()
    assert _fts_pages(lib.root) == before, "a column no search reads must not re-index the row"
    lib.db.execute("update entries set notes = 'zzqfindme' where path = ?", [path])
    lib.db.conn.commit()
    assert [r.path for r in lib.search("zzqfindme")] == [path]


def test_a_new_index_uses_larger_pages_and_an_old_one_keeps_its_own(tmp_path):
    import sqlite3

    from catalog.index.db import connect

    new = connect(tmp_path / "new.db")
    assert new.execute("pragma page_size").fetchone()[0] == PAGE_SIZE
    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as conn:
        conn.execute("pragma page_size = 4096")
        conn.execute("create table t (x)")
    conn.close()
    old = connect(old_path)
    assert old.execute("pragma page_size").fetchone()[0] == 4096
    assert "entries" in old.table_names()

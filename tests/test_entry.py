"""The typed entry is the one schema: the table, the derived lists and the JSON contracts agree with it.

The ``ls --json`` / ``show --json`` bytes must not change with the move from dicts
to :class:`Entry`: they are compared with what the stored row itself gives, read
straight from SQLite and decoded as before.
"""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from catalog.index import entry as E
from catalog.index.db import decode
from catalog.index.entry import Entry
from catalog.index.library import Library
from lutnav.cli import cli
from lutnav.demo import write_demo
from lutnav.tui.entry_table import COLUMNS

#: the full-text columns the migrations m001–m003 created (a change needs a migration)
MIGRATED_FTS = ("name", "category", "theme", "title", "trigger_words", "themes", "tags", "notes", "description")
OPTION = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Library:
    root = tmp_path_factory.mktemp("entry") / "loras"
    write_demo(root)
    lib = Library(root)
    lib.scan_all()
    return lib


def _rows(lib: Library) -> list[dict]:
    return [decode(r) for r in lib.db.query("select * from entries order by path")]


def test_the_created_table_has_exactly_the_entry_fields(demo):
    assert set(demo.db["entries"].columns_dict) == E.column_names()


def test_the_full_text_columns_are_the_ones_the_migrations_indexed():
    assert E.FTS_COLUMNS == MIGRATED_FTS


def test_derived_lists_are_columns_of_the_entry():
    for derived in (E.LS_FIELDS, E.SHOW_FIELDS, E.JSON_COLUMNS, E.CARD_FIELDS, E.TABLE_FIELDS, E.FACT_FIELDS):
        assert set(derived) <= E.column_names()
    assert E.SHOW_FIELDS[:len(E.LS_FIELDS)] == E.LS_FIELDS
    assert E.LIST_FIELDS <= set(E.CARD_FIELDS) <= set(E.SHOW_FIELDS)
    assert len(E.CARD_FIELDS) == len(set(E.CARD_FIELDS))


def test_the_tui_table_shows_fields_the_browser_reads():
    assert {c.field for c in COLUMNS} <= set(E.TABLE_FIELDS)
    assert all(c.sort_key in (None, c.field) for c in COLUMNS)


def test_every_stored_row_round_trips_through_an_entry(demo):
    rows = _rows(demo)
    assert len(rows) > 10
    for row in rows:
        entry = Entry.from_row(row)
        assert entry.as_dict() == {k: row[k] for k in E.COLUMNS}
        assert orjson.dumps(entry.to_json(), option=OPTION) == \
            orjson.dumps({k: row[k] for k in E.LS_FIELDS}, option=OPTION)


def test_ls_json_is_the_stored_rows_in_the_contract_order(demo):
    out = CliRunner().invoke(cli, ["--library", str(demo.root), "ls", "--json"])
    assert out.exit_code == 0, out.output
    expected = [{k: row[k] for k in E.LS_FIELDS} for row in _rows(demo)]
    assert out.output.encode() == orjson.dumps(expected, option=OPTION) + b"\n"


def test_show_json_is_the_row_with_its_details(demo):
    for row in _rows(demo):
        out = CliRunner().invoke(cli, ["--library", str(demo.root), "show", "--json", row["path"]])
        assert out.exit_code == 0, out.output
        shown = orjson.loads(out.output)
        assert list(shown) == [*E.SHOW_FIELDS, "metadata", "hashes"]
        assert {k: shown[k] for k in E.SHOW_FIELDS if k not in ("warnings", "has_conv")} == \
            {k: row[k] for k in E.SHOW_FIELDS if k not in ("warnings", "has_conv")}
        assert shown["has_conv"] is bool(row["has_conv"])
        assert shown["warnings"][:len(row["warnings"])] == row["warnings"]


def test_search_json_is_ls_objects(demo):
    out = CliRunner().invoke(cli, ["--library", str(demo.root), "search", "--json", "ink"])
    hits = orjson.loads(out.output)
    by_path = {row["path"]: row for row in _rows(demo)}
    assert hits and all(list(h) == list(E.LS_FIELDS) for h in hits)
    assert all(h == {k: by_path[h["path"]][k] for k in E.LS_FIELDS} for h in hits)


def test_a_listing_reads_only_the_columns_asked_for(demo):
    from catalog.index.query import iter_entries

    first = next(iter_entries(demo, fields=("path", "name")))
    assert first.path and first.name and first.notes is None and first.rank is None


def test_a_scan_starts_each_row_from_fresh_blank_facts():
    one, two = E.blank_facts(), E.blank_facts()
    one["warnings"].append("x")
    assert two["warnings"] == [] and set(one) == set(E.FACT_FIELDS) and one["base_model"] == "unknown"

"""The compact stored forms of ``sources`` / ``header_fields`` (migration m006): an index
written by an older lutnav upgrades in place, and every reader sees the same dicts."""

from __future__ import annotations

import json

import orjson
from click.testing import CliRunner

from catalog.cards.card_slot import card_slot
from catalog.index.db import decode
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


def _downgrade(lib: Library) -> None:
    """Write every row back in the full forms an index before m006 held, and forget m006."""
    db = lib.db
    for path, row in _rows(lib).items():
        db.execute("update entries set sources = ?, header_fields = ?, header_sources = ? where path = ?",
                   [orjson.dumps(row[c]).decode() for c in ("sources", "header_fields", "header_sources")]
                   + [path])
    db.execute("delete from _sqlite_migrations where name = 'm006_compact_sources'")
    db.conn.commit()


def test_an_older_index_upgrades_to_the_compact_forms_with_identical_output(demo_library):
    lib = demo_library
    fresh_rows, fresh_out = _rows(lib), _outputs(lib)
    stored = list(lib.db.execute("select sources, header_fields, header_sources from entries"))
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
    stored = list(upgraded.db.execute("select sources, header_fields, header_sources from entries"))
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

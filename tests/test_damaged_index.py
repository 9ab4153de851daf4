"""An index file that is not a database (garbage bytes, a torn copy, a bad disk) is one line
that says how to rebuild it, in every verb — never a sqlite traceback."""

from __future__ import annotations

import os
import sqlite3

import pytest
from click.testing import CliRunner

from catalog.index.library import Library
from lutnav.cli import cli
from tests.mixlib import SD1_PICK, pick, write_lora

VERBS = [["ls"], ["scan"], ["show", "ink"], ["search", "ink"], ["prompt", "ink:0.5"], ["hash", "ink"],
         ["card", "ink", "--set", "strength=0.5"], ["dupes"]]


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "loras"
    write_lora(root / "style/ink/ink.safetensors", pick("sd1", SD1_PICK))
    lib = Library(root)
    lib.scan_all()
    lib.db.close()  # closed now, not when collected: a late close would checkpoint over the spoiled file
    return root


def spoil(root, head: bytes) -> None:
    index = root / ".lutnav" / "catalog.db"
    for extra in ("-wal", "-shm"):
        (root / ".lutnav" / f"catalog.db{extra}").unlink(missing_ok=True)
    index.write_bytes(head + os.urandom(16384))


@pytest.mark.parametrize("head", [b"", b"SQLite format 3\x00"], ids=["garbage", "sqlite-magic"])
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0])
def test_a_garbage_index_is_one_line_naming_it_and_the_way_out(library, head, verb):
    spoil(library, head)
    result = CliRunner().invoke(cli, ["--library", str(library), *verb])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert f"{library / '.lutnav' / 'catalog.db'}: the index is damaged" in result.output
    assert "run `lutnav scan`" in result.output


def test_pages_spoiled_after_opening_are_one_line_too(library):
    """A header that still reads, with the tables behind it torn: SQLite finds out mid-query."""
    index = library / ".lutnav" / "catalog.db"
    with sqlite3.connect(index) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    data = bytearray(index.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page:] = os.urandom(len(data) - page)
    index.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["--library", str(library), "ls"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "the index is damaged" in result.output

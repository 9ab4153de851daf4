"""The index keeps no header metadata; ``show`` reads all of it from the file."""

from __future__ import annotations

import json

import pytest

from catalog.index.library import Library
from catalog.index.stored_metadata import MARK
from tests.hubserver import run
from tests.lorafiles import write_kohya

BIG = 3 * 1024 * 1024  # characters: small enough for a quick test, far over the stored bound


def _freq(n_chars: int) -> str:
    """A kohya tag-frequency table of at least ``n_chars`` characters."""
    text = json.dumps({"10_ink": {f"tag_{i}": i for i in range(n_chars // 16)}})
    assert len(text) >= n_chars
    return text


def _stored_chars(lib: Library) -> int:
    return lib.db.execute("select coalesce(sum(length(metadata)), 0) from header_metadata").fetchone()[0]


def test_large_metadata_values_do_not_grow_the_index_and_show_reads_them_back(tmp_path):
    root = tmp_path / "loras"
    freq = _freq(BIG)
    for i in range(2):
        write_kohya(root / "style" / "big" / f"big{i}.safetensors", seed=i,
                    metadata={"ss_tag_frequency": freq, "ss_output_name": f"big{i}"})
    lib = Library(root)
    lib.scan_all()
    assert _stored_chars(lib) == 0, "the files keep it"
    out = json.loads(run(root, "show", "big0", "--json").output)
    assert out["metadata"]["ss_tag_frequency"] == freq
    assert out["metadata"]["ss_output_name"] == "big0"
    assert (root / ".lutnav" / "catalog.db").stat().st_size < len(freq)


def test_a_file_changed_since_the_scan_says_so_instead_of_mixing_versions(tmp_path):
    root = tmp_path / "loras"
    path = write_kohya(root / "style" / "big" / "big.safetensors", metadata={"ss_tag_frequency": _freq(BIG)})
    lib = Library(root)
    lib.scan_all()
    write_kohya(path, seed=5, metadata={"ss_tag_frequency": "{}"})
    info = lib.details("big")
    assert any("run `lutnav scan`" in w for w in info.warnings)


@pytest.mark.parametrize("meta", [
    {"ss_output_name": "ink", "ss_network_dim": "8", "modelspec.title": "Ink"},  # small
    # a few KB of ``ss_*`` keys, as sd-scripts writes: gigabytes at a million entries
    {**{f"ss_key_{i}": f"value {i} " * 8 for i in range(40)},
     "ss_tag_frequency": json.dumps({"10_ink": {f"tag_{i}": i for i in range(300)}})},
    {f"key_{i}": "v" * 1000 for i in range(2000)},  # 2 MB in small values
], ids=["small", "kohya", "many-keys"])
def test_the_index_keeps_no_metadata_and_show_reads_it_whole_from_the_file(tmp_path, meta):
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink.safetensors", metadata=meta)
    lib = Library(root)
    lib.scan_all()
    assert _stored_chars(lib) == 0
    assert lib.details("ink").metadata == meta
    assert json.loads(run(root, "show", "ink", "--json").output)["metadata"] == meta


def test_metadata_an_older_index_stored_is_dropped_by_the_next_scan_of_the_file(tmp_path):
    root = tmp_path / "loras"
    meta = {"ss_output_name": "ink"}
    path = write_kohya(root / "style" / "ink" / "ink.safetensors", metadata=meta)
    lib = Library(root)
    lib.scan_all()
    lib.db.execute("insert into header_metadata (path, metadata) values (?, ?)",
                   ["style/ink/ink.safetensors", json.dumps(meta)])
    lib.db.conn.commit()
    assert lib.details("ink").metadata == meta  # read as stored
    write_kohya(path, seed=3, metadata={"ss_output_name": "ink2"})
    lib.scan_all()
    assert _stored_chars(lib) == 0
    assert lib.details("ink").metadata == {"ss_output_name": "ink2"}


def test_stand_ins_of_an_older_index_still_read_the_file(tmp_path):
    root = tmp_path / "loras"
    meta = {"ss_output_name": "ink", "ss_tag_frequency": "x" * 5000}
    write_kohya(root / "style" / "ink" / "ink.safetensors", metadata=meta)
    lib = Library(root)
    lib.scan_all()
    lib.db.execute("insert into header_metadata (path, metadata) values (?, ?)",
                   ["style/ink/ink.safetensors", json.dumps({MARK: "2 keys; read from the file by show"})])
    lib.db.conn.commit()
    assert lib.details("ink").metadata == meta


def test_a_pickle_has_no_metadata_and_no_warning_about_it(tmp_path):
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink.safetensors", metadata={"ss_output_name": "ink"})
    (root / "style" / "old").mkdir(parents=True)
    (root / "style" / "old" / "old.ckpt").write_bytes(b"\x80\x02}q\x00.")
    lib = Library(root)
    lib.scan_all()
    info = lib.details("old")
    assert info.metadata == {} and not any("metadata" in w for w in info.warnings)


def test_header_text_fields_are_stored_cut_and_say_so(tmp_path):
    root = tmp_path / "loras"
    huge = "ink " * 500_000  # 2 MB of title, description, trigger words, training comment
    meta = {"modelspec.title": huge, "modelspec.description": huge, "modelspec.trigger_phrase": huge,
            "ss_training_comment": huge, "ss_output_name": "ink"}
    write_kohya(root / "style" / "ink" / "ink.safetensors", metadata=meta)
    lib = Library(root)
    lib.scan_all()
    row_chars = lib.db.execute("select length(title) + length(description) + length(trigger_words) + "
                               "length(training) + length(header_fields) from entries").fetchone()[0]
    assert row_chars < 256 * 1024
    info = lib.details("ink")
    assert info.entry.title.startswith("ink ink") and "characters in the file]" in info.entry.title
    assert info.metadata["modelspec.title"] == huge  # show still has the whole header

"""Scanning a library into the index: incremental, rebuildable, hostile-tree safe."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.errors import AmbiguousName, EntryNotFound, LibraryNotFound
from catalog.index.entry import Entry
from catalog.index.library import Library
from tests.lorafiles import write_kohya


def _lib(tmp_path: Path) -> Path:
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink_wash.safetensors", rank=8, alpha=4)
    write_kohya(root / "character" / "cats" / "zzcat.safetensors", width=1024, seed=1)
    return root


def _rows(lib: Library) -> dict[str, dict]:
    return {e.path: e for e in lib.entries()}


def test_scan_indexes_category_theme_and_header_facts(tmp_path):
    lib = Library(_lib(tmp_path))
    summary = lib.scan_all()
    assert summary.added == 2 and summary.total == 2
    rows = _rows(lib)
    ink = rows["style/ink/ink_wash.safetensors"]
    assert (ink.category, ink.theme, ink.name) == ("style", "ink", "ink_wash")
    assert ink.format == "kohya"
    assert ink.base_model == "sd1"
    assert ink.rank == 8 and ink.alpha == 4.0
    assert rows["character/cats/zzcat.safetensors"].base_model == "sd2"


def test_rescan_reads_only_what_changed(tmp_path):
    root = _lib(tmp_path)
    lib = Library(root)
    lib.scan_all()
    again = lib.scan_all()
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 2)
    write_kohya(root / "style" / "ink" / "ink_wash.safetensors", rank=16, alpha=16)
    (root / "character" / "cats" / "zzcat.safetensors").unlink()
    third = lib.scan_all()
    assert (third.updated, third.removed) == (1, 1)
    assert _rows(lib)["style/ink/ink_wash.safetensors"].rank == 16
    assert list(_rows(lib)) == ["style/ink/ink_wash.safetensors"]


def test_sidecar_change_is_picked_up_without_rereading_weights(tmp_path):
    root = _lib(tmp_path)
    lib = Library(root)
    lib.scan_all()
    (root / "style" / "ink" / "ink_wash.json").write_text(
        '{"activation text": "mo_shui", "preferred weight": 0.7}', "utf-8")
    s = lib.scan_all()
    assert s.updated == 1
    ink = _rows(lib)["style/ink/ink_wash.safetensors"]
    assert ink.trigger_words == ["mo_shui"] and ink.strength == 0.7
    assert ink.rank == 8  # header facts kept


def test_deleting_the_index_and_rescanning_gives_the_same_rows(tmp_path):
    root = _lib(tmp_path)
    (root / "style" / "ink" / "ink_wash.toml").write_text('strength = 0.6\ntrigger_words = ["ink"]\n')
    lib = Library(root)
    lib.scan_all()
    before = lib.entries()
    del lib
    for f in (root / ".lutnav").iterdir():
        f.unlink()
    (root / ".lutnav").rmdir()
    lib2 = Library(root)
    lib2.scan_all()
    assert lib2.entries() == before


def test_broken_files_are_listed_with_an_error_and_never_stop_the_scan(tmp_path):
    root = _lib(tmp_path)
    (root / "style" / "ink" / "empty.safetensors").write_bytes(b"")
    good = (root / "style" / "ink" / "ink_wash.safetensors").read_bytes()
    (root / "style" / "ink" / "cut.safetensors").write_bytes(good[: len(good) // 2])
    lib = Library(root)
    s = lib.scan_all()
    assert s.total == 4 and s.broken == 2
    rows = _rows(lib)
    for name in ("empty", "cut"):
        err = rows[f"style/ink/{name}.safetensors"].error
        assert err and f"{name}.safetensors" in err
    assert rows["style/ink/ink_wash.safetensors"].error is None


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickle_files_are_listed_and_never_unpickled(tmp_path):
    root = _lib(tmp_path)
    marker = tmp_path / "marker"
    for suffix in (".ckpt", ".pt", ".bin"):
        (root / "style" / "ink" / f"evil{suffix}").write_bytes(pickle.dumps(_Evil(str(marker))))
    lib = Library(root)
    lib.scan_all()
    from lutnav.cli import cli
    from click.testing import CliRunner

    for args in (["show", "style/ink/evil.ckpt", "--json"], ["hash", "--all"], ["dupes"]):
        CliRunner().invoke(cli, ["--library", str(root), *args])
    assert not marker.exists()
    evil = _rows(lib)["style/ink/evil.ckpt"]
    assert evil.format == "pickle" and any("not loaded" in w for w in evil.warnings)


def test_symlinks_never_lead_out_of_the_library_and_loops_end(tmp_path):
    root = _lib(tmp_path)
    outside = tmp_path / "outside"
    write_kohya(outside / "secret.safetensors")
    (root / "style" / "escape").symlink_to(outside, target_is_directory=True)
    (root / "style" / "ink" / "link.safetensors").symlink_to(outside / "secret.safetensors")
    (root / "style" / "loop").symlink_to(root / "style", target_is_directory=True)
    lib = Library(root)
    s = lib.scan_all()
    paths = set(_rows(lib))
    assert not any("secret" in p or "escape" in p or p.endswith("link.safetensors") for p in paths)
    assert any("outside the library" in line for line in s.skipped)
    assert len(paths) == 2


def test_non_utf8_file_names_are_reported_not_fatal(tmp_path):
    root = _lib(tmp_path)
    bad = os.path.join(os.fsencode(root / "style" / "ink"), b"caf\xe9.safetensors")
    with open(bad, "wb") as fh:
        fh.write((root / "style" / "ink" / "ink_wash.safetensors").read_bytes())
    lib = Library(root)
    s = lib.scan_all()
    assert s.total == 2
    assert any("not valid UTF-8" in line for line in s.skipped)


def test_missing_library_is_a_clear_error_and_creates_nothing(tmp_path):
    with pytest.raises(LibraryNotFound) as info:
        Library(tmp_path / "nope")
    assert "nope" in str(info.value) and "lutnav demo" in str(info.value)
    assert not (tmp_path / "nope").exists()


def test_names_resolve_and_ambiguity_lists_the_paths(tmp_path):
    root = _lib(tmp_path)
    write_kohya(root / "character" / "dogs" / "ink_wash.safetensors", seed=5)
    lib = Library(root)
    lib.scan_all()
    assert lib.resolve("zzcat") == "character/cats/zzcat.safetensors"
    with pytest.raises(AmbiguousName) as info:
        lib.resolve("ink_wash")
    assert "style/ink/ink_wash.safetensors" in str(info.value)
    assert "character/dogs/ink_wash.safetensors" in str(info.value)
    assert lib.resolve("character/dogs/ink_wash.safetensors") == "character/dogs/ink_wash.safetensors"
    with pytest.raises(EntryNotFound) as missing:
        lib.resolve("zzcatt")
    assert "zzcat" in str(missing.value)


def test_search_uses_full_text_and_survives_hostile_queries(tmp_path):
    root = _lib(tmp_path)
    (root / "style" / "ink" / "ink_wash.toml").write_text(
        'notes = "Chinese ink wash painting, mountains"\ntrigger_words = ["mo_shui"]\n')
    lib = Library(root)
    lib.scan_all()
    assert [e.name for e in lib.search("ink wash")] == ["ink_wash"]
    assert [e.name for e in lib.search("mountain")] == ["ink_wash"]
    assert lib.search("zebra") == []
    for hostile in ('"', "AND OR NOT", "x" * 10_000, "*", "a:b(c)", "'; drop table entries;--"):
        lib.search(hostile)
    assert len(lib.entries()) == 2


SCAN_SCRIPT = """
import sys
from catalog.index.library import Library
Library(sys.argv[1]).scan_all(full=True)
"""


def test_two_scans_at_once_do_not_corrupt_the_index(tmp_path):
    root = _lib(tmp_path)
    for i in range(30):
        write_kohya(root / "style" / "many" / f"m{i}.safetensors", seed=i)
    procs = [subprocess.Popen([sys.executable, "-c", SCAN_SCRIPT, str(root)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lib = Library(root)
    assert len(lib.entries()) == 32
    assert lib.db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert lib.scan_all().unchanged == 32


def test_peft_folder_is_one_entry(tmp_path):
    root = _lib(tmp_path)
    folder = root / "industry" / "medical" / "med_qa"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "base_model_name_or_path": "meta-llama/Llama-3.2-1B",'
        ' "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}')
    from catalog.files.safetensors_writer import write_safetensors

    tensors = {}
    for layer in range(2):
        for proj in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = ("F32", [4, 64], None)
            tensors[f"{key}.lora_B.weight"] = ("F32", [64, 4], None)
    write_safetensors(folder / "adapter_model.safetensors", tensors)
    lib = Library(root)
    lib.scan_all()
    rows = _rows(lib)
    med = rows["industry/medical/med_qa"]
    assert (med.format, med.base_model, med.rank, med.alpha) == ("peft", "llm", 4, 8.0)
    assert not any(p.startswith("industry/medical/med_qa/") for p in rows)


def test_previous_weights_kept_by_an_update_are_not_entries(tmp_path):
    root = _lib(tmp_path)
    write_kohya(root / "style" / "ink" / "ink_wash.prev.safetensors", seed=9)
    lib = Library(root)
    assert lib.scan_all().total == 2
    assert "style/ink/ink_wash.prev.safetensors" not in _rows(lib)


def test_a_sidecar_edit_keeps_the_header_metadata(tmp_path):
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink_wash.safetensors", metadata={"ss_output_name": "ink"})
    lib = Library(root)
    lib.scan_all()
    (root / "style" / "ink" / "ink_wash.toml").write_text("strength = 0.4\n")
    lib.scan_all()
    info = lib.details("ink_wash")
    assert info.entry.strength == 0.4 and info.metadata["ss_output_name"] == "ink"


UNGUARDED = """
import sys
import catalog.index.scan
from catalog.index.library import Library
catalog.index.scan.POOL_THRESHOLD = 1
print(Library(sys.argv[1]).scan_all().total)
"""


def test_worker_scan_from_a_script_without_main_guard_still_completes(tmp_path):
    root = _lib(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "2"
    assert len(Library(root).entries()) == 2


@pytest.mark.parametrize("threads", [1, 2], ids=["forked", "forkserver (a threaded caller, as the TUI)"])
def test_worker_processes_give_the_same_rows_as_inline(tmp_path, monkeypatch, threads):
    import catalog.index.scan

    root = _lib(tmp_path)
    for i in range(6):
        write_kohya(root / "style" / "many" / f"m{i}.safetensors", seed=i, rank=4 + (i % 2) * 4)
    inline = Library(root)
    inline.scan_all()
    expected = inline.entries()
    monkeypatch.setattr(catalog.index.scan, "POOL_THRESHOLD", 1)
    monkeypatch.setattr(catalog.index.scan.threading, "active_count", lambda: threads)
    assert catalog.index.scan._worker_context().get_start_method() == ("fork" if threads == 1 else "forkserver")
    pooled = Library(root)
    pooled.scan_all(full=True)
    assert pooled.entries() == expected


def test_the_library_count_follows_adds_removals_and_an_index_made_before_it_was_kept(tmp_path):
    from catalog.index import browse

    root = _lib(tmp_path)
    lib = Library(root)
    lib.scan_all()

    def exact() -> int:
        return lib.db.execute("select count(*) from entries").fetchone()[0]

    assert browse.count(lib, browse.View()) == exact() > 0
    write_kohya(root / "style" / "new" / "added.safetensors", seed=9)
    next(root.rglob("*.safetensors")).unlink()
    lib.scan_all()
    assert browse.count(lib, browse.View()) == exact()
    # an index from before the count was kept: migrating counts what is there
    lib.db.execute("drop table _counts")
    for name in ("entries_counts_insert", "entries_counts_delete"):
        lib.db.execute(f"drop trigger [{name}]")
    lib.db.execute("delete from _sqlite_migrations where name = 'm004_entry_count'")
    lib.db.conn.commit()
    reopened = Library(root)
    assert browse.count(reopened, browse.View()) == exact()


def test_search_without_filters_lists_what_the_ranked_and_unranked_queries_list(tmp_path):
    """Common words (more hits than are ranked) and rare ones give the rows the plain
    queries give, in the same order."""
    from catalog.index import query
    from catalog.index.db import decode

    root = _lib(tmp_path)
    lib = Library(root)
    lib.scan_all()
    base = list(lib.db.query("select * from entries"))
    with lib.db.atomic():
        for i in range(query.RANKED_MATCHES + 50):
            row = dict(base[i % len(base)], path=f"copy/{i}/x.safetensors", name=f"common_{i}",
                       notes="rare" if i % 500 == 0 else "plain")
            lib.db["entries"].insert(row)

    def plain(match: str, order: str, limit: int) -> list[Entry]:
        cols = ", ".join(f"e.[{f}]" for f in query.PUBLIC_FIELDS)
        sql = (f"select {cols} from entries_fts f join entries e on e.rowid = f.rowid "
               f"where entries_fts match ? order by {order} limit {limit}")
        return [Entry(**decode(dict(zip(query.PUBLIC_FIELDS, r)))) for r in lib.db.execute(sql, [match])]

    many = lib.search("common", limit=30)
    assert len(many) == 30 and many == plain('"common"*', "f.rowid", 30)
    rare = lib.search("rare")
    assert len(rare) == 5 and rare == plain('"rare"*', "f.rank", 200)
    assert lib.search("zzq_nothing") == []
    assert lib.search("common", limit=0) == []

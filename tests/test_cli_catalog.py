"""The catalog verbs through the real CLI: ls/search/show/card/hash/dupes/prompt."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lutnav.cli import cli
from tests.lorafiles import write_kohya

LS_KEYS = {"path", "category", "theme", "name", "format", "base_model", "base_model_name", "rank",
           "alpha", "dtype", "trigger_words", "strength", "strength_range", "notes", "source",
           "previews", "warnings", "error"}


def run(root: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, ["--library", str(root), *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _lib(tmp_path: Path) -> Path:
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink_wash.safetensors", rank=8, alpha=4)
    write_kohya(root / "character" / "cats" / "zzcat.safetensors", seed=1)
    return root


def test_ls_json_contract(tmp_path):
    root = _lib(tmp_path)
    out = json.loads(run(root, "ls", "--json").output)
    assert [e["path"] for e in out] == ["character/cats/zzcat.safetensors", "style/ink/ink_wash.safetensors"]
    for entry in out:
        assert LS_KEYS <= set(entry)
        assert isinstance(entry["trigger_words"], list) and isinstance(entry["warnings"], list)
    assert json.loads(run(root, "ls", "--category", "style", "--json").output)[0]["name"] == "ink_wash"
    assert json.loads(run(root, "ls", "--base", "sdxl", "--json").output) == []


def test_show_json_names_the_source_of_each_field(tmp_path):
    root = _lib(tmp_path)
    folder = root / "style" / "ink"
    (folder / "ink_wash.toml").write_text('strength = 0.7\n')
    (folder / "ink_wash.json").write_text('{"activation text": "mo_shui", "preferred weight": 0.5}')
    info = json.loads(run(root, "show", "ink_wash", "--json").output)
    assert info["strength"] == 0.7 and info["sources"]["strength"] == "card"
    assert info["trigger_words"] == ["mo_shui"] and info["sources"]["trigger_words"] == "a1111"
    assert "768" in info["sources"]["base_model"]
    text = run(root, "show", "ink_wash").output
    assert "mo_shui" in text and "a1111" in text


def test_card_set_writes_the_sidecar_and_keeps_the_lora_untouched(tmp_path):
    root = _lib(tmp_path)
    lora = root / "style" / "ink" / "ink_wash.safetensors"
    before = lora.read_bytes()
    run(root, "card", "ink_wash", "--set", "strength=0.7", "--set", 'trigger_words=mo_shui, ink')
    card = (root / "style" / "ink" / "ink_wash.toml").read_text("utf-8")
    assert "0.7" in card and "mo_shui" in card
    assert lora.read_bytes() == before
    info = json.loads(run(root, "show", "ink_wash", "--json").output)
    assert info["trigger_words"] == ["mo_shui", "ink"] and info["strength"] == 0.7


def test_card_set_bad_key_or_value_leaves_the_file_untouched(tmp_path):
    root = _lib(tmp_path)
    card = root / "style" / "ink" / "ink_wash.toml"
    card.write_text("strength = 0.5\n")
    run(root, "scan")
    for bad in ("strenght=0.7", "strength=abc", "strength_range=0.9~0.1"):
        result = run(root, "card", "ink_wash", "--set", bad, ok=False)
        assert result.exit_code != 0
        assert "Traceback" not in result.output and "strength" in result.output
    assert card.read_text() == "strength = 0.5\n"
    assert "did you mean" in run(root, "card", "ink_wash", "--set", "strenght=1", ok=False).output


def test_card_edited_on_disk_since_indexed_keeps_both_edits(tmp_path):
    root = _lib(tmp_path)
    card = root / "style" / "ink" / "ink_wash.toml"
    card.write_text("strength = 0.5\n")
    run(root, "show", "ink_wash")
    card.write_text('strength = 0.5\nnotes = "my hand edit"\n')
    run(root, "card", "ink_wash", "--set", "strength=0.9")
    assert card.read_text() == 'strength = 0.9\nnotes = "my hand edit"\n'
    card.write_text('strength = 0.6\nnotes = "my hand edit"\n')  # the same field, by hand
    result = run(root, "card", "ink_wash", "--set", "strength=0.8", ok=False)
    assert result.exit_code == 1 and "`strength` is 0.6 on disk now" in result.output
    assert "my hand edit" in card.read_text() and "0.6" in card.read_text()


def test_hash_matches_sha256_autov2_and_tensor_hash_survives_metadata_edits(tmp_path):
    root = tmp_path / "loras"
    a = write_kohya(root / "style" / "a" / "a.safetensors", metadata={"ss_output_name": "a"})
    b = write_kohya(root / "style" / "b" / "b.safetensors", metadata={"ss_output_name": "something else"})
    out = {h["path"]: h for h in json.loads(run(root, "hash", "--all", "--json").output)}
    sha = hashlib.sha256(a.read_bytes()).hexdigest()
    ha, hb = out["style/a/a.safetensors"], out["style/b/b.safetensors"]
    assert ha["sha256"] == sha and ha["autov2"] == sha[:10]
    assert ha["sha256"] != hb["sha256"] and ha["tensor_sha256"] == hb["tensor_sha256"]
    dupes = json.loads(run(root, "dupes", "--json").output)
    assert dupes == [["style/a/a.safetensors", "style/b/b.safetensors"]]


def test_moved_file_keeps_its_cached_hashes(tmp_path):
    root = _lib(tmp_path)
    run(root, "hash", "--all")
    src = root / "style" / "ink" / "ink_wash.safetensors"
    dst = root / "style" / "moved" / "renamed.safetensors"
    dst.parent.mkdir()
    os.rename(src, dst)
    run(root, "scan")
    info = json.loads(run(root, "show", "renamed", "--json").output)
    assert info["hashes"] and info["hashes"]["sha256"] == hashlib.sha256(dst.read_bytes()).hexdigest()


def test_prompt_tags_use_the_card_strength_by_default(tmp_path):
    root = _lib(tmp_path)
    (root / "style" / "ink" / "ink_wash.toml").write_text("strength = 0.6\n")
    assert run(root, "prompt", "ink_wash", "zzcat:0.3").output.strip() == \
        "<lora:ink_wash:0.6> <lora:zzcat:0.3>"
    for bad in ("zzcat:abc", "zzcat:", "zzcat:nan", "nobody"):
        result = run(root, "prompt", bad, ok=False)
        assert result.exit_code != 0 and "Traceback" not in result.output


def test_missing_library_exits_non_zero_without_creating_it(tmp_path):
    result = CliRunner().invoke(cli, ["--library", str(tmp_path / "nope"), "ls"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "lutnav demo" in result.output
    assert not (tmp_path / "nope").exists()


def test_demo_library_lists_every_kind(tmp_path):
    root = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--into", str(root)])
    assert result.exit_code == 0, result.output
    out = json.loads(run(root, "ls", "--json").output)
    formats = {e["format"] for e in out}
    bases = {e["base_model"] for e in out}
    assert {"kohya", "diffusers", "peft", "pickle"} <= formats
    assert {"sd1", "sdxl", "flux", "llm"} <= bases
    assert sum(1 for e in out if e["error"]) == 1
    assert any(e["previews"] for e in out)
    assert run(root, "search", "ink", "--json").output.count('"path"') >= 1


HYGIENE = """
import sys
from click.testing import CliRunner
from lutnav.cli import cli
for args in (["--help"], ["--library", sys.argv[1], "ls"], ["--library", sys.argv[1], "search", "ink"]):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
heavy = [m for m in ("torch", "numpy", "diffusers", "transformers", "textual") if m in sys.modules]
print(heavy)
"""


def test_help_and_ls_never_import_torch(tmp_path):
    root = _lib(tmp_path)
    run(root, "scan")
    out = subprocess.run([sys.executable, "-c", HYGIENE, str(root)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_catalog_package_never_imports_heavy_modules():
    code = ("import sys, pkgutil, importlib, catalog\n"
            "for m in pkgutil.walk_packages(catalog.__path__, 'catalog.'): importlib.import_module(m.name)\n"
            "print([m for m in ('torch', 'numpy', 'textual') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scan_prints_one_summary_line_when_piped(tmp_path):
    root = _lib(tmp_path)
    out = run(root, "scan").output
    assert out.count("\n") == 1 and out.startswith("2 entries: 2 added")
    summary = json.loads(run(root, "scan", "--json").output)
    assert summary["unchanged"] == 2 and summary["added"] == 0


def test_library_option_alone_runs_the_default_command(tmp_path, monkeypatch):
    import lutnav.catalog_cli as catalog_cli

    root = _lib(tmp_path)
    opened = []
    monkeypatch.setattr("lutnav.tui.app.run_app", lambda lib: opened.append(lib.root))
    result = CliRunner().invoke(cli, ["--library", str(root)])
    assert result.exit_code == 0, result.output
    assert opened == [root.resolve()]
    assert catalog_cli.tui_cmd.name == "tui"


def test_ls_refuses_an_unknown_sort_column_with_the_choices(tmp_path):
    result = run(_lib(tmp_path), "ls", "--sort", "bogus", ok=False)
    assert result.exit_code == 2
    assert "'bogus' is not one of" in result.output and "'name'" in result.output


def test_ls_with_filters_that_match_nothing_says_so(tmp_path):
    result = run(_lib(tmp_path), "ls", "--category", "nope")
    assert "no entries match --category nope" in result.output
    assert "run `lutnav scan`" not in result.output


def test_preview_and_chat_without_a_model_answer_before_importing_torch(tmp_path):
    """No configured model is said without loading torch (seconds saved on every such call)."""
    root = _lib(tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "nobody/nothing"}')
    code = ("import sys\nfrom click.testing import CliRunner\nfrom lutnav.cli import cli\n"
            "r = CliRunner().invoke(cli, sys.argv[1:])\n"
            "print('EXIT', r.exit_code, 'TORCH', 'torch' in sys.modules)\nprint(r.output)\n")
    for args in (["--library", str(root), "preview", "ink_wash"], ["chat", str(adapter), "-p", "hi"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        assert "EXIT 1 TORCH False" in out.stdout, out.stdout + out.stderr
        assert "no base model configured" in out.stdout or "not on this machine" in out.stdout


def test_ls_json_streams_the_same_document_and_stops_quietly_when_the_reader_does(tmp_path):
    import orjson

    from catalog.index.library import Library

    root = _lib(tmp_path)
    for i in range(160):  # more than the first write and than a pipe holds: the reader can leave early
        write_kohya(root / "style" / "many" / f"m{i:02d}.safetensors", seed=i)
    streamed = run(root, "ls", "--json").output
    whole = orjson.dumps([e.to_json() for e in Library(root).entries()], option=orjson.OPT_INDENT_2).decode() + "\n"
    assert streamed == whole
    assert run(root, "ls", "--json", "--category", "nothing").output == "[]\n"
    head = subprocess.Popen([sys.executable, "-c", "from lutnav.cli import main; main()", "--library", str(root),
                             "ls", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert head.stdout.readline() == b"[\n"
    head.stdout.close()  # as `| head -1` does
    assert head.wait(timeout=60) == 0
    assert b"Error" not in head.stderr.read()

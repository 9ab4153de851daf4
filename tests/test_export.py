"""``lutnav export NAME --zip``: an entry with its cards and previews, and back in with ``pull``."""

from __future__ import annotations

import json
import tomllib
import zipfile

import pytest

from tests.hubserver import lora_bytes, new_library, peft_files, png_bytes, run


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)


def shared_library(root):
    ink = root / "style" / "ink"
    ink.mkdir(parents=True)
    (ink / "ink_wash.safetensors").write_bytes(lora_bytes(seed=7))
    (ink / "ink_wash.toml").write_text(
        'trigger_words = ["inkwash"]\nstrength = 0.6\nlicense = "cc-by-4.0"\n'
        'previews = ["ink_wash.preview.png"]\n', "utf-8")
    (ink / "ink_wash.preview.png").write_bytes(png_bytes(9))
    (ink / "ink_wash.json").write_text(json.dumps({"activation text": "inkwash"}), "utf-8")
    (ink / "other.safetensors").write_bytes(lora_bytes(seed=8))
    clauses = root / "industry" / "legal" / "clauses"
    clauses.mkdir(parents=True)
    for name, data in peft_files().items():
        (clauses / name).write_bytes(data)
    (root / "style" / "old").mkdir()
    (root / "style" / "old" / "ancient.ckpt").write_bytes(b"\x80\x04pickle")
    run(root, "scan")


def test_export_writes_weights_cards_and_previews(library, tmp_path):
    shared_library(library)
    out = tmp_path / "ink.zip"
    result = run(library, "export", "ink_wash", "--zip", str(out))
    assert f"wrote {out}" in result.output
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["ink_wash.json", "ink_wash.preview.png", "ink_wash.safetensors",
                                         "ink_wash.toml"]
        assert zf.read("ink_wash.safetensors") == lora_bytes(seed=7)
        assert zf.read("ink_wash.preview.png") == png_bytes(9)
    again = run(library, "export", "ink_wash", "--zip", str(out), ok=False)
    assert again.exit_code == 1 and "already exists" in again.output
    run(library, "export", "ink_wash", "--zip", str(out), "--overwrite")


def test_exported_zip_pulls_into_another_library_with_its_card(library, tmp_path):
    shared_library(library)
    out = tmp_path / "ink.zip"
    run(library, "export", "style/ink/ink_wash.safetensors", "--zip", str(out))
    other = tmp_path / "friend"
    other.mkdir()
    run(other, "pull", str(out), "--category", "style", "--theme", "ink")
    assert (other / "style" / "ink" / "ink_wash.safetensors").read_bytes() == lora_bytes(seed=7)
    card = tomllib.loads((other / "style" / "ink" / "ink_wash.toml").read_text("utf-8"))
    assert (card["trigger_words"], card["strength"], card["license"]) == (["inkwash"], 0.6, "cc-by-4.0")
    assert card["previews"] == ["ink_wash.preview.png"]
    shown = json.loads(run(other, "show", "ink_wash", "--json").output)
    assert shown["strength"] == 0.6 and shown["previews"] == ["style/ink/ink_wash.preview.png"]
    assert json.loads((other / "style" / "ink" / "ink_wash.json").read_text("utf-8")) == {
        "activation text": "inkwash"}


def test_export_a_peft_folder(library, tmp_path):
    shared_library(library)
    out = tmp_path / "clauses.zip"
    run(library, "export", "clauses", "--zip", str(out))
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["clauses/adapter_config.json", "clauses/adapter_model.safetensors"]


def test_export_refuses_pickles_and_unknown_names(library, tmp_path):
    shared_library(library)
    result = run(library, "export", "ancient", "--zip", str(tmp_path / "a.zip"), ok=False)
    assert result.exit_code == 1 and "pickle" in result.output
    result = run(library, "export", "nope", "--zip", str(tmp_path / "b.zip"), ok=False)
    assert result.exit_code == 1 and "no entry named" in result.output
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "b.zip").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []

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
                                         "ink_wash.toml", "lutnav-export.json"]
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
        assert sorted(zf.namelist()) == ["clauses/adapter_config.json", "clauses/adapter_model.safetensors",
                                         "lutnav-export.json"]


def test_export_refuses_pickles_and_unknown_names(library, tmp_path):
    shared_library(library)
    result = run(library, "export", "ancient", "--zip", str(tmp_path / "a.zip"), ok=False)
    assert result.exit_code == 1 and "pickle" in result.output
    result = run(library, "export", "nope", "--zip", str(tmp_path / "b.zip"), ok=False)
    assert result.exit_code == 1 and "no entry named" in result.output
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "b.zip").exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def every_sidecar_library(root):
    """One LoRA whose shown fields come from every sidecar kind, each giving its own field."""
    folder = root / "style" / "ink_wash"
    folder.mkdir(parents=True)
    meta = {"ss_network_dim": "2", "ss_network_alpha": "1.0", "ss_base_model_version": "sd_v1",
            "ss_output_name": "every", "modelspec.title": "From the header"}
    (folder / "every.safetensors").write_bytes(lora_bytes(seed=3, metadata=meta))
    (folder / "every.toml").write_text('license = "cc-by-4.0"\npreviews = ["every.preview.png"]\n', "utf-8")
    (folder / "every.preview.png").write_bytes(png_bytes(4))
    (folder / "every.json").write_text(json.dumps({"negative text": "blurry"}), "utf-8")
    (folder / "every.metadata.json").write_text(json.dumps({
        "notes": "lora-manager notes", "usage_tips": json.dumps({"strength": 0.65})}), "utf-8")
    (folder / "every.civitai.info").write_text(json.dumps({"trainedWords": ["mo_shui"]}), "utf-8")
    (folder / "every.cm-info.json").write_text(json.dumps({"Tags": ["ink", "东方"]}), "utf-8")
    (folder / "README.md").write_text(
        "# 水墨\n\n### other.safetensors\n- 类型:别的\n\n### every.safetensors\n"
        "- 类型:风格迁移\n- 适用主题:自然风景、静物\n- 推荐强度:0.6 ~ 0.8\n\n## 备注\n无\n", "utf-8")
    run(root, "scan")


def test_export_then_pull_round_trips_show_json_with_every_source(library, tmp_path):
    every_sidecar_library(library)
    before = json.loads(run(library, "show", "every", "--json").output)
    assert set(before["sources"].values()) >= {
        "card", "a1111", "lora-manager", "civitai", "stability-matrix", "readme", "modelspec"}
    out = tmp_path / "every.zip"
    run(library, "export", "every", "--zip", str(out))
    other = tmp_path / "friend"
    other.mkdir()
    run(other, "pull", str(out))
    after = json.loads(run(other, "show", "every", "--json").output)
    assert after == before
    readme = (other / "style" / "ink_wash" / "README.md").read_text("utf-8")
    assert readme.startswith("### every.safetensors\n") and "other" not in readme


def test_pull_of_an_export_keeps_a_readme_section_already_there(library, tmp_path):
    every_sidecar_library(library)
    out = tmp_path / "every.zip"
    run(library, "export", "every", "--zip", str(out))
    other = tmp_path / "friend"
    (other / "style" / "ink_wash").mkdir(parents=True)
    mine = "### every.safetensors\n- type: mine\n\n### keep.safetensors\n- notes: mine too\n"
    (other / "style" / "ink_wash" / "README.md").write_text(mine, "utf-8")
    run(other, "pull", str(out))
    assert (other / "style" / "ink_wash" / "README.md").read_text("utf-8") == mine
    assert json.loads(run(other, "show", "every", "--json").output)["type"] == "mine"

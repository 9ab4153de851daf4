"""``lutnav pull PATH``: a local file, folder or zip goes through the same checks and placement."""

from __future__ import annotations

import json
import stat
import tomllib
import zipfile

import pytest

from tests.hubserver import (
    assert_refused, checkpoint_bytes, lora_bytes, new_library, peft_files, png_bytes, readme, run, tree,
)


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)


def test_a_file_with_its_card_and_preview(library, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "ink_v2.safetensors").write_bytes(lora_bytes(seed=4))
    (downloads / "ink_v2.toml").write_text('trigger_words = ["inkwash"]\nstrength = 0.7\n', "utf-8")
    (downloads / "ink_v2.preview.png").write_bytes(png_bytes(3))
    (downloads / "unrelated.safetensors").write_bytes(lora_bytes(seed=5))
    run(library, "pull", str(downloads / "ink_v2.safetensors"), "--category", "style", "--theme", "ink")
    assert tree(library) == ["style", "style/ink", "style/ink/ink_v2.preview.png",
                             "style/ink/ink_v2.safetensors",
                             "style/ink/ink_v2.toml"]
    card = tomllib.loads((library / "style" / "ink" / "ink_v2.toml").read_text("utf-8"))
    assert card["trigger_words"] == ["inkwash"] and card["strength"] == 0.7
    assert card["previews"] == ["ink_v2.preview.png"]
    assert (downloads / "ink_v2.safetensors").exists()  # the source is copied, not moved


def test_a_folder_with_a_model_card(library, tmp_path):
    folder = tmp_path / "Cyber Punk LoRA"
    folder.mkdir()
    (folder / "README.md").write_bytes(readme({"tags": ["character"], "instance_prompt": "cbpk"}))
    (folder / "cyberpunk.safetensors").write_bytes(lora_bytes("sdxl"))
    run(library, "pull", str(folder))
    entry = json.loads(run(library, "ls", "--json").output)[0]
    assert entry["path"] == "character/cyber_punk/cyberpunk.safetensors"
    assert (entry["base_model"], entry["trigger_words"]) == ("sdxl", ["cbpk"])


def test_a_zip_with_a_peft_adapter(library, tmp_path):
    archive = tmp_path / "med_qa.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in peft_files("med_qa/").items():
            zf.writestr(name, data)
    run(library, "pull", str(archive), "--category", "industry")
    assert sorted(tree(library)) == ["industry", "industry/med_qa", "industry/med_qa/med_qa",
                                     "industry/med_qa/med_qa/adapter_config.json",
                                     "industry/med_qa/med_qa/adapter_model.safetensors",
                                     "industry/med_qa/med_qa/lutnav.toml"]


def test_a_zip_that_climbs_out_is_refused(library, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.safetensors", lora_bytes())
        zf.writestr("../../outside.safetensors", lora_bytes())
    assert_refused(run(library, "pull", str(archive), ok=False), library, "path-traversal",
                   "nothing was extracted")
    assert not (tmp_path / "outside.safetensors").exists()


def test_a_zip_with_a_symlink_member_is_refused(library, tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("a.safetensors")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(run(library, "pull", str(archive), ok=False), library, "symlink")


def test_a_zip_bomb_is_refused_before_extraction(library, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.safetensors", bytes(8 * 1024 * 1024))
    assert archive.stat().st_size < 100_000
    assert_refused(run(library, "pull", str(archive), ok=False), library, "zip bomb")
    assert list((library / ".lutnav").glob("pull-*")) == []


def test_a_local_checkpoint_is_refused(library, tmp_path):
    path = tmp_path / "sd15.safetensors"
    path.write_bytes(checkpoint_bytes())
    assert_refused(run(library, "pull", str(path), ok=False), library, "full model checkpoint")
    assert path.exists()


def test_revision_makes_no_sense_for_a_path(library, tmp_path):
    path = tmp_path / "a.safetensors"
    path.write_bytes(lora_bytes())
    result = run(library, "pull", str(path), "--revision", "v1", ok=False)
    assert result.exit_code == 2 and "--revision" in result.output


def test_a_zip_with_an_adapter_at_its_root_is_named_after_the_zip(library, tmp_path):
    archive = tmp_path / "clauses_v1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in peft_files().items():
            zf.writestr(name, data)
    result = run(library, "pull", str(archive))
    assert "added industry/clauses_v1/clauses_v1 (llm, peft, rank 2)" in result.output


def test_a_broken_local_file_is_left_where_it_is_and_the_message_says_so(library, tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(lora_bytes(seed=4)[:-100])
    line = assert_refused(run(library, "pull", str(path), ok=False), library, "cut short")
    assert "left as it is" in line and "deleted" not in line
    assert path.exists()


def test_tensors_already_in_the_library_are_skipped_unless_forced(library, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ink.safetensors").write_bytes(lora_bytes(seed=4))
    run(library, "pull", str(tmp_path / "a" / "ink.safetensors"), "--category", "style")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ink.safetensors").write_bytes(lora_bytes(seed=4, metadata={"ss_note": "renamed"}))
    again = run(library, "pull", str(tmp_path / "b" / "ink.safetensors"), "--category", "style")
    assert "skipped: same tensors as style/a/ink.safetensors" in again.output
    assert [p for p in tree(library) if p.endswith(".safetensors")] == ["style/a/ink.safetensors"]
    forced = run(library, "pull", str(tmp_path / "b" / "ink.safetensors"), "--category", "style", "--force")
    assert "added style/b/ink_2.safetensors" in forced.output  # a second copy, never a second `ink`
    assert json.loads(run(library, "show", "ink", "--json").output)["path"] == "style/a/ink.safetensors"


def test_a_different_file_never_takes_a_name_another_entry_has(library, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ink.safetensors").write_bytes(lora_bytes(seed=4))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ink.safetensors").write_bytes(lora_bytes(seed=5))
    run(library, "pull", str(tmp_path / "a" / "ink.safetensors"), "--category", "style")
    second = run(library, "pull", str(tmp_path / "b" / "ink.safetensors"), "--category", "style")
    assert "added style/b/ink_2.safetensors" in second.output
    run(library, "show", "ink")  # still one entry of that name


def test_pull_creates_a_library_named_with_library(tmp_path):
    (tmp_path / "ink.safetensors").write_bytes(lora_bytes(seed=4))
    target = tmp_path / "new-lib"
    result = run(target, "pull", str(tmp_path / "ink.safetensors"), "--category", "style")
    assert f"created library {target}" in result.output
    assert (target / "style").is_dir()


def test_a_bare_word_is_not_taken_for_a_folder_of_that_name(library, tmp_path, monkeypatch):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "ink.safetensors").write_bytes(lora_bytes(seed=4))
    monkeypatch.chdir(tmp_path)
    line = assert_refused(run(library, "pull", "downloads", ok=False), library, "bare word")
    assert "./downloads" in line
    run(library, "pull", "./downloads", "--category", "style")
    assert "style/downloads/ink.safetensors" in tree(library)

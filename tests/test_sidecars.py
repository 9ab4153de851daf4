"""Every sidecar format, merged by precedence; broken and hostile sidecars only warn."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import catalog.cards.sidecar_reader as sidecar_reader
import catalog.cards.sidecars as sidecars
from catalog.cards.sidecars import read_entry_cards, sidecar_paths

# Modelled on what the writers put on disk.
A1111 = {
    "description": "Chinese ink wash landscapes.",
    "sd version": "SD1",
    "activation text": "mo_shui, ink wash",
    "preferred weight": 0.7,
    "negative text": "photo, realistic",
    "notes": "Lower the CFG a little.",
}

CIVITAI = {
    "id": 245123,
    "modelId": 201234,
    "name": "v2.0",
    "createdAt": "2024-03-01T10:00:00.000Z",
    "trainedWords": ["mo_shui", "ink wash painting"],
    "baseModel": "SD 1.5",
    "description": "<p>Ink <strong>wash</strong> style.</p><p>Use 0.6&ndash;0.8.</p>",
    "model": {"name": "Ink Wash", "type": "LORA", "nsfw": False, "poi": False},
    "files": [{"name": "ink.safetensors", "sizeKB": 147.5, "hashes": {"AutoV2": "A1B2C3D4E5"}}],
    "images": [{"url": "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/abc/width=512/1.jpeg",
                "nsfw": "None", "width": 512, "height": 768, "meta": {"prompt": "mo_shui"}}],
}

STABILITY_MATRIX = {
    "ModelId": 201234,
    "ModelName": "Ink Wash SM",
    "ModelDescription": "<p>From StabilityMatrix</p>",
    "Nsfw": False,
    "Tags": ["style", "ink"],
    "ModelType": "LORA",
    "VersionId": 245123,
    "VersionName": "v2.0",
    "BaseModel": "SD 1.5",
    "TrainedWords": ["sm_word"],
    "ImportedAt": "2024-03-02T09:00:00+00:00",
    "Hashes": {"SHA256": "ab" * 32},
    "ThumbnailImageUrl": "https://image.civitai.com/thumb.jpeg",
}


def lora_manager(preview: str, **extra) -> dict:
    return {
        "file_name": "ink",
        "model_name": "Ink Wash (LM)",
        "file_path": "/ComfyUI/models/loras/style/ink/ink.safetensors",
        "size": 151040,
        "modified": 1709280000.0,
        "sha256": "ab" * 32,
        "base_model": "SD 1.5",
        "preview_url": preview,
        "preview_nsfw_level": 0,
        "notes": "LM notes",
        "from_civitai": True,
        "civitai": {"trainedWords": ["lm_word"], "baseModel": "SD 1.5", "model": {"name": "Ink Wash"}},
        "tags": ["style", "chinese"],
        "modelDescription": "<p>LM description</p>",
        "usage_tips": json.dumps({"strength": 0.65, "clipStrength": 1.0}),
        **extra,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "loras" / "style" / "ink"
    path.mkdir(parents=True)
    (path / "ink.safetensors").write_bytes(b"not read by the sidecar code")
    return path


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")


def cards(folder: Path, header: dict | None = None, labels: dict | None = None, **kw):
    return read_entry_cards(folder / "ink.safetensors", header or {}, labels or {}, **kw)


def values(result) -> dict:
    return {name: value for name, (value, _) in result.fields.items()}


# --- each format ---------------------------------------------------------------------


def test_a1111_json(folder):
    write_json(folder / "ink.json", A1111)
    result = cards(folder)
    assert values(result) == {
        "description": "Chinese ink wash landscapes.",
        "base_model_claim": "SD1",
        "trigger_words": ["mo_shui", "ink wash"],
        "strength": 0.7,
        "negative_prompt": "photo, realistic",
        "notes": "Lower the CFG a little.",
    }
    assert {source for _, source in result.fields.values()} == {"a1111"}
    assert result.warnings == [] and result.files == {"a1111": "ink.json"}


def test_a1111_zero_weight_and_unknown_version_mean_unset(folder):
    write_json(folder / "ink.json", {**A1111, "preferred weight": 0, "sd version": "Unknown", "notes": ""})
    got = values(cards(folder))
    assert "strength" not in got and "base_model_claim" not in got and "notes" not in got


def test_civitai_info(folder):
    write_json(folder / "ink.civitai.info", CIVITAI)
    result = cards(folder)
    assert values(result) == {
        "title": "Ink Wash (v2.0)",
        "trigger_words": ["mo_shui", "ink wash painting"],
        "base_model_claim": "SD 1.5",
        "description": "Ink wash style.\nUse 0.6–0.8.",
    }
    assert result.previews == []  # a web address is never a preview
    assert result.warnings == []


def test_lora_manager_metadata(folder):
    (folder / "ink.preview.webp").write_bytes(b"RIFF....WEBP")
    write_json(folder / "ink.metadata.json", lora_manager(str(folder / "ink.preview.webp")))
    result = cards(folder)
    assert values(result) == {
        "title": "Ink Wash (LM)",
        "description": "LM description",
        "base_model_claim": "SD 1.5",
        "notes": "LM notes",
        "tags": ["style", "chinese"],
        "strength": 0.65,
        "trigger_words": ["lm_word"],
    }
    assert result.previews == ["ink.preview.webp"]
    assert result.warnings == []


def test_stability_matrix_cm_info(folder):
    write_json(folder / "ink.cm-info.json", STABILITY_MATRIX)
    result = cards(folder)
    assert values(result) == {
        "title": "Ink Wash SM (v2.0)",
        "description": "From StabilityMatrix",
        "base_model_claim": "SD 1.5",
        "trigger_words": ["sm_word"],
        "tags": ["style", "ink"],
    }
    assert result.fields["title"][1] == "stability-matrix"


def test_lutnav_card_and_its_digest(folder):
    (folder / "ink.toml").write_text('strength = 0.8\ntrigger_words = []\nprevious = 1\n', "utf-8")
    result = cards(folder)
    assert result.fields["strength"] == (0.8, "card")
    assert result.fields["trigger_words"] == ([], "card")  # "needs no trigger" is a real statement
    assert any("`previous` is not a card field" in w and "previews" in w for w in result.warnings)
    assert result.card_digest == hashlib.sha256((folder / "ink.toml").read_bytes()).hexdigest()
    (folder / "ink.toml").unlink()
    assert cards(folder).card_digest is None


# --- precedence ----------------------------------------------------------------------


def test_precedence_walks_down_as_sources_disappear(folder):
    (folder / "ink.toml").write_text('trigger_words = ["card_word"]\n', "utf-8")
    write_json(folder / "ink.json", {"activation text": "a1111_word"})
    write_json(folder / "ink.metadata.json", {"civitai": {"trainedWords": ["lm_word"]}})
    write_json(folder / "ink.civitai.info", {"trainedWords": ["civitai_word"]})
    write_json(folder / "ink.cm-info.json", {"TrainedWords": ["sm_word"]})
    (folder / "README.md").write_text("### ink.safetensors\n- 触发词：readme_word\n", "utf-8")
    header = {"trigger_words": ["header_word"]}
    labels = {"trigger_words": "modelspec"}

    expected = [
        ("ink.toml", "card", "card_word"),
        ("ink.json", "a1111", "a1111_word"),
        ("ink.metadata.json", "lora-manager", "lm_word"),
        ("ink.civitai.info", "civitai", "civitai_word"),
        ("ink.cm-info.json", "stability-matrix", "sm_word"),
        ("README.md", "readme", "readme_word"),
        (None, "modelspec", "header_word"),
    ]
    for remove, source, word in expected:
        assert cards(folder, header, labels).fields["trigger_words"] == ([word], source)
        if remove:
            (folder / remove).unlink()


def test_fields_come_from_different_sources(folder):
    (folder / "ink.toml").write_text("strength = 0.75\n", "utf-8")
    write_json(folder / "ink.civitai.info", CIVITAI)
    (folder / "README.md").write_text("### ink\n- 类型：风格迁移\n- 推荐强度：0.6 ~ 0.8\n", "utf-8")
    result = cards(folder, {"title": "header title", "base_model_claim": "sd_v1"},
                   {"title": "modelspec", "base_model_claim": "kohya ss_*"})
    assert result.fields["strength"] == (0.75, "card")
    assert result.fields["strength_range"] == ([0.6, 0.8], "readme")
    assert result.fields["type"] == ("风格迁移", "readme")
    assert result.fields["title"] == ("Ink Wash (v2.0)", "civitai")
    assert result.fields["base_model_claim"] == ("SD 1.5", "civitai")
    assert result.files == {"card": "ink.toml", "civitai": "ink.civitai.info", "readme": "README.md"}


def test_header_only_fields_keep_their_label(folder):
    result = cards(folder, {"title": "From header", "strength": "oops"}, {"title": "modelspec"})
    assert result.fields == {"title": ("From header", "modelspec")}
    assert any("strength" in w for w in result.warnings)


# --- broken and hostile sidecars -------------------------------------------------------


def test_malformed_json_warns_and_other_sources_are_used(folder):
    (folder / "ink.json").write_text('{\n  "description": "x",\n    "notes": oops\n}\n', "utf-8")
    write_json(folder / "ink.civitai.info", CIVITAI)
    result = cards(folder)
    assert result.fields["trigger_words"] == (["mo_shui", "ink wash painting"], "civitai")
    [warning] = result.warnings
    assert warning.startswith("ink.json: not valid JSON at line 3 column")
    assert "fix or delete it; other sources were used" in warning


def test_malformed_toml_card_warns_with_line_and_keeps_digest(folder):
    (folder / "ink.toml").write_text('title = "ok"\nstrength = \n', "utf-8")
    write_json(folder / "ink.json", A1111)
    result = cards(folder)
    assert result.fields["strength"] == (0.7, "a1111")
    assert any(w.startswith("ink.toml:") and "line 2" in w for w in result.warnings)
    assert result.card_digest is not None  # so `card --set` can refuse to clobber it knowingly


def test_hostile_types_are_ignored_with_warnings(folder):
    write_json(folder / "ink.json", {"preferred weight": "abc", "activation text": 42, "notes": "kept"})
    write_json(folder / "ink.civitai.info", {"trainedWords": 5, "baseModel": {"x": 1}, "images": "nope",
                                             "model": "not an object", "description": "kept too"})
    write_json(folder / "ink.metadata.json", {"usage_tips": "{not json", "tags": [1, 2], "civitai": []})
    write_json(folder / "ink.cm-info.json", ["a", "list"])
    result = cards(folder)
    assert values(result) == {"notes": "kept", "description": "kept too"}
    text = "\n".join(result.warnings)
    for fragment in ("`preferred weight` = 'abc'", "`activation text` = 42", "`trainedWords` = 5", "`images`",
                     "`usage_tips`", "`tags` = [1, 2]", "`civitai` = []", "ink.cm-info.json: expected a JSON object"):
        assert fragment in text


def test_non_utf8_and_oversized_sidecars_are_skipped(folder):
    (folder / "ink.json").write_bytes(b'{"notes": "caf\xe9"}')
    with open(folder / "ink.civitai.info", "wb") as fh:
        fh.truncate(sidecars.MAX_SIDECAR_BYTES + 1)
    result = cards(folder)
    assert result.fields == {}
    assert any(w.startswith("ink.json: not UTF-8") for w in result.warnings)
    assert any(w.startswith("ink.civitai.info:") and "limit" in w for w in result.warnings)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_never_opened(folder):
    os.mkfifo(folder / "ink.json")  # opening a FIFO for reading would hang the scan
    (folder / "ink.metadata.json").mkdir()
    result = cards(folder)
    assert sum("not a regular file" in w for w in result.warnings) == 2


def test_json_nesting_bomb_is_a_warning(folder):
    (folder / "ink.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    result = cards(folder)
    assert result.fields == {} and result.warnings and "ink.json" in result.warnings[0]


# --- previews and paths ----------------------------------------------------------------


def test_conventional_previews_in_order(folder):
    for name in ("ink.png", "ink.preview.png", "ink.preview.jpg", "other.preview.png"):
        (folder / name).write_bytes(b"\x89PNG")
    assert cards(folder).previews == ["ink.preview.png", "ink.preview.jpg", "ink.png"]


def test_previews_named_by_sidecars_must_exist_inside_the_folder(folder, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG")
    (folder / "samples").mkdir()
    (folder / "samples" / "a.png").write_bytes(b"\x89PNG")
    (folder / "ink.toml").write_text('previews = ["samples/a.png", "samples/missing.png"]\n', "utf-8")
    write_json(folder / "ink.metadata.json", lora_manager(str(outside)))
    write_json(folder / "ink.civitai.info", {"images": [{"url": "../../../secret.png"}]})
    os.symlink(outside, folder / "ink.preview.png")  # a link out is not followed either
    result = cards(folder)
    assert result.previews == ["samples/a.png"]
    outside_warnings = [w for w in result.warnings if "outside the LoRA's folder" in w]
    assert len(outside_warnings) == 2
    assert any(w.startswith("ink.metadata.json:") for w in outside_warnings)
    assert any(w.startswith("ink.civitai.info:") for w in outside_warnings)


def test_sidecar_symlinked_from_outside_is_not_read(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    write_json(elsewhere, {"notes": "should not be read"})
    os.symlink(elsewhere, folder / "ink.json")
    result = cards(folder)
    assert result.fields == {}
    assert result.warnings == ["ink.json: links outside the LoRA's folder; not followed"]


def test_sidecar_paths_for_a_file(folder):
    names = [p.name for p in sidecar_paths(folder / "ink.safetensors")]
    for name in ("ink.toml", "ink.json", "ink.civitai.info", "ink.metadata.json", "ink.cm-info.json",
                 "ink.preview.png", "ink.preview.jpeg", "ink.preview.webp", "ink.jpg", "README.md"):
        assert name in names
    assert all(p.parent == folder for p in sidecar_paths(folder / "ink.safetensors"))


# --- PEFT folders and the Hub card --------------------------------------------------------

HUB_README = """\
---
base_model: Qwen/Qwen2.5-0.5B-Instruct
library_name: peft
license: apache-2.0
tags:
- lora
- poetry
instance_prompt: in the style of tang poems
widget:
- text: a poem about the moon
  output:
    url: images/sample.png
- text: escape
  output:
    url: ../../../../etc/passwd
---

# Tang poetry adapter

A LoRA for classical Chinese poems.
"""


@pytest.fixture
def peft(folder: Path) -> Path:
    adapter = folder / "tang_poetry"
    (adapter / "images").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}', "utf-8")
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    (adapter / "images" / "sample.png").write_bytes(b"\x89PNG")
    (adapter / "README.md").write_text(HUB_README, "utf-8")
    return adapter


def test_peft_folder_reads_hub_card_folder_readme_and_inner_card(peft):
    (peft.parent / "README.md").write_text("### tang_poetry\n- 类型：文本风格\n- 推荐强度：0.8\n", "utf-8")
    (peft / "lutnav.toml").write_text('title = "唐诗"\n', "utf-8")
    (peft / "preview.png").write_bytes(b"\x89PNG")
    result = read_entry_cards(peft, {"base_model_claim": "qwen2"}, {"base_model_claim": "adapter_config"})
    assert result.fields["title"] == ("唐诗", "card")
    assert result.fields["type"] == ("文本风格", "readme")
    assert result.fields["strength"] == (0.8, "readme")
    assert result.fields["base_model_claim"] == ("Qwen/Qwen2.5-0.5B-Instruct", "hub-card")
    assert result.fields["trigger_words"] == (["in the style of tang poems"], "hub-card")
    assert result.fields["license"] == ("apache-2.0", "hub-card")
    assert result.fields["tags"] == (["lora", "poetry"], "hub-card")
    assert result.previews == ["preview.png", "images/sample.png"]  # relative to the PEFT folder
    assert result.card_path == peft / "lutnav.toml"
    assert any("../../../../etc/passwd" in w for w in result.warnings)


def test_hub_card_title_and_bad_yaml(peft):
    assert read_entry_cards(peft, {}, {}).fields["title"] == ("Tang poetry adapter", "hub-card")
    (peft / "README.md").write_text("---\ntags: [a, b\nlicense: mit\n---\n# x\n", "utf-8")
    result = read_entry_cards(peft, {}, {})
    assert "title" not in result.fields
    assert any(w.startswith("tang_poetry/README.md: front matter is not valid YAML at line") for w in result.warnings)


def test_sidecar_paths_for_a_peft_folder(peft):
    paths = sidecar_paths(peft)
    assert peft / "lutnav.toml" in paths and peft / "README.md" in paths
    assert peft.parent / "README.md" in paths and peft / "preview.png" in paths


# --- README cache ------------------------------------------------------------------------


def test_readme_is_parsed_once_per_version(folder, monkeypatch):
    (folder / "other.safetensors").write_bytes(b"x")
    readme = folder / "README.md"
    readme.write_text("### ink\n- type: a\n### other\n- type: b\n", "utf-8")
    calls = []
    real = sidecar_reader.parse_readme
    monkeypatch.setattr(sidecar_reader, "parse_readme", lambda text: calls.append(1) or real(text))
    cache: dict = {}
    assert cards(folder, readme_cache=cache).fields["type"] == ("a", "readme")
    other = read_entry_cards(folder / "other.safetensors", {}, {}, readme_cache=cache)
    assert other.fields["type"] == ("b", "readme")
    assert len(calls) == 1

    readme.write_text("### ink\n- type: changed\n", "utf-8")
    os.utime(readme, ns=(1, 2_000_000_000_000_000_000))
    assert cards(folder, readme_cache=cache).fields["type"] == ("changed", "readme")
    assert len(calls) == 2


def test_readme_half_filled_warnings_name_the_file_and_line(folder):
    (folder / "README.md").write_text("# 水墨\n\n### ink.safetensors\n- 类型：\n- 适用主题：山水\n", "utf-8")
    result = cards(folder)
    assert result.fields == {"themes": (["山水"], "readme")}
    assert result.warnings == ["README.md line 4: `类型` has no value"]


def test_byte_order_mark_is_accepted(folder):
    (folder / "ink.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(A1111).encode("utf-8"))
    result = cards(folder)
    assert result.fields["strength"] == (0.7, "a1111") and result.warnings == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_non_utf8_file_name_gives_a_printable_warning(folder):
    entry = os.path.join(os.fsencode(folder), b"caf\xe9.safetensors")
    open(entry, "wb").close()
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.json"), "wb") as fh:
        fh.write(b"{broken")
    result = read_entry_cards(os.fsdecode(entry), {}, {})
    [warning] = result.warnings
    assert warning.startswith("caf\\xe9.json: not valid JSON")
    warning.encode("utf-8")  # no lone surrogates: safe to print and to store


def test_folder_listing_cache_sees_new_sidecars(folder):
    cache: dict = {}
    os.utime(folder, (1_600_000_000, 1_600_000_000))  # an old folder: its listing may be kept
    assert cards(folder, readme_cache=cache).fields == {}
    write_json(folder / "ink.json", A1111)  # adding a name changes the folder's mtime
    assert cards(folder, readme_cache=cache).fields["strength"] == (0.7, "a1111")

"""``lutnav pull OWNER/NAME``: the real huggingface_hub client against a local Hub."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.hubserver import (
    checkpoint_bytes, lora_bytes, new_library, peft_files, png_bytes, readme, run, serve_hub, tree,
)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with serve_hub(tmp_path, monkeypatch) as server:
        yield server


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)

TAG_FREQ = json.dumps({"10_wcstyle": {"wcstyle": 10, "flower": 4, "sky": 3}})


def watercolor_repo(hub):
    meta = {
        "license": "openrail++", "base_model": "runwayml/stable-diffusion-v1-5",
        "instance_prompt": "wcstyle painting", "tags": ["lora", "style", "text-to-image"],
        "widget": [{"text": "a wcstyle painting of a cat", "output": {"url": "images/cat.png"}},
                   {"text": "a wcstyle harbour", "output": {"url": "images/harbour.png"}}],
    }
    body = "# Watercolor LoRA\n\n![cat](images/cat.png)\n\nSoft watercolor washes for SD 1.5.\n"
    return hub.add_repo("alice/watercolor-lora", {
        ".gitattributes": b"*.safetensors filter=lfs\n",
        "README.md": readme(meta, body),
        "watercolor.safetensors": lora_bytes("sd1", metadata={"ss_tag_frequency": TAG_FREQ}),
        "images/cat.png": png_bytes(1),
        "images/harbour.png": png_bytes(2),
        "old/watercolor.ckpt": b"\x80\x04pickle that must never be fetched",
    })


def card_of(path):
    return tomllib.loads(path.read_text("utf-8"))


def test_pull_files_a_lora_with_its_card_previews_and_index(hub, library):
    repo = watercolor_repo(hub)
    result = run(library, "pull", "alice/watercolor-lora")
    assert "added style/watercolor/watercolor.safetensors" in result.output
    folder = library / "style" / "watercolor"
    assert (folder / "watercolor.safetensors").read_bytes() == repo.commits[repo.refs["main"]][
        "watercolor.safetensors"]
    card = card_of(folder / "watercolor.toml")
    assert card["source"] == f"alice/watercolor-lora@{repo.refs['main']}"
    assert card["license"] == "openrail++"
    assert card["trigger_words"][:2] == ["wcstyle painting", "wcstyle"]
    assert card["title"] == "Watercolor LoRA"
    assert card["description"] == "Soft watercolor washes for SD 1.5."
    assert "a wcstyle painting of a cat" in card["notes"]
    assert card["previews"] == ["watercolor.preview.png", "watercolor.preview.2.png"]
    assert (folder / "watercolor.preview.png").read_bytes() == png_bytes(1)
    assert (folder / "watercolor.preview.2.png").read_bytes() == png_bytes(2)
    # nothing but the chosen weights, the card and the images was fetched; never the pickle
    assert sorted(hub.fetched()) == ["README.md", "images/cat.png", "images/harbour.png",
                                     "watercolor.safetensors"]
    entries = json.loads(run(library, "ls", "--json").output)
    assert [(e["path"], e["base_model"], e["format"]) for e in entries] == [
        ("style/watercolor/watercolor.safetensors", "sd1", "kohya")]
    assert entries[0]["source"] == card["source"]
    assert "wcstyle painting" in entries[0]["trigger_words"]
    assert list((library / ".lutnav").glob("pull-*")) == []


def test_several_loras_need_a_choice_when_not_on_a_terminal(hub, library):
    hub.add_repo("alice/pack", {"a_v1.safetensors": lora_bytes(seed=1),
                                "b_v2.safetensors": lora_bytes(seed=2)})
    result = run(library, "pull", "alice/pack", ok=False)
    assert result.exit_code == 1
    assert "a_v1.safetensors" in result.output and "b_v2.safetensors" in result.output
    assert "--file" in result.output and "--all" in result.output
    assert tree(library) == [] and hub.fetched() == []

    run(library, "pull", "alice/pack", "--file", "b_v2.safetensors", "--category", "style")
    assert hub.fetched() == ["b_v2.safetensors"]
    assert (library / "style" / "pack" / "b_v2.safetensors").is_file()

    run(library, "pull", "alice/pack", "--all", "--category", "style")
    assert (library / "style" / "pack" / "a_v1.safetensors").is_file()
    assert "b_v2_2.safetensors" not in tree(library)  # the same file again is not duplicated


def test_on_a_terminal_the_user_picks_the_file_and_the_category(hub, library, monkeypatch):
    import lutnav.pull_cli as pull_cli

    hub.add_repo("alice/pack", {"a.safetensors": lora_bytes(seed=1), "b.safetensors": lora_bytes(seed=2)})
    monkeypatch.setattr(pull_cli, "_terminal", lambda: True)
    result = run(library, "pull", "alice/pack", input="2\ncharacter\n")
    assert "1. a.safetensors" in result.output
    assert tree(library) == ["character", "character/pack", "character/pack/b.safetensors",
                             "character/pack/b.toml"]


def test_without_tags_or_a_terminal_the_category_is_uncategorized(hub, library):
    hub.add_repo("bob/thing", {"thing.safetensors": lora_bytes("sdxl")})
    run(library, "pull", "bob/thing")
    entry = json.loads(run(library, "ls", "--json").output)[0]
    assert (entry["path"], entry["base_model"]) == ("uncategorized/thing/thing.safetensors", "sdxl")


def test_a_peft_adapter_is_one_folder_entry_filed_under_industry(hub, library):
    files = {**peft_files(), "README.md": readme({"license": "apache-2.0", "pipeline_tag": "text-generation",
                                                  "base_model": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"})}
    hub.add_repo("carol/contract-clauses-lora", files)
    result = run(library, "pull", "carol/contract-clauses-lora")
    folder = library / "industry" / "contract_clauses" / "contract-clauses-lora"
    assert f"added {folder.relative_to(library).as_posix()}" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                        "lutnav.toml"]
    assert card_of(folder / "lutnav.toml")["license"] == "apache-2.0"
    entry = json.loads(run(library, "ls", "--json").output)[0]
    assert (entry["format"], entry["base_model"]) == ("peft", "llm")


def test_revision_category_theme_and_name_options(hub, library):
    repo = hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(seed=1)})
    v1 = repo.refs["main"]
    repo.refs["v1"] = v1
    repo.commit({"wc.safetensors": lora_bytes(seed=2)})
    run(library, "pull", "alice/wc", "--revision", "v1", "--category", "style", "--theme", "paint",
        "--name", "wc_old")
    path = library / "style" / "paint" / "wc_old.safetensors"
    assert path.read_bytes() == repo.commits[v1]["wc.safetensors"]
    assert card_of(library / "style" / "paint" / "wc_old.toml")["source"] == f"alice/wc@{v1}"


def test_an_existing_different_file_is_never_overwritten_unless_asked(hub, library):
    repo = hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(seed=1),
                                     "README.md": readme({"tags": ["style"]})})
    run(library, "pull", "alice/wc")
    first = (library / "style" / "wc" / "wc.safetensors").read_bytes()
    again = run(library, "pull", "alice/wc")
    assert "already there" in again.output
    repo.commit({"wc.safetensors": lora_bytes(seed=2), "README.md": readme({"tags": ["style"]})})
    run(library, "pull", "alice/wc")
    assert (library / "style" / "wc" / "wc.safetensors").read_bytes() == first
    assert (library / "style" / "wc" / "wc_2.safetensors").is_file()
    replaced = run(library, "pull", "alice/wc", "--overwrite")
    assert "style/wc/wc" in replaced.output
    assert (library / "style" / "wc" / "wc.safetensors").read_bytes() == lora_bytes(seed=2)


def test_only_the_lora_is_fetched_from_a_repo_that_also_holds_a_full_model(hub, library):
    hub.add_repo("dave/mixed", {"unet/diffusion_pytorch_model.safetensors": checkpoint_bytes(),
                                "lora/mixed.safetensors": lora_bytes(),
                                "README.md": readme({"tags": ["concept"]})})
    run(library, "pull", "dave/mixed")
    assert "unet/diffusion_pytorch_model.safetensors" not in hub.fetched()
    assert (library / "concept" / "mixed" / "mixed.safetensors").is_file()

"""``lutnav outdated`` and ``pull --update-all`` against a repo that moves on."""

from __future__ import annotations

import json
import socket
import tomllib

import pytest

from tests.hubserver import checkpoint_bytes, lora_bytes, new_library, readme, run, serve_hub


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with serve_hub(tmp_path, monkeypatch) as server:
        yield server


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)


def card_text(i: int) -> bytes:
    return readme({"tags": ["style"], "license": f"license-{i}", "instance_prompt": f"wc{i}"},
                  f"# Watercolor\n\nVersion {i} of the watercolor look.\n")


def pulled(hub, library):
    repo = hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(seed=1), "README.md": card_text(1)})
    run(library, "pull", "alice/wc")
    return repo


def card(library):
    return tomllib.loads((library / "style" / "wc" / "wc.toml").read_text("utf-8"))


def test_outdated_lists_entries_behind_their_repo(hub, library):
    repo = pulled(hub, library)
    assert "1 Hub entries checked; all up to date" in run(library, "outdated").output
    new = repo.commit({"wc.safetensors": lora_bytes(seed=2), "README.md": card_text(2)})
    listed = json.loads(run(library, "outdated", "--json").output)
    assert listed == [{"rel": "style/wc/wc.safetensors", "name": "wc", "repo_id": "alice/wc",
                       "commit": card(library)["source"].split("@")[1], "latest": new}]
    assert "alice/wc" in run(library, "outdated").output


def test_update_all_replaces_weights_and_keeps_the_users_card_edits(hub, library):
    repo = pulled(hub, library)
    run(library, "card", "wc", "--set", "trigger_words=my own words", "--set", "strength=0.8")
    new = repo.commit({"wc.safetensors": lora_bytes(seed=2), "README.md": card_text(2)})
    result = run(library, "pull", "--update-all")
    assert "updated style/wc/wc.safetensors" in result.output
    assert (library / "style" / "wc" / "wc.safetensors").read_bytes() == lora_bytes(seed=2)
    assert not (library / "style" / "wc" / "wc.prev.safetensors").exists()
    after = card(library)
    assert after["source"] == f"alice/wc@{new}"
    assert after["trigger_words"] == ["my own words"] and after["strength"] == 0.8  # the user's
    assert after["license"] == "license-2"  # lutnav's, refreshed
    assert after["description"] == "Version 2 of the watercolor look."
    assert "all up to date" in run(library, "outdated").output
    entry = json.loads(run(library, "ls", "--json").output)
    assert [e["path"] for e in entry] == ["style/wc/wc.safetensors"]


def test_keep_prev_keeps_the_old_weights(hub, library):
    repo = pulled(hub, library)
    repo.commit({"wc.safetensors": lora_bytes(seed=2), "README.md": card_text(1)})
    run(library, "pull", "--update-all", "--keep-prev")
    assert (library / "style" / "wc" / "wc.prev.safetensors").read_bytes() == lora_bytes(seed=1)


def test_an_update_that_is_not_a_lora_leaves_the_entry_alone(hub, library):
    repo = pulled(hub, library)
    before = card(library)
    repo.commit({"wc.safetensors": checkpoint_bytes(), "README.md": card_text(2)})
    result = run(library, "pull", "--update-all", ok=False)
    assert result.exit_code == 1
    assert "not updated" in result.output and "not a LoRA" in result.output
    assert (library / "style" / "wc" / "wc.safetensors").read_bytes() == lora_bytes(seed=1)
    assert not (library / "style" / "wc" / "wc.prev.safetensors").exists()
    assert card(library) == before
    assert list((library / ".lutnav").glob("pull-*")) == []


def test_outdated_when_the_hub_cannot_be_reached(hub, library, monkeypatch):
    pulled(hub, library)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = run(library, "outdated")
    assert "warning: alice/wc: cannot reach" in result.output


def test_update_a_peft_adapter_folder(hub, library):
    from tests.hubserver import peft_files

    repo = hub.add_repo("carol/clauses", {**peft_files(rank=2), "README.md": readme({"tags": ["concept"]})})
    run(library, "pull", "carol/clauses")
    folder = library / "concept" / "clauses" / "clauses"
    run(library, "card", "clauses", "--set", "strength=0.5")
    new = repo.commit({**peft_files(rank=4), "README.md": readme({"tags": ["concept"]})})
    run(library, "pull", "--update-all")
    assert (folder / "adapter_model.safetensors").read_bytes() == peft_files(rank=4)["adapter_model.safetensors"]
    after = tomllib.loads((folder / "lutnav.toml").read_text("utf-8"))
    assert after["source"] == f"carol/clauses@{new}" and after["strength"] == 0.5
    entry = json.loads(run(library, "ls", "--json").output)[0]
    assert (entry["path"], entry["rank"]) == ("concept/clauses/clauses", 4)

"""Every way a pull can fail: one line, a non-zero exit, no traceback, nothing left behind."""

from __future__ import annotations

import socket

import pytest

from tests.hubserver import (
    Fault, assert_refused, checkpoint_bytes, embedding_bytes, lora_bytes, new_library,
    random_tensor_bytes, readme, run, serve_hub, tree,
)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with serve_hub(tmp_path, monkeypatch) as server:
        yield server


@pytest.fixture
def library(tmp_path):
    return new_library(tmp_path)


def test_repository_not_found_says_how_to_log_in(hub, library):
    line = assert_refused(run(library, "pull", "nobody/nothing", ok=False), library, "nobody/nothing",
                          "no such repository")
    assert "hf auth login" in line and "HF_TOKEN" in line


def test_private_repo_needs_a_token(hub, library, monkeypatch):
    hub.add_repo("alice/secret", {"s.safetensors": lora_bytes()}, private=True)
    line = assert_refused(run(library, "pull", "alice/secret", ok=False), library, "no Hugging Face token")
    assert "hf auth login" in line
    hub.tokens.add("hf_good")
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    run(library, "pull", "alice/secret", "--category", "style")
    assert tree(library)[-2:] == ["style/secret/s.safetensors", "style/secret/s.toml"]


def test_gated_repo_without_access(hub, library, monkeypatch):
    hub.add_repo("alice/gated", {"g.safetensors": lora_bytes()}, gated=True)
    line = assert_refused(run(library, "pull", "alice/gated", ok=False), library, "gated",
                          "no Hugging Face token")
    assert "hf auth login" in line and "accept the repo's conditions" in line
    monkeypatch.setenv("HF_TOKEN", "hf_without_access")
    assert_refused(run(library, "pull", "alice/gated", ok=False), library, "your token has no access")


def test_revision_not_found(hub, library):
    hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes()})
    assert_refused(run(library, "pull", "alice/wc", "--revision", "v9", ok=False), library,
                   "revision 'v9' not found")


def test_network_down(hub, library, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert_refused(run(library, "pull", "alice/wc", ok=False), library, "cannot reach")


def test_offline_mode_uses_the_cache_or_says_it_is_empty(hub, library, tmp_path, monkeypatch):
    hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(), "README.md": readme({"tags": ["style"]})})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_refused(run(library, "pull", "alice/wc", ok=False), library, "offline mode", "not in the")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    other = tmp_path / "other"
    other.mkdir()
    run(other, "pull", "alice/wc")  # fills the Hugging Face cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    run(library, "pull", "alice/wc")
    assert len(hub.requests) == before  # not one request went out
    assert (library / "style" / "wc" / "wc.safetensors").read_bytes() == lora_bytes()


def test_a_full_checkpoint_is_refused_and_deleted(hub, library):
    hub.add_repo("alice/base", {"model.safetensors": checkpoint_bytes()})
    assert_refused(run(library, "pull", "alice/base", ok=False), library, "not a LoRA",
                   "full model checkpoint")


def test_a_repo_without_any_lora(hub, library):
    hub.add_repo("alice/stuff", {"emb.safetensors": embedding_bytes(),
                                 "noise.safetensors": random_tensor_bytes()})
    line = assert_refused(run(library, "pull", "alice/stuff", "--all", ok=False), library,
                          "none of the chosen files is a LoRA")
    assert "textual-inversion embedding" in line and "no LoRA tensor pairs" in line


def test_a_pickle_only_repo_is_refused_without_downloading(hub, library):
    hub.add_repo("alice/old", {"old.ckpt": b"\x80\x04junk", "old.bin": b"\x80\x04junk",
                               "README.md": readme({"tags": ["style"]})})
    assert_refused(run(library, "pull", "alice/old", ok=False), library, "only pickled weights",
                   "never downloads")
    assert hub.fetched() == []
    hub.add_repo("alice/both", {"a.ckpt": b"x", "b.safetensors": lora_bytes()})
    assert_refused(run(library, "pull", "alice/both", "--file", "a.ckpt", ok=False), library, "pickle")


def test_a_download_cut_halfway_leaves_nothing_and_a_rerun_succeeds(hub, library, tmp_path):
    data = lora_bytes()
    hub.add_repo("alice/wc", {"wc.safetensors": data})
    hub.faults["wc.safetensors"] = Fault("cut", after=len(data) // 2)
    assert_refused(run(library, "pull", "alice/wc", ok=False), library, "alice/wc/wc.safetensors",
                   "run the same command again")
    assert [p for p in (tmp_path / "hf_home").rglob("*") if p.is_file() and "blobs" in p.parts] == []
    hub.faults.clear()
    run(library, "pull", "alice/wc")
    assert (library / "uncategorized" / "wc" / "wc.safetensors").read_bytes() == data


def test_a_connection_dropped_once_is_retried_by_the_client(hub, library):
    data = lora_bytes()
    hub.add_repo("alice/wc", {"wc.safetensors": data})
    hub.faults["wc.safetensors"] = Fault("drop", after=len(data) // 2)
    run(library, "pull", "alice/wc")
    assert hub.fetched() == ["wc.safetensors", "wc.safetensors"]
    assert (library / "uncategorized" / "wc" / "wc.safetensors").read_bytes() == data


def test_ctrl_c_during_a_download_leaves_nothing(hub, library, tmp_path):
    data = lora_bytes()
    hub.add_repo("alice/wc", {"wc.safetensors": data})
    hub.faults["wc.safetensors"] = Fault("stall", after=len(data) // 3)
    result = run(library, "pull", "alice/wc", ok=False)
    hub.release.set()
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in result.output
    assert tree(library) == []
    assert list((library / ".lutnav").glob("pull-*")) == []
    assert [p for p in (tmp_path / "hf_home").rglob("*.incomplete")] == []


def test_hostile_file_names_are_refused_before_any_download(hub, library):
    hub.add_repo("mallory/climb", {"../../escape.safetensors": lora_bytes()})
    assert_refused(run(library, "pull", "mallory/climb", ok=False), library, "climbs out")
    hub.add_repo("mallory/abs", {"/etc/cron.d/x.safetensors": lora_bytes()})
    assert_refused(run(library, "pull", "mallory/abs", ok=False), library, "absolute path")
    assert hub.fetched() == []


def test_hostile_user_names_are_refused(hub, library):
    hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes()})
    assert_refused(run(library, "pull", "alice/wc", "--category", "../up", ok=False), library, "--category")
    assert_refused(run(library, "pull", "alice/wc", "--name", "a/b", ok=False), library, "single name")


def test_a_bad_repo_id(hub, library):
    assert_refused(run(library, "pull", "not--valid", ok=False), library, "not a Hub repo id")

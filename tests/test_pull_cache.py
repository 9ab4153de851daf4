"""The Hugging Face cache, through the client's public API only."""

from __future__ import annotations

import pytest

from lutnav.pull import hub as hubmod
from tests.hubserver import lora_bytes, readme, serve_hub


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with serve_hub(tmp_path, monkeypatch) as server:
        yield server


def test_a_branch_that_moves_mid_pull_still_gives_the_listed_commit(hub):
    repo = hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(seed=1), "README.md": readme({})})
    snap = hubmod.fetch_snapshot("alice/wc")
    first = snap.commit
    repo.commit({"wc.safetensors": lora_bytes(seed=2), "README.md": readme({})})
    local = hubmod.download(snap, "wc.safetensors")
    assert local.read_bytes() == lora_bytes(seed=1) == repo.commits[first]["wc.safetensors"]


def test_offline_finds_a_pulled_branch_and_its_files(hub, monkeypatch):
    hub.add_repo("alice/wc", {"wc.safetensors": lora_bytes(seed=1), "README.md": readme({})})
    snap = hubmod.fetch_snapshot("alice/wc")
    hubmod.download(snap, "wc.safetensors")
    cached = hubmod.cached_snapshot("alice/wc", "main")
    assert cached is not None and cached.commit == snap.commit and cached.from_cache
    assert [f.path for f in cached.files] == ["wc.safetensors"]  # only what was fetched
    assert cached.files[0].size == len(lora_bytes(seed=1))
    assert hubmod.cached_snapshot("alice/wc", snap.commit).commit == snap.commit
    assert hubmod.cached_snapshot("alice/wc", "v2") is None
    assert hubmod.cached_snapshot("bob/none", "main") is None


def test_an_empty_cache_holds_nothing(hub):
    assert hubmod.cached_snapshot("alice/wc", "main") is None

"""Shared fixtures: every test runs against temp folders, never the user's home."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """No test reads the real library, HF cache or colours."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.delenv("LUTNAV_LIBRARY", raising=False)
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    yield


@pytest.fixture
def demo_library(tmp_path):
    """A freshly written and scanned demo library."""
    from catalog.index.library import Library
    from lutnav.demo import write_demo

    root = tmp_path / "loras"
    write_demo(root)
    lib = Library(root)
    lib.scan_all()
    return lib

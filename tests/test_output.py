"""How the CLI and TUI write sizes."""

from __future__ import annotations

from lutnav.output import human_size


def test_sizes_are_powers_of_1024_and_say_so():
    assert human_size(512) == "512 B"
    assert human_size(3 * 1024 * 1024 // 2) == "1.5 MiB"
    assert human_size(5 * 1024**3, compact=True) == "5.0G"
    assert human_size(None) == "size unknown"

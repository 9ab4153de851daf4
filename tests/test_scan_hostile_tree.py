"""Trees that used to hang a scan, file entries twice, or drop files without a word."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.index.library import Library
from tests.lorafiles import write_kohya

SCAN_JSON = "import sys, json; from catalog.index.library import Library; " \
            "s = Library(sys.argv[1]).scan_all(); print(json.dumps(s.skipped))"


def _lib(tmp_path: Path) -> Path:
    root = tmp_path / "loras"
    for i in range(3):
        write_kohya(root / "style" / "ink" / f"ink{i}.safetensors", seed=i)
    write_kohya(root / "character" / "cats" / "zzcat.safetensors", seed=9)
    return root


def _scan_in_child(root: Path) -> list[str]:
    """A scan in a child process, so a hang fails the test instead of the suite."""
    done = subprocess.run([sys.executable, "-c", SCAN_JSON, str(root)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_like_a_lora_is_skipped_with_a_line_and_never_blocks(tmp_path):
    root = _lib(tmp_path)
    fifo = root / "style" / "ink" / "x.safetensors"
    os.mkfifo(fifo)
    os.mkfifo(root / "style" / "ink" / "ink0.json")  # a sidecar FIFO must not block either
    skipped = _scan_in_child(root)
    assert any(line.startswith("style/ink/x.safetensors: not a regular file") for line in skipped)
    paths = {e.path for e in Library(root).entries()}
    assert "style/ink/x.safetensors" not in paths and len(paths) == 4


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_the_header_reader_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    code = ("import sys\nfrom catalog.files.header import read_header\n"
            "from catalog.errors import SafetensorsError\n"
            "try:\n    read_header(sys.argv[1])\nexcept SafetensorsError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True,
                          timeout=60)
    assert "not a regular file" in done.stdout, done.stderr


def test_a_folder_link_to_a_category_leaves_every_row_under_its_real_path(tmp_path):
    root = _lib(tmp_path)
    lib = Library(root)
    lib.scan_all()
    before = {e.path for e in lib.entries()}
    (root / "zz_backup_link").symlink_to(root / "style", target_is_directory=True)
    (root / "character" / "cats" / "alias.safetensors").symlink_to(
        root / "character" / "cats" / "zzcat.safetensors")
    for _ in range(2):
        summary = lib.scan_all()
        assert {e.path for e in lib.entries()} == before
        assert summary.removed == 0 and summary.added == 0
    assert any(line.startswith("zz_backup_link: link to style") for line in summary.skipped)
    assert any(line.startswith("character/cats/alias.safetensors: link to") for line in summary.skipped)


def test_a_link_to_a_hidden_folder_is_still_followed(tmp_path):
    root = _lib(tmp_path)
    write_kohya(root / ".stash" / "kept.safetensors", seed=3)
    (root / "style" / "stash").symlink_to(root / ".stash", target_is_directory=True)
    lib = Library(root)
    lib.scan_all()
    assert "style/stash/kept.safetensors" in {e.path for e in lib.entries()}


@pytest.mark.parametrize("name", ["..safetensors", "...safetensors", ".hidden.safetensors", ".x.ckpt"])
def test_dot_named_weights_are_listed_as_skipped_with_the_reason(tmp_path, name):
    root = _lib(tmp_path)
    write_kohya(root / "style" / "ink" / name, seed=5)
    summary = Library(root).scan_all()
    lines = [line for line in summary.skipped if line.startswith(f"style/ink/{name}:")]
    assert lines and "rename it" in lines[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_hashing_an_entry_that_became_a_fifo_is_one_line(tmp_path):
    root = _lib(tmp_path)
    Library(root).scan_all()
    target = root / "style" / "ink" / "ink0.safetensors"
    target.unlink()
    os.mkfifo(target)
    code = ("import sys\nfrom catalog.index.library import Library\nfrom catalog.files import hashing\n"
            "from catalog.errors import CatalogError\nlib = Library(sys.argv[1])\n"
            "try:\n    list(hashing.compute(lib, ['style/ink/ink0.safetensors']))\n"
            "except CatalogError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                          timeout=60)
    assert "not a regular file" in done.stdout, done.stderr


@pytest.mark.parametrize("name", ["SHOUT.SAFETENSORS", "mixed.SafeTensors", "old.CKPT"])
def test_weights_with_a_capitalised_suffix_are_listed_as_skipped(tmp_path, name):
    root = _lib(tmp_path)
    write_kohya(root / "style" / "ink" / name, seed=5)
    summary = Library(root).scan_all()
    assert any(line.startswith(f"style/ink/{name}: the suffix") for line in summary.skipped)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_given_as_a_mix_recipe_is_one_line(tmp_path):
    root = _lib(tmp_path)
    fifo = tmp_path / "recipe.toml"
    os.mkfifo(fifo)
    code = "from lutnav.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "--library", str(root), "mix", "--recipe", str(fifo)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not a regular file" in done.stderr.strip().splitlines()[-1]


def test_a_dangling_link_is_said_to_point_at_nothing(tmp_path):
    """Not "indexed there": there is no file there to index."""
    root = _lib(tmp_path)
    os.symlink("gone.safetensors", root / "style" / "ink" / "dangling.safetensors")
    summary = Library(root).scan_all()
    assert "style/ink/dangling.safetensors: link to a file that does not exist — nothing to index" in summary.skipped

"""Export and card edits with long names, the user's umask, and ``--overwrite`` onto the entry."""

from __future__ import annotations

import os
import tomllib
import zipfile

import pytest

from tests.hubserver import lora_bytes, run
from tests.test_export import shared_library

LONG = "l" * 238  # `<LONG>.safetensors` is 250 bytes: just under the 255-byte name limit


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "loras"
    root.mkdir()
    shared_library(root)
    (root / "style" / "ink" / f"{LONG}.safetensors").write_bytes(lora_bytes(seed=3))
    run(root, "scan")
    return root


def test_card_set_on_a_240_byte_name_writes_the_card(library):
    run(library, "card", LONG, "--set", "strength=0.5")
    card = library / "style" / "ink" / f"{LONG}.toml"
    assert tomllib.loads(card.read_text("utf-8"))["strength"] == 0.5


def test_export_of_a_240_byte_name_to_a_zip_named_after_it(library, tmp_path):
    out = tmp_path / f"{LONG}.zip"
    run(library, "export", LONG, "--zip", str(out))
    with zipfile.ZipFile(out) as zf:
        assert zf.read(f"{LONG}.safetensors") == lora_bytes(seed=3)


def test_a_name_over_the_limit_is_one_line(library, tmp_path):
    result = run(library, "export", LONG, "--zip", str(tmp_path / f"{LONG}-and-more-than-fits.zip"), ok=False)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert "too long" in result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_exported_zips_follow_the_umask(library, tmp_path, mask):
    old = os.umask(mask)
    try:
        out = tmp_path / "ink.zip"
        run(library, "export", "ink_wash", "--zip", str(out))
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("own", ["ink_wash.safetensors", "ink_wash.toml", "ink_wash.preview.png"])
def test_export_overwrite_onto_the_entrys_own_files_is_refused(library, own):
    target = library / "style" / "ink" / own
    before = target.read_bytes()
    result = run(library, "export", "ink_wash", "--zip", str(target), "--overwrite", ok=False)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert target.read_bytes() == before


def test_export_overwrite_onto_a_link_to_the_entry_is_refused(library):
    weights = library / "style" / "ink" / "ink_wash.safetensors"
    before = weights.read_bytes()
    link = library.parent / "ink.zip"
    link.symlink_to(weights)
    result = run(library, "export", "ink_wash", "--zip", str(link), "--overwrite", ok=False)
    assert result.exit_code == 1 and "part of the entry" in result.output
    assert weights.read_bytes() == before


def test_export_onto_another_entrys_weights_is_refused(library):
    other = library / "style" / "ink" / "other.safetensors"
    before = other.read_bytes()
    result = run(library, "export", "ink_wash", "--zip", str(other), "--overwrite", ok=False)
    assert result.exit_code == 1 and ".zip" in result.output
    assert other.read_bytes() == before


def test_export_overwrite_onto_a_peft_folder_or_its_weights_is_refused(library):
    folder = library / "industry" / "legal" / "clauses"
    for target in (folder, folder / "adapter_model.safetensors"):
        result = run(library, "export", "clauses", "--zip", str(target), "--overwrite", ok=False)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert (folder / "adapter_model.safetensors").stat().st_size > 0

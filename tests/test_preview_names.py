"""One spelling for the nth preview; the scanner finds every spelling ever written."""

from __future__ import annotations

import pytest

from catalog.index.library import Library
from catalog.files.preview_names import free_preview_path, numbered_previews, preview_path
from tests.hubserver import lora_bytes, png_bytes


def test_the_nth_preview_beside_a_file_and_inside_a_folder(tmp_path):
    lora = tmp_path / "ink.safetensors"
    assert preview_path(lora, 1, is_folder=False).name == "ink.preview.png"
    assert preview_path(lora, 3, ".jpg", is_folder=False).name == "ink.preview.3.jpg"
    peft = tmp_path / "chat_adapter"
    assert preview_path(peft, 2, is_folder=True) == peft / "preview.2.png"
    with pytest.raises(ValueError, match="from 1"):
        preview_path(lora, 0)


def test_a_free_name_skips_taken_ones(tmp_path):
    lora = tmp_path / "ink.safetensors"
    assert free_preview_path(lora, is_folder=False).name == "ink.preview.png"
    (tmp_path / "ink.preview.png").write_bytes(b"x")
    (tmp_path / "ink.preview.2.png").write_bytes(b"x")
    assert free_preview_path(lora, is_folder=False).name == "ink.preview.3.png"


def test_numbered_previews_of_every_spelling():
    names = ["ink.preview.png", "ink.preview-2.png", "ink.preview.10.PNG", "ink.preview.1.jpg",
             "ink.preview.3.txt", "inkwell.preview.2.png", "ink.toml", "ink.preview.x.png"]
    assert numbered_previews(names, "ink") == ["ink.preview.1.jpg", "ink.preview-2.png",
                                               "ink.preview.10.PNG"]


def test_the_scanner_finds_previews_under_older_spellings(tmp_path):
    root = tmp_path / "loras"
    folder = root / "style" / "ink"
    folder.mkdir(parents=True)
    (folder / "ink.safetensors").write_bytes(lora_bytes())
    for i, name in enumerate(["ink.preview.png", "ink.preview-2.png", "ink.preview.1.png",
                              "ink.preview.3.png"]):
        (folder / name).write_bytes(png_bytes(i))
    lib = Library(root)
    lib.scan_all()
    assert lib.get("ink").previews == ["style/ink/ink.preview.png", "style/ink/ink.preview.1.png",
                                          "style/ink/ink.preview-2.png", "style/ink/ink.preview.3.png"]


def test_a_trained_lora_files_every_preview_under_the_one_spelling(tmp_path):
    from trainers.handoff import file_into_library

    artifact = tmp_path / "out.safetensors"
    artifact.write_bytes(lora_bytes())
    shots = [tmp_path / "s-0.png", tmp_path / "s-1.png"]
    for i, shot in enumerate(shots):
        shot.write_bytes(png_bytes(i))
    root = tmp_path / "loras"
    root.mkdir()
    file_into_library(root, artifact, category="style", theme="t", name="shapes", card={}, previews=shots)
    assert Library(root).get("shapes").previews == ["style/t/shapes.preview.png",
                                                       "style/t/shapes.preview.2.png"]
    assert (root / "style/t/shapes.preview.2.png").read_bytes() == png_bytes(1)

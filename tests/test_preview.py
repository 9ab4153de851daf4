"""Previews and grids: PNGs with A1111 parameters, stored as the entry's previews; pillow sheets."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from catalog.errors import CatalogError
from lutnav.cli import cli
from lutnav.mix.errors import MixError
from lutnav.mix.grid import compose_grid, parse_weights
from catalog.files.preview_names import free_preview_path
from lutnav.mix.preview import Settings, Shot, a1111_parameters, model_for


def test_grid_sheet_has_one_cell_per_checkpoint_and_weight():
    from PIL import Image

    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    sheet = compose_grid([[red, blue, red], [blue, red, blue]], ["base-a", "base-b"],
                         ["ink:0.4", "ink:0.6", "ink:0.8"], title="a picture")
    assert sheet.width > 3 * 64 and sheet.height > 2 * 64
    colours = {sheet.getpixel((x, y)) for x in range(sheet.width) for y in range(0, sheet.height, 4)}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours
    assert any(c not in {(255, 255, 255), (255, 0, 0), (0, 0, 255)} for c in colours)  # label text
    with pytest.raises(ValueError):
        compose_grid([[red]], ["a", "b"], ["w"])


@pytest.mark.parametrize("text", ["0.4,,0.8", "0.4,abc", "nan"])
def test_bad_weight_lists_are_refused(text):
    with pytest.raises(MixError, match="--weights"):
        parse_weights(text)


def test_parameters_text_follows_a1111(tmp_path):
    shot = Shot("x", [(tmp_path / "ink.safetensors", "ink", 0.7), (tmp_path / "h.safetensors", "h", 0.3)],
                tmp_path / "o.png", "a picture, ink wash", "blurry")
    text = a1111_parameters(shot, Settings(seed=5, steps=2, size=64), "sd1-tiny")
    lines = text.splitlines()
    assert lines[0] == "a picture, ink wash <lora:ink:0.7> <lora:h:0.3>"
    assert lines[1] == "Negative prompt: blurry"
    assert "Steps: 2" in lines[2] and "Seed: 5" in lines[2] and "Size: 64x64" in lines[2]


def test_preview_paths_are_numbered_once_the_first_is_taken(tmp_path):
    lora = tmp_path / "ink.safetensors"
    assert free_preview_path(lora).name == "ink.preview.png"
    (tmp_path / "ink.preview.png").write_bytes(b"")
    assert free_preview_path(lora).name == "ink.preview.2.png"


def test_missing_or_wrong_base_model_config_says_what_to_set(tmp_path):
    from catalog.index.library import Library

    root = tmp_path / "loras"
    (root / ".lutnav").mkdir(parents=True)
    lib = Library(root)
    with pytest.raises(MixError, match=r"\[models\] sd1"):
        model_for(lib, "sd1")
    (root / "ckpt.safetensors").write_bytes(b"")
    (root / ".lutnav/config.toml").write_text('[models]\nsd1 = "ckpt.safetensors"\n')
    with pytest.raises(CatalogError, match=r"ckpt.safetensors: 0 bytes long"):
        model_for(Library(root), "sd1")
    (root / ".lutnav/config.toml").write_text('[models]\nsd1 = "nowhere"\n')
    with pytest.raises(MixError, match="nor a .safetensors checkpoint"):
        model_for(Library(root), "sd1")


def test_halfblocks_draw_two_pixel_rows_per_line(tmp_path):
    from PIL import Image

    from lutnav.mix.terminal import halfblocks

    path = tmp_path / "i.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path)
    lines = halfblocks(path, width=16).splitlines()
    assert len(lines) == 8 and "38;2;10;20;30" in lines[0]


# --- with the tiny pipeline ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_library(tmp_path_factory):
    from catalog.files.safetensors_writer import write_safetensors
    from tests.mixlib import build_library, lora_bytes, tiny_lora_modules, tiny_pipeline

    base = tmp_path_factory.mktemp("model") / "sd1-tiny"
    pipe = tiny_pipeline(base)
    root = tmp_path_factory.mktemp("lib") / "loras"
    mods = tiny_lora_modules(pipe)
    (root / "style/t").mkdir(parents=True)
    write_safetensors(root / "style/t/tink.safetensors", lora_bytes(mods, 4, 4.0, 1, scale=0.5))
    write_safetensors(root / "style/t/thero.safetensors", lora_bytes(mods[1:], 4, 4.0, 2, scale=0.5))
    (root / "style/t/tink.toml").write_text('strength = 0.8\ntrigger_words = ["ink"]\n')
    return build_library(root, config=f'[models]\nsd1 = "{base}"\n')


FAST = ["--steps", "2", "--size", "64", "--seed", "3"]


def run(lib, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


@pytest.mark.slow
def test_preview_writes_a_png_with_parameters_and_stores_it(tiny_library):
    from PIL import Image

    lib = tiny_library
    res = run(lib, "preview", "tink", *FAST)
    assert res.exit_code == 0, res.output
    path = lib.root / "style/t/tink.preview.png"
    assert str(path) in res.output
    with Image.open(path) as img:
        assert img.size == (64, 64)
        params = img.text["parameters"]
    assert params.startswith("a picture, ink <lora:tink:0.8>") and "Steps: 2" in params and "Seed: 3" in params
    assert lib.get("tink").previews
    res = run(lib, "preview", "tink", *FAST, "--prompt", "a cat")
    assert res.exit_code == 0, res.output
    second = lib.root / "style/t/tink.preview.2.png"
    assert second.is_file()
    assert any(p.endswith("tink.preview.2.png") for p in lib.get("tink").previews)


@pytest.mark.slow
def test_mix_preview_samples_each_lora_and_the_blend(tiny_library):
    lib = tiny_library
    res = run(lib, "mix", "tink:0.5", "thero:0.5", "--preview", *FAST)
    assert res.exit_code == 0, res.output
    folder = lib.root / ".lutnav/previews"
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == ["tink+thero.blend.png", "tink+thero.thero.png", "tink+thero.tink.png"]
    from PIL import Image

    with Image.open(folder / "tink+thero.blend.png") as img:
        assert "<lora:tink:0.5> <lora:thero:0.5>" in img.text["parameters"]
    with Image.open(folder / "tink+thero.blend.png") as a, Image.open(folder / "tink+thero.tink.png") as b:
        assert a.tobytes() != b.tobytes()


@pytest.mark.slow
def test_grid_composes_checkpoint_by_weight(tiny_library, tmp_path):
    from PIL import Image

    lib = tiny_library
    out = tmp_path / "grid.png"
    res = run(lib, "grid", "tink", "--weights", "0,1", "--out", str(out), *FAST)
    assert res.exit_code == 0, res.output
    with Image.open(out) as sheet:
        assert sheet.width > 2 * 64 and 64 < sheet.height < 2 * 64 + 80
        assert "X: weight 0,1" in sheet.text["parameters"]


@pytest.mark.slow
def test_preview_from_an_fp16_model_folder(tiny_library, tmp_path):
    """Many published diffusers folders are fp16; the LoRA layers must not meet them in another dtype."""
    import torch
    from diffusers import StableDiffusionPipeline

    lib = tiny_library
    base = lib.config["models"]["sd1"]  # an absolute path in this fixture
    half = tmp_path / "sd1-tiny-fp16"
    StableDiffusionPipeline.from_pretrained(base, torch_dtype=torch.float16).save_pretrained(half)
    res = run(lib, "preview", "tink", *FAST, "--model", str(half))
    assert res.exit_code == 0, res.output
    assert any(p.name.startswith("tink.preview") for p in (lib.root / "style/t").iterdir())

"""The demo library: real files a user (and every other test) can rely on."""

from __future__ import annotations

import inspect
import json
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import SafetensorError, safe_open

from catalog.cards.card_file import read_card
from lutnav import demo
from lutnav.demo import ENTRIES, INK_WASH_README, MARKER, write_demo

SIDECAR_SUFFIXES = (".toml", ".civitai.info", ".metadata.json", ".cm-info.json")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _decoded(path: Path) -> dict[str, np.ndarray]:
    """Every tensor as float32, decoded by hand (numpy has no bfloat16)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    out = {}
    for key, info in header.items():
        raw = body[info["data_offsets"][0]:info["data_offsets"][1]]
        if info["dtype"] == "BF16":
            out[key] = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        else:
            out[key] = np.frombuffer(raw, {"F16": "<f2", "F32": "<f4"}[info["dtype"]]).astype("<f4")
    return out


def _weights(root: Path, entry) -> Path:
    path = root / entry.path
    return path / "adapter_model.safetensors" if entry.format == "peft" else path


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "loras"
    write_demo(root)
    return root


def test_every_entry_is_written_under_a_category_and_theme(demo_root):
    written = _tree(demo_root)
    for entry in ENTRIES:
        category, theme, _ = entry.path.split("/", 2)
        assert category in {"style", "character", "industry"} and theme
        assert _weights(demo_root, entry).is_file(), entry.path
    assert len(ENTRIES) >= 12
    assert {e.base_model for e in ENTRIES} >= {"sd1", "sd2", "sdxl", "flux", "llm"}
    assert sum(e.broken for e in ENTRIES) == 1
    assert MARKER in written


def test_returned_paths_are_exactly_the_files_on_disk(tmp_path):
    root = tmp_path / "lib"
    paths = write_demo(root)
    assert paths == sorted(paths)
    assert {p.relative_to(root).as_posix() for p in paths} == set(_tree(root))


def test_every_safetensors_file_opens_except_the_broken_one(demo_root):
    for entry in ENTRIES:
        if entry.format == "pickle":
            continue
        path = _weights(demo_root, entry)
        if entry.broken:
            with pytest.raises(SafetensorError):
                safe_open(path, framework="numpy")
            continue
        with safe_open(path, framework="numpy") as fh:
            assert list(fh.keys()), entry.path
        for key, values in _decoded(path).items():
            assert values.size and np.isfinite(values).all() and (values != 0).any(), (entry.path, key)


def test_kohya_sd1_file_carries_real_widths_alpha_and_training_metadata(demo_root):
    with safe_open(demo_root / "style/ink_wash/ink_wash_v2.safetensors", framework="numpy") as fh:
        meta = fh.metadata()
        k_down = fh.get_tensor("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight")
        alpha = fh.get_tensor("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha")
        assert any(k.startswith("lora_te_text_model_encoder_layers_0_") for k in fh.keys())
        assert fh.get_slice(next(k for k in fh.keys() if k.endswith("lora_up.weight"))).get_dtype() == "F16"
    assert k_down.shape == (4, 768)
    assert float(alpha) == 2.0
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert "ink wash painting" in json.loads(meta["ss_tag_frequency"])["10_ink_wash_v2"]


def test_sdxl_flux_and_sd2_files_have_their_identifying_widths(demo_root):
    def shapes(rel):
        with safe_open(demo_root / rel, framework="numpy") as fh:
            return {k: fh.get_slice(k).get_shape() for k in fh.keys()}

    sdxl = shapes("style/watercolor/watercolor_sdxl.safetensors")
    assert any("attn2_to_k.lora_down" in k and s == [4, 2048] for k, s in sdxl.items())
    assert any(k.startswith("lora_te1_") for k in sdxl) and any(k.startswith("lora_te2_") for k in sdxl)
    flux = shapes("character/robots/flux_robot.safetensors")
    assert any("double_blocks_0_img_attn_qkv.lora_up" in k and s == [9216, 4] for k, s in flux.items())
    sd2 = shapes("industry/architecture/facade_sd2.safetensors")
    assert any("attn2_to_k.lora_down" in k and s == [4, 1024] for k, s in sd2.items())
    loha = shapes("style/oil_paint/oil_loha.safetensors")
    assert any(k.endswith(".hada_w1_a") for k in loha) and not any("lora_down" in k for k in loha)
    locon = shapes("style/pixel_art/pixel_locon.safetensors")
    assert any(len(s) == 4 and s[2:] == [3, 3] for s in locon.values())  # a 3x3 conv LoRA


def test_diffusers_file_has_unet_keys_and_adapter_metadata_alpha(demo_root):
    with safe_open(demo_root / "character/cats/zzcat.safetensors", framework="numpy") as fh:
        keys = list(fh.keys())
        meta = json.loads(fh.metadata()["lora_adapter_metadata"])
    assert keys and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    assert meta["unet.lora_alpha"] == 4


def test_peft_adapter_folder_matches_its_config(demo_root):
    folder = demo_root / "industry/medical/med_qa"
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"]
    with safe_open(folder / "adapter_model.safetensors", framework="numpy") as fh:
        q_a = fh.get_slice("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight").get_shape()
        modules = {k.split(".")[-3] for k in fh.keys()}
    assert q_a == [config["r"], 64]
    assert modules == set(config["target_modules"])


def test_ink_wash_readme_is_the_seed_format(demo_root):
    text = (demo_root / "style/ink_wash/README.md").read_text("utf-8")
    section = text[text.index("### ink_wash_v2.safetensors"):]
    assert section == INK_WASH_README[INK_WASH_README.index("###"):]
    assert "- 推荐强度:0.6 ~ 0.8" in section and "- 触发词:无(全局生效)" in section


def test_every_sidecar_kind_is_present_and_parses(demo_root):
    files = _tree(demo_root)
    for suffix in SIDECAR_SUFFIXES:
        assert any(name.endswith(suffix) for name in files), suffix
    a1111 = [n for n in files if n.endswith(".json") and not n.endswith(
        (".metadata.json", ".cm-info.json", "adapter_config.json"))]
    assert a1111 and all("activation text" in json.loads(files[n]) for n in a1111)
    for name, data in files.items():
        if name.endswith((".json", ".civitai.info")):
            json.loads(data)
        if name.endswith(".toml") and not name.startswith("blends/"):
            card, _ = read_card(demo_root / name)  # strict: raises on any schema problem
            assert card.title


def test_the_saved_blend_is_a_valid_recipe(demo_library):
    from lutnav.mix.recipe import load_recipe

    recipe = load_recipe(demo_library.root / "blends/ink_hero.toml")
    assert [(s.name, s.weight) for s in recipe.specs] == [("ink_wash_v2", 0.7), ("herocat", 0.3)]
    assert not [e for e in demo_library.entries() if e.category == "blends"]


def test_previews_are_small_pngs_for_most_entries(demo_root):
    previews = [p for p in demo_root.rglob("*.png")]
    assert len(previews) >= len(ENTRIES) // 2
    for path in previews:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == (64, 64)
            assert len(img.getcolors(64 * 64)) > 8  # drawn, not blank


def test_ckpt_is_a_plain_pickle_that_nothing_unpickles(demo_root):
    data = (demo_root / "style/anime/anime_lineart_2022.ckpt").read_bytes()
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}  # reads opcodes, runs nothing
    assert "PROTO" in opcodes
    assert not opcodes & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ"}
    source = inspect.getsource(demo)
    assert "pickle.load" not in source and "Unpickler" not in source


def test_library_is_small(demo_root):
    sizes = [len(b) for b in _tree(demo_root).values()]
    assert sum(sizes) < 10 * 1024 * 1024
    assert max(sizes) < 1024 * 1024


def test_two_runs_write_identical_bytes(tmp_path):
    write_demo(tmp_path / "a")
    write_demo(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_refuses_a_folder_of_someone_elses_files(tmp_path):
    root = tmp_path / "my-loras"
    root.mkdir()
    (root / "mine.safetensors").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="my-loras.*not empty"):
        write_demo(root)
    assert _tree(root) == {"mine.safetensors": b"precious"}


def test_refuses_a_file_in_place_of_the_folder(tmp_path):
    target = tmp_path / "loras"
    target.write_text("not a folder")
    with pytest.raises(FileExistsError, match="not a folder"):
        write_demo(target)


def test_running_again_adds_what_is_missing_and_changes_nothing_else(tmp_path):
    root = tmp_path / "loras"
    write_demo(root)
    before = _tree(root)
    (root / "character/cats/zzcat.toml").write_text('title = "my cat"\n')
    (root / "style/ink_wash/ink_wash_v2.safetensors").write_bytes(b"my own file")
    (root / "style/ink_wash/README.md").unlink()
    (root / "style/anime/cute_anime_girl_zz.preview.png").unlink()
    (root / "style/mine.txt").write_text("mine")
    written = write_demo(root)
    after = _tree(root)
    assert {p.relative_to(root).as_posix() for p in written} == {
        "style/ink_wash/README.md", "style/anime/cute_anime_girl_zz.preview.png"}
    assert after.pop("character/cats/zzcat.toml") == b'title = "my cat"\n'
    assert after.pop("style/ink_wash/ink_wash_v2.safetensors") == b"my own file"
    assert after.pop("style/mine.txt") == b"mine"
    before.pop("character/cats/zzcat.toml")
    before.pop("style/ink_wash/ink_wash_v2.safetensors")
    assert after == before


def test_scan_finds_what_each_entry_is_meant_to_show(demo_library):
    rows = {e.path: e for e in demo_library.entries()}
    assert set(rows) == {e.path for e in ENTRIES}
    for entry in ENTRIES:
        row = rows[entry.path]
        assert bool(row.error) == entry.broken, (entry.path, row.error)
        assert (row.format, row.base_model) == (entry.format, entry.base_model), entry.path
    assert rows["style/ink_wash/ink_wash_v2.safetensors"].strength_range == [0.6, 0.8]
    assert rows["style/ink_wash/ink_wash_v2.safetensors"].trigger_words == []
    assert rows["character/heroes/herocat.safetensors"].trigger_words == ["herocat", "red cape"]


@pytest.mark.slow
def test_demo_models_are_added_without_touching_a_users_config(tmp_path):
    from click.testing import CliRunner

    from lutnav.cli import cli
    from lutnav.demo_models import LLM_DIR, SD1_DIR, TRAIN_DIR, write_demo_models

    root = tmp_path / "loras"
    result = CliRunner().invoke(cli, ["--library", str(root), "demo", "--no-models"])
    assert result.exit_code == 0, result.output
    assert not (root / SD1_DIR).exists()
    config = root / ".lutnav" / "config.toml"
    config.write_text('[mix]\nmax_loras = 3\n', "utf-8")
    report = write_demo_models(root)
    assert config.read_text("utf-8") == '[mix]\nmax_loras = 3\n'
    assert any("left alone" in note and f'sd1 = "{SD1_DIR}"' in note for note in report.notes)
    assert (root / SD1_DIR / "model_index.json").is_file() and (root / LLM_DIR / "config.json").is_file()
    assert (root / TRAIN_DIR / "cats.toml").is_file() and (root / TRAIN_DIR / "cats" / "metadata.csv").is_file()
    assert write_demo_models(root).written == []  # a second run adds nothing

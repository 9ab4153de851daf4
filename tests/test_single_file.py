"""Single-file checkpoints (A1111 layout) as the base model of previews, grids and training, offline."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from catalog.index.library import Library
from catalog.files.safetensors_writer import write_safetensors
from lutnav.cli import cli
from lutnav.mix.errors import MixError
from lutnav.mix.preview import model_for

SD1_KEYS = ("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
            "model.diffusion_model.input_blocks.0.0.weight")
SDXL_KEYS = ("conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight",
             "conditioner.embedders.1.model.positional_embedding", "model.diffusion_model.input_blocks.0.0.weight")
SD2_KEYS = ("cond_stage_model.model.token_embedding.weight", "model.diffusion_model.input_blocks.0.0.weight")


def _stub_checkpoint(path, keys):
    """A checkpoint with the right tensor names and 2-value tensors: enough for every header-only check."""
    write_safetensors(path, {k: ("F16", [2], b"\0" * 4) for k in keys})
    return path


def _library(tmp_path, config: str) -> Library:
    root = tmp_path / "loras"
    (root / ".lutnav").mkdir(parents=True, exist_ok=True)
    (root / ".lutnav" / "config.toml").write_text(config)
    return Library(root)


def test_model_for_reads_a_checkpoints_family_from_its_tensor_names(tmp_path):
    _stub_checkpoint(tmp_path / "v15.safetensors", SD1_KEYS)
    _stub_checkpoint(tmp_path / "xl.safetensors", SDXL_KEYS)
    lib = _library(tmp_path, f'[models]\nsd1 = "{tmp_path / "v15.safetensors"}"\nsdxl = "{tmp_path / "xl.safetensors"}"\n')
    sd1 = model_for(lib, "sd1")
    assert (sd1.family, sd1.single_file, sd1.label, sd1.config) == ("sd1", True, "v15", None)
    assert model_for(lib, "sdxl").family == "sdxl"
    with pytest.raises(MixError, match="xl.safetensors is sdxl, the LoRA is sd1 — pick a sd1 checkpoint"):
        model_for(lib, "sd1", str(tmp_path / "xl.safetensors"))


def test_pickled_missing_and_foreign_checkpoints_are_refused_with_what_to_do(tmp_path):
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"\x80\x04not read")
    _stub_checkpoint(tmp_path / "vae.safetensors", ("encoder.conv_in.weight",))
    lib = _library(tmp_path, "[models]\n")
    with pytest.raises(MixError, match="pickled .ckpt files are never loaded"):
        model_for(lib, "sd1", str(pickle))
    with pytest.raises(MixError, match="checkpoint file does not exist"):
        model_for(lib, "sd1", str(tmp_path / "gone.safetensors"))
    with pytest.raises(MixError, match="not a Stable Diffusion checkpoint"):
        model_for(lib, "sd1", str(tmp_path / "vae.safetensors"))


def test_sd2_checkpoints_need_a_config_folder_because_the_file_cannot_tell_v_prediction(tmp_path):
    _stub_checkpoint(tmp_path / "v21.safetensors", SD2_KEYS)
    lib = _library(tmp_path, f'[models]\nsd2 = "{tmp_path / "v21.safetensors"}"\n')
    with pytest.raises(MixError, match=r"sd2_config"):
        model_for(lib, "sd2")
    (tmp_path / "v21-config").mkdir()
    lib = _library(tmp_path, f'[models]\nsd2 = "{tmp_path / "v21.safetensors"}"\nsd2_config = "{tmp_path / "v21-config"}"\n')
    assert model_for(lib, "sd2").config == tmp_path / "v21-config"


def test_grid_takes_the_checkpoints_of_the_loras_family_and_says_what_it_skipped(tmp_path):
    from lutnav.mix.grid import checkpoints_in

    folder = tmp_path / "Stable-diffusion"
    folder.mkdir()
    _stub_checkpoint(folder / "b-v15.safetensors", SD1_KEYS)
    _stub_checkpoint(folder / "A-dreamy.safetensors", SD1_KEYS)
    _stub_checkpoint(folder / "xl.safetensors", SDXL_KEYS)
    (folder / "old.ckpt").write_bytes(b"\x80\x04")
    (folder / "notes.txt").write_text("not a model")
    models, notes = checkpoints_in(folder, _library(tmp_path, ""), "sd1")
    assert [m.label for m in models] == ["A-dreamy", "b-v15"]
    assert notes == ["skipped old.ckpt: pickled checkpoints are never loaded",
                     "skipped xl.safetensors: an sdxl model, the LoRA is sd1"]
    with pytest.raises(MixError, match="no sd2 checkpoints"):
        checkpoints_in(folder, _library(tmp_path, ""), "sd2")


# --- the shipped configs and tokenizer ---------------------------------------------------------


@pytest.mark.slow
def test_shipped_configs_build_the_released_architectures():
    """Parameter counts of SD 1.5 and SDXL base 1.0, as published, from the configs alone."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainers.image.single_file import SHIPPED

    def count(model):
        return sum(p.numel() for p in model.parameters())

    def config(family, part):
        return json.loads((SHIPPED / family / part / "config.json").read_text())

    with init_empty_weights():
        assert count(UNet2DConditionModel.from_config(config("sd1", "unet"))) == 859_520_964
        assert count(UNet2DConditionModel.from_config(config("sdxl", "unet"))) == 2_567_463_684
        for family in ("sd1", "sdxl"):
            assert count(AutoencoderKL.from_config(config(family, "vae"))) == 83_653_863
            assert count(CLIPTextModel(CLIPTextConfig(**config(family, "text_encoder")))) == 123_060_480
        big_g = CLIPTextModelWithProjection(CLIPTextConfig(**config("sdxl", "text_encoder_2")))
        assert count(big_g) == 694_659_840


@pytest.mark.slow
def test_shipped_tokenizer_gives_clips_own_token_ids():
    from transformers import CLIPTokenizer

    from trainers.image.single_file import shipped_config

    folder = shipped_config("sdxl")
    first = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    second = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", local_files_only=True)
    assert len(first) == 49408
    assert first("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert first.pad_token == "<|endoftext|>" and second.pad_token == "!"
    assert second("a photo of a cat", padding="max_length", max_length=10).input_ids[-1] == 0


# --- a real checkpoint file, from a tiny random pipeline -----------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """(diffusers folder, the same weights as an LDM single file, a config-only folder, the pipeline)."""
    from tests.ldm_checkpoint import config_only, write_single_file
    from tests.mixlib import tiny_pipeline

    root = tmp_path_factory.mktemp("single-file")
    pipe = tiny_pipeline(root / "sd1-tiny")
    ckpt = write_single_file(pipe, root / "tiny-v15.safetensors")
    return root / "sd1-tiny", ckpt, config_only(root / "sd1-tiny", root / "tiny-config"), pipe


@pytest.mark.slow
def test_a_single_file_loads_offline_with_every_weight_in_place(tiny_checkpoint, monkeypatch):
    import torch

    from trainers.image.single_file import load_single_file

    _, ckpt, config, pipe = tiny_checkpoint
    attempts = []

    def no_network(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_single_file(ckpt, "sd1", config=config)
    assert attempts == []
    for part in ("unet", "vae", "text_encoder"):
        want, got = getattr(pipe, part).state_dict(), getattr(loaded, part).state_dict()
        assert set(want) == set(got), part
        assert all(torch.equal(want[k], got[k].reshape(want[k].shape)) for k in want), part


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_its_config_names_the_file(tiny_checkpoint, tmp_path):
    from trainers.errors import ModelLoadError
    from trainers.image.single_file import load_single_file

    _, ckpt, _, _ = tiny_checkpoint
    with pytest.raises(ModelLoadError, match=r"tiny-v15.safetensors: cannot load the sd1 single-file"):
        load_single_file(ckpt, "sd1")  # the shipped SD 1.5 configs: shapes differ


FAST = ["--steps", "2", "--size", "64", "--seed", "3"]


@pytest.fixture(scope="module")
def single_file_library(tiny_checkpoint, tmp_path_factory):
    from tests.mixlib import build_library, lora_bytes, tiny_lora_modules

    folder, ckpt, config, pipe = tiny_checkpoint
    root = tmp_path_factory.mktemp("lib") / "loras"
    (root / "style/t").mkdir(parents=True)
    write_safetensors(root / "style/t/tink.safetensors", lora_bytes(tiny_lora_modules(pipe), 4, 4.0, 1, scale=0.5))
    return build_library(root, config=f'[models]\nsd1 = "{ckpt}"\nsd1_config = "{config}"\n')


@pytest.mark.slow
def test_preview_from_a_single_file_matches_the_diffusers_folder(single_file_library, tiny_checkpoint):
    from PIL import Image

    lib = single_file_library
    folder, _, _, _ = tiny_checkpoint
    res = CliRunner().invoke(cli, ["--library", str(lib.root), "preview", "tink", *FAST])
    assert res.exit_code == 0, res.output
    first = lib.root / "style/t/tink.preview.png"
    res = CliRunner().invoke(cli, ["--library", str(lib.root), "preview", "tink", *FAST, "--model", str(folder)])
    assert res.exit_code == 0, res.output
    with Image.open(first) as a, Image.open(lib.root / "style/t/tink.preview.2.png") as b:
        assert "Sampler: DDIM" in a.text["parameters"] and "Model: tiny-v15" in a.text["parameters"]
        assert a.tobytes() == b.tobytes()  # the same weights give the same picture


@pytest.mark.slow
def test_grid_rows_are_the_checkpoints_in_a_folder(single_file_library, tiny_checkpoint, tmp_path):
    import shutil

    from PIL import Image

    lib = single_file_library
    _, ckpt, _, _ = tiny_checkpoint
    models = tmp_path / "Stable-diffusion"
    models.mkdir()
    shutil.copy(ckpt, models / "one.safetensors")
    shutil.copy(ckpt, models / "two.safetensors")
    (models / "old.ckpt").write_bytes(b"\x80\x04")
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["--library", str(lib.root), "grid", "tink", "--weights", "0,1",
                                   "--checkpoints", str(models), "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert "skipped old.ckpt: pickled checkpoints are never loaded" in res.output
    with Image.open(out) as sheet:
        assert sheet.height > 2 * 64 and "Model: one, two" in sheet.text["parameters"]


@pytest.mark.slow
def test_training_starts_from_a_single_file_checkpoint(tmp_path):
    import torch
    from safetensors import safe_open

    from tests.ldm_checkpoint import config_only, write_single_file
    from trainers.image.tiny import caption_words, write_image_set, write_tiny_sd

    folder = write_tiny_sd(tmp_path / "sd", words=caption_words())
    from diffusers import StableDiffusionPipeline

    ckpt = write_single_file(StableDiffusionPipeline.from_pretrained(folder), tmp_path / "tiny.safetensors")
    config_only(folder, tmp_path / "tiny-config")
    data = write_image_set(tmp_path / "data", 4)
    cfg = tmp_path / "cat.toml"
    cfg.write_text(f'task_type = "image-generation"\nbase_model = "tiny.safetensors"\nmodel_config = "tiny-config"\n'
                   f'train_data_dir = "{data}"\nresolution = 64\nlora_rank = 4\nbatch_size = 2\nmax_steps = 2\n'
                   'name = "sfcat"\ntrigger_words = ["zzcat"]\n')
    library = tmp_path / "loras"
    library.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        check = CliRunner().invoke(cli, ["--library", str(library), "train", str(cfg), "--check"])
        assert check.exit_code == 0, check.output
        assert "single file" in check.output and "sd1" in check.output
        res = CliRunner().invoke(cli, ["--library", str(library), "train", str(cfg)])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    [filed] = library.rglob("sfcat.safetensors")
    with safe_open(str(filed), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sd_v1"
        assert any(k.startswith("lora_unet_") for k in f.keys())


@pytest.mark.slow
def test_an_sdxl_single_file_with_its_openclip_encoder_loads_and_samples(tmp_path):
    import torch
    from diffusers import StableDiffusionXLPipeline

    from lutnav.mix.preview import BaseModel, Settings, Shot, load_pipeline, render
    from tests.ldm_checkpoint import config_only, write_single_file
    from trainers.image.single_file import checkpoint_family
    from trainers.image.tiny import write_tiny_sdxl

    folder = write_tiny_sdxl(tmp_path / "xl", text_width_2=40)  # widths differ, as 768 and 1280 do
    pipe = StableDiffusionXLPipeline.from_pretrained(folder)
    ckpt = write_single_file(pipe, tmp_path / "tiny-xl.safetensors")
    assert checkpoint_family(ckpt)[0] == "sdxl"
    model = BaseModel(ckpt, "sdxl", config_only(folder, tmp_path / "xl-config"))
    loaded = load_pipeline(model)
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        want, got = getattr(pipe, part).state_dict(), getattr(loaded, part).state_dict()
        assert set(want) == set(got), part
        assert all(torch.equal(want[k], got[k].reshape(want[k].shape)) for k in want), part
    image = render(loaded, Shot("x", [], tmp_path / "x.png", "a photo"), Settings(steps=2, size=64))
    assert image.size == (64, 64)


@pytest.mark.slow
def test_a_full_size_sd15_checkpoint_samples_with_the_shipped_configs(tmp_path, monkeypatch):
    """The released SD 1.5 shapes and A1111 names (weights all zero), read with no config of
    the user's and no network: the path a real ``v1-5-pruned-emaonly.safetensors`` takes."""
    from types import SimpleNamespace

    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lutnav.mix.preview import Settings, Shot, load_pipeline, render
    from tests.ldm_checkpoint import write_single_file
    from tests.sdconfigs import CLIP_L, SD15_UNET, shipped

    with init_empty_weights():
        meta = SimpleNamespace(unet=UNet2DConditionModel(**SD15_UNET), vae=AutoencoderKL(**shipped("sd1", "vae")),
                               text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)))
    ckpt = write_single_file(meta, tmp_path / "v1-5-zeros.safetensors", family="sd1", dtype=torch.float16)
    lib = _library(tmp_path, f'[models]\nsd1 = "{ckpt}"\n')
    model = model_for(lib, "sd1")
    assert (model.family, model.config) == ("sd1", None)
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("network used")))
    pipe = load_pipeline(model)
    assert sum(p.numel() for p in pipe.unet.parameters()) == 859_520_964
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    image = render(pipe, Shot("x", [], tmp_path / "x.png", "a photo"), Settings(steps=1, size=64))
    assert image.size == (64, 64)

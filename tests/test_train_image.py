"""`lutnav train` for image LoRAs, end to end on a tiny SD1-shaped pipeline built by code.

What a user would check: the plan before training, a LoRA file that diffusers
loads without dropping a key and that changes the image, the kohya names
converting back, a resumed run ending exactly where an unbroken one does,
and the result filed into the library where `lutnav ls` shows it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

BASE_CONFIG = """
task_type = "image-generation"
base_model = "{model}"
train_data_dir = "{data}"
resolution = 64
lora_rank = 4
lora_alpha = 2
batch_size = 4
learning_rate = 1e-3
seed = 7
name = "{name}"
category = "character"
theme = "cats"
trigger_words = ["zzcat"]
strength_range = [0.6, 0.8]
"""


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from a second thread, and on a shared CPU it costs a lot."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny SD1 pipeline folder and 12 captioned images (built once for the module)."""
    from trainers.image.tiny import caption_words, write_image_set, write_tiny_sd

    root = tmp_path_factory.mktemp("tiny-sd")
    model = write_tiny_sd(root / "sd", words=caption_words())
    data = write_image_set(root / "data", 12)
    return root, model, data


def _config(folder: Path, tiny, name: str, extra: str = "", data: Path | None = None) -> Path:
    _, model, default_data = tiny
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(BASE_CONFIG.format(model=model, data=data or default_data, name=name) + extra, "utf-8")
    return path


class _Logs(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _load_into_pipeline(pipeline_cls, model: Path, lora: Path):
    """(image before, image after, number of LoRA layers, diffusers/peft log lines, the pipeline)."""
    import torch
    from peft.tuners.lora import LoraLayer

    logs = _Logs()
    loggers = [logging.getLogger(n) for n in ("diffusers", "peft")]
    for lg in loggers:
        lg.addHandler(logs)
    try:
        pipe = pipeline_cls.from_pretrained(model)
        pipe.set_progress_bar_config(disable=True)

        def render():
            generator = torch.Generator().manual_seed(0)
            return pipe("zzcat, a red square", num_inference_steps=2, height=64, width=64, generator=generator,
                        output_type="np").images[0]

        before = render()
        pipe.load_lora_weights(str(lora))
        after = render()
    finally:
        for lg in loggers:
            lg.removeHandler(logs)
    layers = [m for part in ("unet", "text_encoder", "text_encoder_2") if getattr(pipe, part, None) is not None
              for m in getattr(pipe, part).modules() if isinstance(m, LoraLayer)]
    return before, after, layers, logs.messages, pipe


def _unhandled(messages: list[str]) -> list[str]:
    words = ("unexpected key", "missing key", "not loaded", "were not used", "not compatible")
    return [m for m in messages if any(w in m.lower() for w in words)]


def test_check_prints_the_plan_without_loading_the_model(tmp_path, tiny):
    cfg = _config(tmp_path, tiny, "planned", 'max_steps = 6\nsave_steps = 3\nsample_prompts = ["zzcat"]\n')
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from lutnav.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['train', {str(cfg)!r}, '--check'])\n"
        "print(r.output)\n"
        "print('LOADED', sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
        "sys.exit(r.exit_code)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "family          sd1 — UNet cross-attention width 768" in out
    assert "12 images (metadata.csv)" in out
    assert "effective batch 4" in out
    assert "steps           6 (3 per epoch, 2.00 epochs)" in out
    assert "est. memory     ≈" in out and "GiB" in out
    assert "checkpoint-<step>/planned.safetensors" in out and "character/cats/planned.safetensors" in out
    assert "LOADED []" in out
    assert not (tmp_path / "output").exists()


def test_train_files_a_kohya_lora_that_loads_everywhere(tmp_path, tiny):
    from click.testing import CliRunner
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from lutnav.cli import cli
    from trainers.image.export import kohya_to_peft_names

    library = tmp_path / "loras"
    library.mkdir()
    cfg = _config(tmp_path, tiny, "tiny_cat",
                  'max_steps = 4\nsave_steps = 2\nsample_prompts = ["zzcat, a red square"]\nsample_steps = 2\n')
    result = CliRunner().invoke(cli, ["--library", str(library), "train", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "filed character/cats/tiny_cat.safetensors" in result.output

    filed = library / "character" / "cats" / "tiny_cat.safetensors"
    card = tomllib.loads(filed.with_suffix(".toml").read_text("utf-8"))
    assert card["trigger_words"] == ["zzcat"] and card["strength_range"] == [0.6, 0.8]
    assert card["base_model_claim"].startswith("stable-diffusion-v1")
    assert card["training"]["steps"] == 4 and card["training"]["rank"] == 4

    listed = CliRunner().invoke(cli, ["--library", str(library), "ls", "--json"])
    (entry,) = json.loads(listed.output)
    assert (entry["format"], entry["base_model"], entry["rank"], entry["alpha"]) == ("kohya", "sd1", 4, 2.0)
    assert entry["trigger_words"] == ["zzcat"]

    checkpoint = tmp_path / "output" / "tiny_cat" / "checkpoint-4"
    sample = Image.open(checkpoint / "samples" / "tiny_cat-step4-0.png")
    assert sample.text["parameters"].startswith("zzcat, a red square <lora:tiny_cat:1>\nSteps: 2, Sampler: Euler")
    assert (tmp_path / "output" / "tiny_cat" / "checkpoint-2" / "tiny_cat.safetensors").is_file()

    from safetensors import safe_open

    with safe_open(str(filed), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        alphas = {float(f.get_tensor(k)) for k in keys if k.endswith(".alpha")}
    assert alphas == {2.0}
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2"
    assert meta["ss_base_model_version"] == "sd_v1" and meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.trigger_phrase"] == "zzcat" and meta["ss_output_name"] == "tiny_cat"
    assert json.loads(meta["ss_tag_frequency"])["data"]["zzcat"] == 12

    mapped, unmapped = kohya_to_peft_names(keys)
    assert unmapped == [] and len(mapped) == len(keys)
    before, after, layers, logs, pipe = _load_into_pipeline(StableDiffusionPipeline, tiny[1], filed)
    assert _unhandled(logs) == []
    modules = {name.removesuffix(".lora_A.weight").removesuffix(".lora_B.weight").removesuffix(".alpha")
               for name in mapped.values()}
    assert len(layers) == len(modules) == sum(k.endswith(".alpha") for k in keys)
    unet_modules = dict(pipe.unet.named_modules())
    assert all(m.removeprefix("unet.") in unet_modules for m in modules)
    assert {layer.scaling[next(iter(layer.scaling))] for layer in layers} == {0.5}   # alpha 2 / rank 4
    assert abs(before - after).max() > 1e-4


def test_previews_land_beside_the_filed_lora(tmp_path, tiny):
    """What the CLI hands over: the final file plus the samples of its checkpoint as previews."""
    from trainers.config import load_config
    from trainers.handoff import file_into_library
    from trainers.image.task import sample_images
    from catalog.progress import finish
    from trainers.run import train

    cfg = _config(tmp_path, tiny, "with_preview", 'max_steps = 1\nsample_prompts = ["zzcat", "a blue circle"]\n'
                  "sample_steps = 1\n")
    trained = finish(train(load_config(cfg)))
    library = tmp_path / "lib"
    library.mkdir()
    previews = sample_images(trained.result.final)
    assert [p.name for p in previews] == ["with_preview-step1-0.png", "with_preview-step1-1.png"]
    filed = file_into_library(library, trained.artifact, category="style", theme="shapes", name="with_preview",
                              card=trained.card, previews=previews)
    assert (filed.path.parent / "with_preview.preview.png").is_file()
    from catalog.index.library import Library

    (entry,) = Library(library).entries()
    assert entry.previews and entry.previews[0].endswith("with_preview.preview.png")


def test_resume_after_a_kill_ends_exactly_where_an_unbroken_run_does(tmp_path, tiny):
    from safetensors.torch import load_file

    from trainers.config import load_config
    from trainers.loop import SaveEvent
    from catalog.progress import finish
    from trainers.run import train

    extra = "max_steps = 4\nsave_steps = 2\nnoise_offset = 0.05\nmin_snr_gamma = 5.0\n"
    straight = load_config(_config(tmp_path / "a", tiny, "run", extra))
    finish(train(straight))

    broken = load_config(_config(tmp_path / "b", tiny, "run", extra))
    events = train(broken)
    for event in events:
        if isinstance(event, SaveEvent) and event.step == 2:
            events.close()   # killed right after the first checkpoint
            break
    out = Path(broken.output_dir)
    assert (out / "checkpoint-2").is_dir() and not (out / "checkpoint-4").exists()
    resumed = finish(train(load_config(_config(tmp_path / "b", tiny, "run", extra))))
    assert resumed.result.resumed_from == 2 and resumed.result.step == 4

    a = load_file(str(Path(straight.output_dir) / "checkpoint-4" / "training_state" / "trainable.safetensors"))
    b = load_file(str(out / "checkpoint-4" / "training_state" / "trainable.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0   # bit for bit
    first = load_file(str(out / "checkpoint-2" / "training_state" / "trainable.safetensors"))
    assert max(float((first[k] - b[k]).abs().max()) for k in a) > 0   # it did train after resuming


def test_text_encoder_conv_layers_buckets_and_uncached_latents(tmp_path, tiny):
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from catalog.detect.classify import classify
    from catalog.files.header import read_header
    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    data = tmp_path / "shapes"
    data.mkdir()
    for i, size in enumerate([(96, 64), (64, 96), (64, 64), (128, 64)] * 2):
        Image.new("RGB", size, (30 * i, 90, 200 - 20 * i)).save(data / f"{i}.png")
        (data / f"{i}.txt").write_text(f"zzcat, shape {i}", "utf-8")
    extra = ('max_steps = 2\nsave_steps = 0\ntarget = "unet+text_encoder"\ntext_encoder_lr = 5e-4\nconv_lora = true\n'
             'conv_rank = 2\nconv_alpha = 1\nenable_bucket = true\nmin_bucket_reso = 32\nmax_bucket_reso = 128\n'
             'bucket_reso_steps = 32\ncache_latents = false\n')
    config = load_config(_config(tmp_path, tiny, "locon", extra, data=data))
    trained = finish(train(config))
    assert trained.card["training"]["adapted_layers"]["te1"] == 6
    assert len(trained.card["training"]["data"]["buckets"]) >= 2

    info = classify(read_header(trained.artifact))
    assert info.format == "kohya" and info.base_model == "sd1" and set(info.parts) >= {"unet", "te"}
    from safetensors import safe_open

    with safe_open(str(trained.artifact), "pt") as f:
        conv = f.get_tensor("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight")
        conv_alpha = float(f.get_tensor("lora_unet_down_blocks_0_resnets_0_conv1.alpha"))
        te_keys = [k for k in f.keys() if k.startswith("lora_te_text_model_encoder_layers_0_")]
    assert tuple(conv.shape) == (2, 32, 3, 3) and conv_alpha == 1.0
    assert len(te_keys) == 18   # q/k/v/out_proj + fc1/fc2, three tensors each

    before, after, layers, logs, pipe = _load_into_pipeline(StableDiffusionPipeline, tiny[1], trained.artifact)
    assert _unhandled(logs) == []
    assert sum(1 for m in pipe.text_encoder.modules() if m in layers) == 6
    assert abs(before - after).max() > 1e-4


def test_sdxl_two_text_encoders_and_ldm_names(tmp_path, tiny):
    from diffusers import StableDiffusionXLPipeline

    from trainers.config import load_config
    from trainers.image.export import kohya_to_peft_names
    from trainers.image.tiny import caption_words, write_tiny_sdxl
    from catalog.progress import finish
    from trainers.run import train

    model = write_tiny_sdxl(tmp_path / "sdxl", words=caption_words())
    cfg = tmp_path / "xl.toml"
    cfg.write_text(BASE_CONFIG.format(model=model, data=tiny[2], name="tiny_xl")
                   + 'max_steps = 1\ntarget = "unet+text_encoder"\n', "utf-8")
    trained = finish(train(load_config(cfg)))
    from safetensors import safe_open

    with safe_open(str(trained.artifact), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert any(k.startswith("lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k.") for k in keys)
    assert any(k.startswith("lora_te1_") for k in keys) and any(k.startswith("lora_te2_") for k in keys)
    assert kohya_to_peft_names(keys)[1] == []
    before, after, layers, logs, _ = _load_into_pipeline(StableDiffusionXLPipeline, model, trained.artifact)
    assert _unhandled(logs) == []
    assert len(layers) == sum(k.endswith(".alpha") for k in keys)
    assert abs(before - after).max() > 1e-5

"""Finding and loading a Stable Diffusion base model — local files only, never a silent download.

``base_model`` may be a diffusers folder (``model_index.json``), a single
``.safetensors`` checkpoint (as A1111 users keep them), or a hub id that is
already in the local Hugging Face cache.  The family (sd1 / sd2 / sdxl) is read
from the model's own config without loading weights, so ``--check`` can show
it; ``model_family`` in the config only has to be set when that cannot tell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainers.errors import ModelLoadError, UnsupportedSetting
from trainers.image.single_file import SHIPPED_FAMILIES, checkpoint_family, shipped_config
from trainers.local_models import locate

CROSS_WIDTH_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
#: kohya's ss_base_model_version and modelspec.architecture for each family
BASE_VERSION = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}


@dataclass
class ModelInfo:
    """What the base model is, known before loading it."""

    kind: str                      # "diffusers folder" | "single file"
    path: Path
    family: str | None             # None: could not tell without loading
    reason: str
    prediction_type: str = "epsilon"
    files: list[Path] = field(default_factory=list)   # weight files, for the memory estimate
    config: Path | None = None     # single files: the diffusers config folder that describes them


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def inspect(base_model: str, source: Path | None = None, *, model_config: str | None = None) -> ModelInfo:
    """Family and prediction type from the model's config files (no torch, no weights).

    A single file is read with ``model_config`` (a diffusers folder) when given, so a
    v-prediction or otherwise unusual checkpoint takes its schedule from there.
    """
    path = locate(base_model, source)
    if path.is_file():
        info = _inspect_single_file(path)
        if model_config:
            described = inspect(model_config, source)
            if info.family and described.family and described.family != info.family:
                raise ModelLoadError(f"model_config is {described.family} but the checkpoint is {info.family} "
                                     f"({info.reason})", path=source, hint="point model_config at a folder "
                                     "of the checkpoint's family")
            info.family = info.family or described.family
            info.prediction_type, info.config = described.prediction_type, described.path
        return info
    index = _read_json(path / "model_index.json")
    unet = _read_json(path / "unet" / "config.json")
    if not index or not unet:
        raise ModelLoadError("not a diffusers Stable Diffusion folder (expected model_index.json and "
                             "unet/config.json)", path=path,
                             hint="give base_model as a diffusers folder or a single .safetensors checkpoint")
    sched = _read_json(path / "scheduler" / "scheduler_config.json")
    files = sorted(p for sub in ("unet", "vae", "text_encoder", "text_encoder_2") for p in
                   (path / sub).glob("*.safetensors"))
    cross = unet.get("cross_attention_dim")
    if unet.get("addition_embed_type") == "text_time" or "text_encoder_2" in index:
        family, reason = "sdxl", "the UNet takes text_time conditioning and there are two text encoders"
    elif cross in CROSS_WIDTH_FAMILY:
        family, reason = CROSS_WIDTH_FAMILY[cross], f"UNet cross-attention width {cross}"
    else:
        family, reason = None, f"UNet cross-attention width {cross} is none of SD1 (768), SD2 (1024), SDXL (2048)"
    return ModelInfo("diffusers folder", path, family, reason, sched.get("prediction_type", "epsilon"), files)


def _inspect_single_file(path: Path) -> ModelInfo:
    family, reason = checkpoint_family(path)
    return ModelInfo("single file", path, family, reason, "epsilon", [path])


def resolve_family(configured: str, info: ModelInfo, source: Path | None = None) -> str:
    """The family to train: the model's own when known, the config's when it agrees or must decide."""
    if configured == "auto":
        if info.family is None:
            raise UnsupportedSetting(f"cannot tell the model family of {info.path}: {info.reason}", path=source,
                                     hint="set model_family = \"sd1\", \"sd2\" or \"sdxl\"")
        return info.family
    if info.family is not None and info.family != configured:
        raise UnsupportedSetting(f"model_family = \"{configured}\" but {info.path} is {info.family} "
                                 f"({info.reason})", path=source, hint="set model_family = \"auto\"")
    return configured


@dataclass
class Components:
    """The loaded pieces of a pipeline that training needs."""

    family: str
    unet: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]
    prediction_type: str


def load_components(info: ModelInfo, family: str, *, dtype=None) -> Components:
    """UNet, VAE, text encoder(s), tokenizer(s) and the noise schedule of the base model."""
    if info.kind == "single file":
        return _from_single_file(info, family, dtype)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    root = info.path
    kw = {"local_files_only": True}
    weights = {**kw, "use_safetensors": True}  # lutnav never unpickles: .bin weights are not loaded
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype, **weights)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", **weights)
        encoders = [CLIPTextModel.from_pretrained(root, subfolder="text_encoder", dtype=dtype, **weights)]
        tokenizers = [CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **kw)]
        if family == "sdxl":
            encoders.append(CLIPTextModelWithProjection.from_pretrained(root, subfolder="text_encoder_2",
                                                                        dtype=dtype, **weights))
            tokenizers.append(CLIPTokenizer.from_pretrained(root, subfolder="tokenizer_2", **kw))
        scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler", **kw)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load the model ({str(err).splitlines()[0]})", path=root) from None
    return Components(family, unet, vae, encoders, tokenizers, dict(scheduler.config),
                      scheduler.config.get("prediction_type", "epsilon"))


def _from_single_file(info: ModelInfo, family: str, dtype) -> Components:
    from trainers.image.single_file import load_single_file

    pipe = load_single_file(info.path, family, config=info.config, dtype=dtype)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if family == "sdxl" else [])
    return Components(family, pipe.unet, pipe.vae, encoders, tokenizers, dict(pipe.scheduler.config),
                      pipe.scheduler.config.get("prediction_type", "epsilon"))


def caption_counter(info: ModelInfo):
    """(count tokens of a caption, the limit) from the first tokenizer, without torch; ``None`` if unknown.

    Reads ``tokenizer/tokenizer.json`` with the ``tokenizers`` library when the folder has
    one (fast, no model), else builds transformers' CLIP tokenizer from vocab and merges.
    """
    root = info.path if info.kind == "diffusers folder" else info.config
    if root is None and info.family in SHIPPED_FAMILIES:
        root = shipped_config(info.family)  # a single file is read with the tokenizer lutnav ships
    if root is None or not (root / "tokenizer").is_dir():
        return None
    folder = root / "tokenizer"
    limit = int(_read_json(folder / "tokenizer_config.json").get("model_max_length", 77))
    limit = min(limit, 4096) - 2  # BOS and EOS take two places
    try:
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            fast = Tokenizer.from_file(str(folder / "tokenizer.json"))
            fast.no_truncation()
            return (lambda text: len(fast.encode(text, add_special_tokens=False).ids)), limit
        from transformers import CLIPTokenizer

        slow = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
        return (lambda text: len(slow(text, truncation=False).input_ids) - 2), limit
    except Exception:  # a tokenizer that will not load only costs the length check
        return None

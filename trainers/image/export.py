"""Writing a trained image LoRA as the file AUTOMATIC1111, Forge, ComfyUI and diffusers load as is.

Keys are kohya's (``lora_unet_…``, ``lora_te_…`` / ``lora_te1_…`` / ``lora_te2_…``
with ``.lora_down`` / ``.lora_up``), spelt by :mod:`catalog.detect.kohya_names`, the one
place lutnav translates LoRA names; every module carries a real ``.alpha``
(the trained ``lora_alpha``, not the rank, so the file loads at the strength
it was trained at).  The header holds kohya's ``ss_*`` training record and the
``modelspec.*`` fields that catalogs and UIs read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from catalog.detect.kohya_names import TE1, TE2, UNET, KeyName, kohya_key

#: modelspec.architecture per family (SAI model spec 1.0 spellings, as sd-scripts writes them)
ARCHITECTURE = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-512/lora",
                "sd2-v": "stable-diffusion-v2-768-v/lora", "sdxl": "stable-diffusion-xl-v1-base/lora"}
SAVE_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "float": "float32"}


def adapted_modules(parts: dict[str, Any]):
    """(part, module path, peft LoRA layer) for every adapted layer of the models in ``parts``."""
    from peft.tuners.lora import LoraLayer

    for part, model in parts.items():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and "default" in module.lora_A:
                yield part, name, module


def kohya_tensors(parts: dict[str, Any], family: str, dtype: str = "fp16") -> dict[str, Any]:
    """kohya-named LoRA tensors (down, up, alpha) of ``parts`` = {"unet": unet, "te1": …, "te2": …}."""
    import torch

    save = getattr(torch, SAVE_DTYPES[dtype])
    out: dict[str, Any] = {}
    for part, path, layer in adapted_modules(parts):
        down = layer.lora_A["default"].weight.detach()
        up = layer.lora_B["default"].weight.detach()
        for role, tensor in (("down", down), ("up", up)):
            out[kohya_key(KeyName(part, path, role, "diffusers"), family=family)] = \
                tensor.to("cpu", save).contiguous()
        alpha = torch.tensor(float(layer.lora_alpha["default"]), dtype=torch.float32)
        out[kohya_key(KeyName(part, path, "alpha", "diffusers"), family=family)] = alpha
    return out


def lora_metadata(*, config, family: str, prediction_type: str, step: int, epoch: int, total_steps: int,
                  num_epochs: int, images: int, tag_frequency: dict[str, dict[str, int]], resolution: tuple[int, int],
                  base_name: str, started_at: float, buckets: dict[str, int] | None = None) -> dict[str, str]:
    """The ``ss_*`` and ``modelspec.*`` header fields of one saved LoRA (all values are strings)."""
    c = config
    v_pred = prediction_type == "v_prediction"
    arch = ARCHITECTURE["sd2-v" if family == "sd2" and v_pred else family]
    network_args = {"conv_dim": str(c.conv_rank_value), "conv_alpha": _num(c.conv_alpha_value)} if c.conv_lora \
        else None
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(c.lora_rank),
        "ss_network_alpha": _num(c.alpha),
        "ss_network_args": json.dumps(network_args) if network_args else None,
        "ss_base_model_version": "sd_v2" if family == "sd2" else {"sd1": "sd_v1", "sdxl": "sdxl_base_v1-0"}[family],
        "ss_v2": str(family == "sd2"),
        "ss_v_parameterization": str(v_pred),
        "ss_sd_model_name": base_name,
        "ss_output_name": c.name,
        "ss_resolution": f"({resolution[0]}, {resolution[1]})",
        "ss_enable_bucket": str(c.enable_bucket),
        "ss_bucket_info": json.dumps({"buckets": buckets}) if buckets else None,
        "ss_num_train_images": str(images),
        "ss_num_epochs": str(num_epochs),
        "ss_epoch": str(epoch),
        "ss_steps": str(step),
        "ss_max_train_steps": str(total_steps),
        "ss_batch_size_per_device": str(c.batch_size),
        "ss_gradient_accumulation_steps": str(c.gradient_accumulation_steps),
        "ss_learning_rate": _num(c.learning_rate),
        "ss_unet_lr": _num(c.learning_rate),
        "ss_text_encoder_lr": _num(c.text_encoder_lr or c.learning_rate) if c.target != "unet" else None,
        "ss_network_train_unet_only": str(c.target == "unet"),
        "ss_optimizer": c.optimizer,
        "ss_lr_scheduler": c.scheduler,
        "ss_lr_warmup_steps": str(c.warmup_steps),
        "ss_mixed_precision": c.mixed_precision,
        "ss_gradient_checkpointing": str(c.gradient_checkpointing),
        "ss_cache_latents": str(c.cache_latents),
        "ss_noise_offset": _num(c.noise_offset) if c.noise_offset else None,
        "ss_min_snr_gamma": _num(c.min_snr_gamma) if c.min_snr_gamma else None,
        "ss_seed": str(c.seed),
        "ss_tag_frequency": json.dumps(tag_frequency, ensure_ascii=False),
        "ss_training_comment": f"trigger: {', '.join(c.trigger_words)}" if c.trigger_words else None,
        "ss_training_started_at": str(started_at),
        "ss_training_finished_at": str(time.time()),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": arch,
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models" if family == "sdxl"
        else "diffusers",
        "modelspec.title": c.name,
        "modelspec.description": c.description,
        "modelspec.trigger_phrase": ", ".join(c.trigger_words) if c.trigger_words else None,
        "modelspec.resolution": f"{resolution[0]}x{resolution[1]}",
        "modelspec.prediction_type": "v" if v_pred else "epsilon",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime()),
        "modelspec.encoder_layer": None,
    }
    return {k: v for k, v in meta.items() if v is not None}


def _num(value: float | int) -> str:
    """Numbers as kohya writes them: 8 not 8.0, 0.0001 as 0.0001."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_lora(path: Path, tensors: dict[str, Any], metadata: dict[str, str]) -> Path:
    """Write a LoRA file atomically (a reader sees the old file or the new one, never half of one)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)
    return path


def kohya_to_peft_names(keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map kohya LoRA keys back to PEFT module-relative names; returns (mapping, keys left unmapped).

    Used to prove an exported file converts back without losing a tensor.
    """
    from catalog.detect.kohya_names import parse_key

    mapped, unmapped = {}, []
    roots = {UNET: "unet", TE1: "text_encoder", TE2: "text_encoder_2"}
    for key in keys:
        name = parse_key(key)
        if name is None or name.role not in ("down", "up", "alpha"):
            unmapped.append(key)
            continue
        role = {"down": "lora_A.weight", "up": "lora_B.weight", "alpha": "alpha"}[name.role]
        mapped[key] = f"{roots[name.part]}.{name.path}.{role}"
    return mapped, unmapped

"""The plan of an image run: data checked, steps counted, memory estimated — no model loaded.

``lutnav train cfg.toml --check`` prints this; the run trains from the same
plan (its payload carries the checked images and where each will be cropped).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from trainers.image.buckets import make_buckets, placement_for
from trainers.image.checks import check_dataset, tag_frequency
from trainers.image.config import ImageConfig
from trainers.image.dataset import read_dataset
from trainers.image.model import caption_counter, inspect, resolve_family
from trainers.plan import Plan, effective_batch, launched_processes, schedule

#: UNet channels per level when the model's config cannot be read (single-file checkpoints)
_CHANNELS = {"sd1": (320, 640, 1280, 1280), "sd2": (320, 640, 1280, 1280), "sdxl": (320, 640, 1280)}
_GIB = 1024 ** 3


def plan_image(config: ImageConfig) -> Plan:
    info = inspect(config.base_model, config.source, model_config=config.model_config)
    family = resolve_family(config.model_family, info, config.source)
    metadata = Path(config.metadata_path) if config.metadata_path else None
    layout = read_dataset(Path(config.train_data_dir), metadata)
    counter = caption_counter(info)
    count, limit = counter if counter else (None, 75)
    checked = check_dataset(layout, size=config.size, bucketed=config.enable_bucket,
                            trigger_words=config.trigger_words, token_count=count, token_limit=limit)
    buckets = make_buckets(config.size, min_side=config.min_bucket_reso, max_side=config.max_bucket_reso,
                           steps=config.bucket_reso_steps) if config.enable_bucket else None
    placements = [placement_for(i.width, i.height, config.size, buckets) for i in checked.items]
    examples = sum(i.repeats for i in checked.items)
    processes = launched_processes()
    sched = schedule(examples, batch_size=config.batch_size, accumulation=config.gradient_accumulation_steps,
                     epochs=config.epochs, max_steps=config.max_steps, processes=processes)
    used = Counter(f"{p.width}x{p.height}" for p in placements)
    repeats = Counter(i.repeats for i in checked.items)

    v_pred = ", v-prediction" if info.prediction_type == "v_prediction" else ""
    facts = [
        ("model", f"{info.path} ({info.kind})"),
        ("family", f"{family} — {info.reason}{v_pred}"),
        ("data", f"{len(checked.items)} images ({layout.kind}) in {config.train_data_dir}"),
    ]
    if set(repeats) != {1}:
        facts.append(("repeats", ", ".join(f"{n} image(s) x{r}" for r, n in sorted(repeats.items()))
                      + f" = {examples} items per epoch"))
    facts.append(("resolution", f"{config.size[0]}x{config.size[1]}" + (
        f", {len(used)} bucket(s) used: " + ", ".join(f"{b} ({n})" for b, n in used.most_common())
        if buckets else "")))
    facts.append(("adapters", _adapters(config)))
    facts.append(("latents", "cached on disk (encoded once)" if config.cache_latents else "encoded at every step"))
    facts.append(("est. memory", _memory_text(config, info, family, placements)))

    warnings = list(checked.warnings)
    if config.text_encoder_lr is not None and config.target == "unet":
        warnings.append("text_encoder_lr is ignored: target = \"unet\" trains no text encoder")
    out = Path(config.output_dir)
    writes = [f"{out}/checkpoint-<step>/{config.name}.safetensors (kohya keys, every "
              f"{config.save_steps or sched.total_steps} steps and at the end)"]
    if config.sample_prompts:
        writes.append(f"{out}/checkpoint-<step>/samples/ ({len(config.sample_prompts)} sample image(s) per save)")
    if config.cache_latents:
        writes.append(f"{out}/latent_cache/")
    if config.log_with == "tensorboard":
        writes.append(f"{out}/logs/ (TensorBoard)")
    writes.append(f"<library>/{config.category}/{config.theme}/{config.name}.safetensors + {config.name}.toml card")

    data = {"images": len(checked.items), "layout": layout.kind, "train_data_dir": config.train_data_dir,
            "items_per_epoch": examples, "buckets": dict(used) if buckets else None}
    payload = {"info": info, "family": family, "items": checked.items, "placements": placements,
               "tag_frequency": tag_frequency(checked.items), "buckets": dict(used) if buckets else None}
    return Plan(task_type=config.task_type, examples=examples, eval_examples=0, schedule=sched,
                effective_batch=effective_batch(config.batch_size, config.gradient_accumulation_steps,
                                                processes)[0], facts=facts,
                warnings=warnings, writes=writes, data=data, payload=payload, processes=processes,
                batch_size=config.batch_size, accumulation=config.gradient_accumulation_steps)


def _adapters(config: ImageConfig) -> str:
    parts = [f"rank {config.lora_rank}, alpha {config.alpha:g} on the UNet attention blocks"]
    if config.conv_lora:
        parts.append(f"convs at rank {config.conv_rank_value}, alpha {config.conv_alpha_value:g}")
    if config.target != "unet":
        parts.append("text encoder(s)")
    return " + ".join(parts)


def weight_params(files: list[Path]) -> int:
    """Parameters in the model's weight files, from their headers (nothing is loaded)."""
    from catalog.errors import CatalogError
    from catalog.files.header import read_header

    total = 0
    for path in files:
        try:
            total += sum(math.prod(t.shape) for t in read_header(path).tensors.values())
        except CatalogError:
            continue
    return total


def estimate_memory(config: ImageConfig, params: int, channels: tuple[int, ...], largest: tuple[int, int]) -> float:
    """Rough peak accelerator memory in bytes: weights, adapters with AdamW state, activations.

    The activation term scales with the UNet's feature maps (latent pixels x channels at each
    level); its constants are fitted to memory people report for SD1.5 and SDXL runs.
    """
    weight_bytes = 2 if config.mixed_precision in ("fp16", "bf16") else 4
    width, height = largest
    pixels = (width // 8) * (height // 8)
    units = sum(pixels // (4 ** level) * ch for level, ch in enumerate(channels))
    per_unit = 400 if config.gradient_checkpointing else 1500
    activations = config.batch_size * units * per_unit * (weight_bytes / 2)
    adapters = params * 0.01 * config.lora_rank / 8 * 16   # fp32 weight, grad and two AdamW moments
    return params * weight_bytes + adapters + activations + 0.5 * _GIB


def _memory_text(config: ImageConfig, info, family: str, placements) -> str:
    import json

    params = weight_params(info.files)
    if not params:
        return "unknown (weights unreadable)"
    channels = _CHANNELS[family]
    unet_config = info.path / "unet" / "config.json"
    if unet_config.is_file():
        channels = tuple(json.loads(unet_config.read_text("utf-8")).get("block_out_channels", channels))
    largest = max(((p.width, p.height) for p in placements), key=lambda wh: wh[0] * wh[1], default=config.size)
    gib = estimate_memory(config, params, channels, largest) / _GIB
    return f"≈ {gib:.1f} GiB ({params / 1e6:.0f} M base parameters, batch {config.batch_size}, " \
           f"{largest[0]}x{largest[1]}, gradient checkpointing {'on' if config.gradient_checkpointing else 'off'})"

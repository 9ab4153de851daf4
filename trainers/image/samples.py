"""Sample images at each save: what the LoRA does so far, in the files people already read.

Each sample is a PNG whose ``parameters`` text chunk is written the way
AUTOMATIC1111 writes it (prompt, ``Negative prompt:``, then ``Steps: …,
Sampler: …, CFG scale: …, Seed: …, Size: …``), so the image can be dropped on
a web UI's PNG-info tab to reproduce it, and catalogs show it as the preview.
Sampling uses its own seeded generator: it never shifts the training's random
numbers, so a resumed run stays exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLER = "Euler"


def parameters_text(prompt: str, *, negative: str, steps: int, cfg: float, seed: int, size: tuple[int, int],
                    model: str, lora: str) -> str:
    """The A1111 ``parameters`` chunk (the LoRA at strength 1 appears as its prompt tag)."""
    lines = [f"{prompt} <lora:{lora}:1>"]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(f"Steps: {steps}, Sampler: {SAMPLER}, CFG scale: {cfg:g}, Seed: {seed}, "
                 f"Size: {size[0]}x{size[1]}, Model: {model}, Version: lutnav")
    return "\n".join(lines)


def build_pipeline(model, tokenizers: list[Any], scheduler_config: dict[str, Any]):
    """A diffusers pipeline over the very modules being trained (so the adapters are active)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
    if model.family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=model.vae, text_encoder=model.text_encoders[0],
                                         text_encoder_2=model.text_encoders[1], tokenizer=tokenizers[0],
                                         tokenizer_2=tokenizers[1], unet=model.unet, scheduler=scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=model.vae, text_encoder=model.text_encoders[0], tokenizer=tokenizers[0],
                                       unet=model.unet, scheduler=scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render_samples(pipe, prompts: list[str], folder: Path, *, step: int, name: str, negative: str, steps: int,
                   cfg: float, seed: int, size: tuple[int, int], model_name: str, autocast_dtype=None) -> list[Path]:
    """Render each prompt once and write ``<folder>/<name>-step<step>-<i>.png``."""
    import contextlib

    import torch
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    device = pipe.unet.device
    written = []
    cast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None \
        else contextlib.nullcontext()
    for i, prompt in enumerate(prompts):
        generator = torch.Generator(device="cpu").manual_seed(seed + i)
        with torch.no_grad(), cast:
            image = pipe(prompt, negative_prompt=negative or None, num_inference_steps=steps, guidance_scale=cfg,
                         width=size[0], height=size[1], generator=generator).images[0]
        info = PngInfo()
        info.add_text("parameters", parameters_text(prompt, negative=negative, steps=steps, cfg=cfg, seed=seed + i,
                                                    size=size, model=model_name, lora=name))
        path = folder / f"{name}-step{step}-{i}.png"
        image.save(path, pnginfo=info)
        written.append(path)
    return written

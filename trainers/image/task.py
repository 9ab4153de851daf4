"""The image-generation task on the shared loop: a Stable Diffusion UNet (+ text encoders) with LoRA."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from catalog.progress import Work
from trainers.image.config import ImageConfig
from trainers.image.export import ARCHITECTURE, kohya_tensors, lora_metadata, write_lora
from trainers.plan import Plan

SAMPLES_DIR = "samples"
_CLAIM = {"sd1": "stable-diffusion-v1", "sd2": "stable-diffusion-v2", "sdxl": "stable-diffusion-xl-v1-base"}


def sample_images(checkpoint: Path) -> list[Path]:
    """A checkpoint's sample images in prompt order: what to file as the entry's previews."""
    folder = Path(checkpoint) / SAMPLES_DIR
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[-1]))


def _checkpoint_activations(model) -> None:
    """Gradient checkpointing on a transformers model (the method was renamed in transformers 5)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def weight_dtype(mixed_precision: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


class ImageTask:
    """Implements :class:`trainers.loop.TrainTask` for SD1 / SD2 / SDXL LoRAs."""

    unit = "img"

    def __init__(self, config: ImageConfig, plan: Plan, accelerator):
        from accelerate.utils import set_seed

        from trainers.image.latents import LatentCache, vae_digest
        from trainers.image.model import load_components
        from trainers.image.step import DiffusionLoRA
        from trainers.image.targets import add_lora

        self.config, self.plan = config, plan
        p = plan.payload
        self.family, self.items, self.placements = p["family"], p["items"], p["placements"]
        self.base_name = p["info"].path.name
        self.started_at = time.time()
        dtype = weight_dtype(config.mixed_precision)
        comps = load_components(p["info"], self.family, dtype=dtype)
        self.tokenizers, self.scheduler_config = comps.tokenizers, comps.scheduler_config
        set_seed(config.seed)  # adapter initialisation is random
        train_text = config.target != "unet"
        self.counts = {"unet": add_lora(comps.unet, rank=config.lora_rank, alpha=config.alpha,
                                        dropout=config.lora_dropout, conv=config.conv_lora,
                                        conv_rank=config.conv_rank_value, conv_alpha=config.conv_alpha_value)}
        for i, encoder in enumerate(comps.text_encoders):
            encoder.requires_grad_(False)
            if train_text:
                self.counts[f"te{i + 1}"] = add_lora(encoder, rank=config.lora_rank, alpha=config.alpha,
                                                     dropout=config.lora_dropout, text=True)
        if config.gradient_checkpointing:
            comps.unet.enable_gradient_checkpointing()
            if train_text:
                for encoder in comps.text_encoders:
                    _checkpoint_activations(encoder)
        comps.vae.requires_grad_(False).to(accelerator.device)
        if comps.vae.dtype != self._vae_dtype(dtype):
            comps.vae.to(dtype=self._vae_dtype(dtype))
        self.cache = None
        if config.cache_latents:
            self.cache = LatentCache(Path(config.output_dir) / "latent_cache", vae_digest(comps.vae))
            self._encode = (comps.vae, list(zip(self.items, self.placements)), accelerator)
        self.model = DiffusionLoRA(comps, train_text=train_text, noise_offset=config.noise_offset,
                                   min_snr_gamma=config.min_snr_gamma)
        self.model.train()
        #: one example per repeat of an image; collate maps it back to its image
        self._image_of = [i for i, item in enumerate(self.items) for _ in range(item.repeats)]
        self.examples = list(range(len(self._image_of)))
        self._epoch = 0
        self._tokens: dict[tuple[int, str], Any] = {}
        self._pipe = None

    def prepare(self) -> Work[None]:
        """Encode the images the latent cache lacks, before the first step (the main process
        encodes, the others wait for it); yields each image encoded."""
        if self.cache is None:
            return
        vae, pairs, accelerator = self._encode
        if accelerator.is_main_process:
            yield from self.cache.fill(vae, pairs, accelerator.device)
        accelerator.wait_for_everyone()

    def _vae_dtype(self, dtype):
        import torch

        # the SDXL VAE overflows in fp16; a cached encode runs once, so full precision costs little
        if self.config.cache_latents or (self.family == "sdxl" and dtype == torch.float16):
            return torch.float32
        return dtype

    # --- the loop's interface ---------------------------------------------------------------

    def param_groups(self) -> list[dict[str, Any]]:
        unet = [p for p in self.model.unet.parameters() if p.requires_grad]
        groups = [{"params": unet, "lr": self.config.learning_rate}]
        text = [p for enc in self.model.text_encoders for p in enc.parameters() if p.requires_grad]
        if text:
            groups.append({"params": text, "lr": self.config.text_encoder_lr or self.config.learning_rate})
        return groups

    def _ids(self, which: int, caption: str):
        key = (which, caption)
        if key not in self._tokens:
            tok = self.tokenizers[which]
            self._tokens[key] = tok(caption, padding="max_length", max_length=tok.model_max_length,
                                    truncation=True, return_tensors="pt").input_ids[0]
        return self._tokens[key]

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def draw_seed(self, example: int) -> int:
        """The seed of an example's random draws (latent sample, noise, timestep) this epoch.

        Drawn per example, not from one stream per process: the same images
        get the same noise however the batch is split among processes, so N
        processes at batch_size B train what one process at N·B trains.
        """
        key = f"lutnav-noise:{self.config.seed}:{self._epoch}:{example}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1

    def collate(self, examples: list[int]) -> dict[str, Any]:
        """Images of one micro-batch, grouped by training size (one UNet call per group)."""
        import torch

        from trainers.image.latents import pixels

        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        seeds: dict[tuple[int, int], list[int]] = defaultdict(list)
        for example in examples:
            i = self._image_of[example]
            by_size[self.placements[i].bucket].append(i)
            seeds[self.placements[i].bucket].append(self.draw_seed(example))
        groups = []
        for size, members in by_size.items():
            group: dict[str, Any] = {"seeds": seeds[size]}
            if self.cache is not None:
                pairs = [self.cache.load(self.items[i], self.placements[i]) for i in members]
                group["mean"] = torch.stack([m for m, _ in pairs])
                group["std"] = torch.stack([s for _, s in pairs])
            else:
                group["pixels"] = torch.stack([pixels(self.items[i], self.placements[i]) for i in members])
            group["input_ids"] = [torch.stack([self._ids(w, self.items[i].caption) for i in members])
                                  for w in range(len(self.tokenizers))]
            if self.family == "sdxl":
                group["time_ids"] = torch.tensor([self._time_ids(i) for i in members], dtype=torch.float32)
            groups.append(group)
        return {"groups": groups}

    def _time_ids(self, i: int) -> list[float]:
        item, p = self.items[i], self.placements[i]
        return [item.height, item.width, p.crop_top, p.crop_left, p.height, p.width]

    def count(self, batch: dict[str, Any]) -> int:
        return sum(int(g["input_ids"][0].shape[0]) for g in batch["groups"])

    def units(self, batch: dict[str, Any]) -> int:
        return self.count(batch)

    def loss(self, model, batch: dict[str, Any]):
        return model(batch["groups"])

    def evaluate(self, model) -> dict[str, float]:
        return {}

    def save(self, model, folder: Path, step: int) -> None:
        """The kohya LoRA file, then the sample images (rendered with the adapters just saved)."""
        c = self.config
        parts = {"unet": model.unet}
        if c.target != "unet":
            parts.update({f"te{i + 1}": enc for i, enc in enumerate(model.text_encoders)})
        spe = max(1, self.plan.schedule.steps_per_epoch)
        meta = lora_metadata(config=c, family=self.family, prediction_type=model.prediction_type, step=step,
                             epoch=-(-step // spe), total_steps=self.plan.schedule.total_steps,
                             num_epochs=max(1, round(self.plan.epochs)), images=len(self.items),
                             tag_frequency=self.plan.payload["tag_frequency"], resolution=c.size,
                             base_name=self.base_name, started_at=self.started_at,
                             buckets=self.plan.payload["buckets"])
        write_lora(folder / f"{c.name}.safetensors", kohya_tensors(parts, self.family, c.save_precision), meta)
        if c.sample_prompts:
            self._samples(model, folder / SAMPLES_DIR, step)

    def _samples(self, model, folder: Path, step: int) -> None:
        from trainers.image.samples import build_pipeline, render_samples

        c = self.config
        if self._pipe is None:
            self._pipe = build_pipeline(model, self.tokenizers, self.scheduler_config)
        mp = c.mixed_precision
        render_samples(self._pipe, c.sample_prompts, folder, step=step, name=c.name, negative=c.sample_negative_prompt,
                       steps=c.sample_steps, cfg=c.sample_guidance_scale, seed=c.seed, size=c.size,
                       model_name=self.base_name, autocast_dtype=weight_dtype(mp) if mp != "no" else None)

    def oom_hints(self) -> list[str]:
        c = self.config
        hints = [f"resolution (now {c.size[0]}x{c.size[1]})"]
        if not c.cache_latents:
            hints.append("cache_latents = true")
        if c.target != "unet":
            hints.append("target = \"unet\"")
        return hints

    def fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for item, p in zip(self.items, self.placements):
            digest.update(f"{item.sha256}|{item.repeats}|{p.width}x{p.height}|{item.caption}\n".encode())
        return {"train_images": len(self.items), "data": digest.hexdigest()[:16]}

    # --- after the loop ------------------------------------------------------------------------

    def artifact(self, checkpoint: Path) -> Path:
        return checkpoint / f"{self.config.name}.safetensors"

    def previews(self, checkpoint: Path) -> list[Path]:
        return sample_images(checkpoint)

    def card(self, result) -> dict[str, Any]:
        c, data = self.config, self.plan.data
        what = c.description or (f"Image LoRA for {self.family.upper()} ({self.base_name}), trained on "
                                 f"{data['images']} images.")
        strength = round(sum(c.strength_range) / 2, 3) if c.strength_range else None
        from catalog.detect.metadata_claims import top_tags

        training = {
            "task_type": c.task_type, "base_model": c.base_model, "model_family": self.family,
            "architecture": ARCHITECTURE[self.family], "steps": result.step,
            "epochs": round(self.plan.epochs * result.step / max(result.total, 1), 3),
            "rank": c.lora_rank, "alpha": c.alpha, "conv_lora": c.conv_lora, "target": c.target,
            "adapted_layers": dict(self.counts), "resolution": list(c.size), "enable_bucket": c.enable_bucket,
            "learning_rate": c.learning_rate, "optimizer": c.optimizer, "scheduler": c.scheduler,
            "batch_size": c.batch_size, "gradient_accumulation_steps": c.gradient_accumulation_steps,
            "processes": self.plan.processes, "effective_batch": self.plan.effective_batch,
            "mixed_precision": c.mixed_precision, "noise_offset": c.noise_offset, "min_snr_gamma": c.min_snr_gamma,
            "seed": c.seed, "data": {k: v for k, v in data.items() if v is not None},
            "final_loss": result.losses[-1] if result.losses else None, "seconds": round(result.seconds, 1),
        }
        tags = top_tags(json.dumps(self.plan.payload["tag_frequency"]))
        return {"title": c.name, "description": what, "type": "image LoRA (kohya)",
                "base_model_claim": f"{_CLAIM[self.family]} ({self.base_name})",
                "trigger_words": list(c.trigger_words), "strength": strength,
                "strength_range": list(c.strength_range) if c.strength_range else None,
                "tags": [t for t in tags if t.lower() not in {w.lower() for w in c.trigger_words}] or None,
                "training": training}

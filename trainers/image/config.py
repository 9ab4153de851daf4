"""Settings of the image-generation task (LoRA on Stable Diffusion 1.x / 2.x / SDXL UNets).

The keys are the lora-scripts / kohya spellings people already have in their
configs, so a config written for those tools mostly loads unchanged; the
kohya-only spellings are mapped by :data:`trainers.config.FOREIGN_KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.schema import declared
from trainers.config import CommonConfig

FAMILIES = ("auto", "sd1", "sd2", "sdxl")
TARGETS = ("unet", "unet+text_encoder")
SAVE_PRECISIONS = ("fp16", "bf16", "float")


@dataclass(kw_only=True)
class ImageConfig(CommonConfig):
    """A LoRA for a Stable Diffusion UNet (and optionally its text encoders), trained on captioned images."""

    model_family: str = declared("auto", "auto (read from the model's config) | sd1 | sd2 | sdxl.",
                                 choices=FAMILIES)
    model_config: str | None = declared(
        None, "For a single-file base_model: a diffusers folder of the same architecture; only its "
        "config and tokenizer files are read (default: the SD1 / SDXL configs lutnav ships).", path=True)
    train_data_dir: str = declared(doc="Folder of training images (flat with captions, or kohya `10_name` folders).",
                                   path=True)
    metadata_path: str | None = declared(
        None, "metadata.csv (filename,prompt) or metadata.jsonl; default: one found in train_data_dir, "
        "else .txt/.caption files beside the images.", path=True)
    resolution: int | tuple[int, int] = declared(512, "Training size: one number, or [width, height].",
                                                 minimum=64, maximum=4096)
    enable_bucket: bool = declared(False, "Aspect-ratio buckets: keep each image's shape instead of cropping square.")
    min_bucket_reso: int = declared(256, "Smallest bucket side, in pixels.", minimum=32)
    max_bucket_reso: int = declared(1024, "Largest bucket side, in pixels.", minimum=32)
    bucket_reso_steps: int = declared(64, "Bucket sides are multiples of this.", minimum=8)
    lora_rank: int = declared(8, "LoRA rank (inner dimension).", minimum=1, maximum=4096)
    conv_lora: bool = declared(False, "Also adapt the UNet's 3x3 conv layers (LoCon), as kohya's conv_dim does.")
    conv_rank: int | None = declared(None, "Rank of the conv adapters; default: lora_rank.", minimum=1,
                                     maximum=4096, aliases=("conv_dim",))
    conv_alpha: float | None = declared(None, "Alpha of the conv adapters; default: lora_alpha.",
                                        exclusive_minimum=0)
    target: str = declared("unet", "What gets adapters: unet | unet+text_encoder (both encoders on SDXL).",
                           choices=TARGETS)
    text_encoder_lr: float | None = declared(None, "Learning rate of the text-encoder adapters; default: "
                                             "learning_rate.", exclusive_minimum=0)
    cache_latents: bool = declared(True, "Encode each image once and cache the latents on disk "
                                   "(keyed by image hash and VAE).")
    noise_offset: float = declared(0.0, "Offset noise strength (helps very dark / bright images); 0 turns it off.",
                                   minimum=0, maximum=1)
    min_snr_gamma: float | None = declared(None, "Min-SNR loss weighting gamma (5 is usual); unset turns it off.",
                                           exclusive_minimum=0)
    sample_prompts: list[str] = declared([], "Prompts rendered at each save (PNG with A1111 parameters).")
    sample_steps: int = declared(20, "Denoising steps for the sample images.", minimum=1, maximum=1000)
    sample_guidance_scale: float = declared(7.0, "CFG scale for the sample images.", minimum=0)
    sample_negative_prompt: str = declared("", "Negative prompt for the sample images.")
    strength_range: tuple[float, float] | None = declared(
        None, "Recommended weights [low, high], written to the card.", minimum=0, maximum=4)
    save_precision: str = declared("fp16", "dtype of the saved LoRA tensors: fp16 | bf16 | float.",
                                   choices=SAVE_PRECISIONS)

    def problems(self) -> list[tuple[str, str]]:
        found = super().problems()
        sizes = list(self.resolution) if isinstance(self.resolution, tuple) else [self.resolution]
        if any(s % 8 for s in sizes):
            found.append(("resolution", f"`resolution` = {sizes}: expected multiples of 8 "
                          "(the VAE shrinks images 8x)"))
        if self.min_bucket_reso > self.max_bucket_reso:
            found.append(("min_bucket_reso", f"`min_bucket_reso` = {self.min_bucket_reso} is above "
                          f"max_bucket_reso = {self.max_bucket_reso}"))
        if self.bucket_reso_steps % 8:
            found.append(("bucket_reso_steps", f"`bucket_reso_steps` = {self.bucket_reso_steps}: "
                          "expected a multiple of 8"))
        if not self.conv_lora and (self.conv_rank is not None or self.conv_alpha is not None):
            key = "conv_rank" if self.conv_rank is not None else "conv_alpha"
            found.append((key, f"`{key}` has no effect without conv_lora = true; set conv_lora = true or remove it"))
        if self.strength_range is not None and self.strength_range[0] > self.strength_range[1]:
            found.append(("strength_range", f"`strength_range` = {list(self.strength_range)}: expected "
                          "[low, high] with low <= high"))
        return found

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the training images without buckets."""
        if isinstance(self.resolution, tuple):
            return self.resolution
        return (self.resolution, self.resolution)

    @property
    def conv_rank_value(self) -> int:
        return self.conv_rank if self.conv_rank is not None else self.lora_rank

    @property
    def conv_alpha_value(self) -> float:
        return float(self.conv_alpha) if self.conv_alpha is not None else self.alpha

"""A tiny random Stable Diffusion pipeline and a captioned image set, built by code.

Tests, the benchmark and demos need a real diffusers pipeline folder (the
same classes, configs and file layout as SD 1.5) without downloading one:
this writes an SD1-shaped model — cross-attention width 768 so every tool
takes it for SD1, a CLIP text encoder of width 768, a byte-level CLIP
tokenizer whose vocabulary and merges are generated here, a VAE that
shrinks 8x — with random weights and as few channels as the shapes allow.
"""

from __future__ import annotations

import random
from pathlib import Path

from trainers.image.clip_vocab import write_tokenizer_files

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40),
          "purple": (140, 50, 170), "orange": (240, 140, 30)}
SHAPES = ["square", "circle", "stripe"]


def write_clip_tokenizer(folder: Path, words: list[str] = ()) -> Path:
    """vocab.json + merges.txt of a byte-level CLIP BPE that knows ``words`` as whole tokens."""
    merges: list[str] = []
    for word in sorted({w.lower() for w in words}):
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append(f"{pieces[0]} {pieces[1]}")
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
    return write_tokenizer_files(folder, list(dict.fromkeys(merges)))


def write_tiny_sd(folder: str | Path, *, channels: tuple[int, ...] = (32, 64), cross_dim: int = 768,
                  text_layers: int = 1, text_mlp: int = 256, vae_channels: int = 8, words: list[str] = (),
                  prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """Save a random SD1-shaped diffusers pipeline to ``folder`` and return it.

    ``channels`` are the UNet levels; attention sits at every level but the last,
    as in SD 1.5.  The VAE has four levels (8x down-sampling) of ``vae_channels``.
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    levels = len(channels)
    groups = min(8, channels[0])
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=channels,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        cross_attention_dim=cross_dim, attention_head_dim=8, norm_num_groups=groups)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        block_out_channels=(vae_channels,) * 4, norm_num_groups=min(4, vae_channels),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=64)
    tok_dir = write_clip_tokenizer(folder / ".tokenizer-src", list(words) + ["a", "photo", "of"])
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cross_dim, intermediate_size=text_mlp, num_hidden_layers=text_layers,
        num_attention_heads=12, max_position_embeddings=77, projection_dim=cross_dim,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", prediction_type=prediction_type, clip_sample=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    import shutil

    shutil.rmtree(tok_dir, ignore_errors=True)
    return folder


def write_tiny_sdxl(folder: str | Path, *, channels: tuple[int, int] = (32, 64), text_width: int = 32,
                    text_width_2: int | None = None, words: list[str] = (), seed: int = 0) -> Path:
    """Save a random SDXL-shaped pipeline: two text encoders (the second with a projection), a UNet
    with text_time conditioning, no attention at the first level and layers_per_block = 2 as in SDXL.

    ``text_width_2`` (default ``text_width``) is the second encoder's width; loaders that tell the
    encoders apart by width, as diffusers' single-file loader does, need the two to differ."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    time_dim = 8
    text_width_2 = text_width_2 or text_width
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2), cross_attention_dim=text_width + text_width_2, attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=text_width_2 + 6 * time_dim, norm_num_groups=min(8, channels[0]))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        block_out_channels=(8,) * 4, norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)
    tok_dir = write_clip_tokenizer(folder / ".tokenizer-src", list(words) + ["a", "photo", "of"])
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    text_config = dict(vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=2 * text_width,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                       projection_dim=text_width, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**{**text_config, "hidden_size": text_width_2,
                                                              "intermediate_size": 2 * text_width_2,
                                                              "projection_dim": text_width_2}))
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=encoder, text_encoder_2=encoder_2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(tok_dir, ignore_errors=True)
    return folder


def write_image_set(folder: str | Path, count: int = 12, *, size: int = 64, trigger: str = "zzcat",
                    layout: str = "csv", seed: int = 0) -> Path:
    """``count`` coloured-shape PNGs with captions ("zzcat, a red square"), as metadata.csv or .txt files."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        color = rng.choice(list(COLORS))
        shape = SHAPES[i % len(SHAPES)]
        img = Image.new("RGB", (size, size), tuple(255 - c // 3 for c in COLORS[color]))
        draw = ImageDraw.Draw(img)
        lo, hi = size // 5 + rng.randrange(size // 10), size - size // 5
        if shape == "circle":
            draw.ellipse((lo, lo, hi, hi), fill=COLORS[color])
        elif shape == "square":
            draw.rectangle((lo, lo, hi, hi), fill=COLORS[color])
        else:
            draw.rectangle((0, lo, size, lo + size // 6), fill=COLORS[color])
        name = f"img_{i:03d}.png"
        img.save(folder / name)
        caption = f"{trigger}, a {color} {shape}" if trigger else f"a {color} {shape}"
        rows.append((name, caption))
        if layout == "txt":
            (folder / name).with_suffix(".txt").write_text(caption + "\n", "utf-8")
    if layout == "csv":
        lines = ["filename,prompt"] + [f'{name},"{caption}"' for name, caption in rows]
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def caption_words(trigger: str = "zzcat") -> list[str]:
    return [trigger, *COLORS, *SHAPES]

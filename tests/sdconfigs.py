"""The released SD 1.5 / SD 2 / SDXL architectures, read from the configs lutnav ships (no download)."""

from __future__ import annotations

import json

from trainers.image.single_file import SHIPPED


def shipped(family: str, part: str) -> dict:
    """The constructor arguments in ``pipeline_configs/<family>/<part>/config.json``."""
    config = json.loads((SHIPPED / family / part / "config.json").read_text())
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in ("architectures", "model_type")}


SD15_UNET = shipped("sd1", "unet")
SD2_UNET = dict(SD15_UNET, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                use_linear_projection=True, sample_size=96)
SDXL_UNET = shipped("sdxl", "unet")
UNETS = {"sd1": SD15_UNET, "sd2": SD2_UNET, "sdxl": SDXL_UNET}
CLIP_L = shipped("sd1", "text_encoder")
CLIP_BIGG = shipped("sdxl", "text_encoder_2")

"""Small but real LoRA files for tests, written with lutnav's own writer."""

from __future__ import annotations

import random
from pathlib import Path

from catalog.files.safetensors_writer import encode_floats, write_safetensors

SD1_MODULES = [  # (kohya module, in, out)
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 768, 320),
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v", 768, 320),
    ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320),
    ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768, 768),
]


def kohya_tensors(modules, rank: int, alpha: float, seed: int = 0, dtype: str = "F16") -> dict:
    rng = random.Random(seed)
    tensors = {}
    for name, fan_in, fan_out in modules:
        tensors[f"{name}.lora_down.weight"] = (
            dtype, [rank, fan_in], encode_floats([rng.gauss(0, 0.1) for _ in range(rank * fan_in)], dtype))
        tensors[f"{name}.lora_up.weight"] = (
            dtype, [fan_out, rank], encode_floats([rng.gauss(0, 0.1) for _ in range(rank * fan_out)], dtype))
        tensors[f"{name}.alpha"] = (dtype, [], encode_floats([alpha], dtype))
    return tensors


def write_kohya(path: Path, *, width: int = 768, rank: int = 4, alpha: float = 2.0, seed: int = 0,
                metadata: dict | None = None) -> Path:
    """A kohya SD LoRA whose cross-attention input width is ``width`` (768 sd1, 1024 sd2)."""
    modules = [(n, width if i < 2 else w_in, out) for i, (n, w_in, out) in enumerate(SD1_MODULES)]
    if width != 768:
        modules = modules[:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, kohya_tensors(modules, rank, alpha, seed), metadata)
    return path

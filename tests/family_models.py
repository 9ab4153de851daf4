"""Ground truth for the transformer families: the real diffusers classes, built on the meta device.

Each family's Linear layers (names and widths) come from its diffusers model
class at the default config or a released size's config, so the detection tests
never check lutnav against its own tables. The spellings below are how trainers
prefix and flatten those names.
"""

from __future__ import annotations

from functools import cache

from catalog.files.header import Header, TensorInfo
from lutnav.sample_loras import Module, lora_tensors

#: (family, diffusers class, config of a released size; {} is the class default)
MODELS = [
    ("flux", "FluxTransformer2DModel", {}),
    ("chroma", "ChromaTransformer2DModel", {}),
    ("flux2", "Flux2Transformer2DModel", {}),
    ("flux2", "Flux2Transformer2DModel", dict(num_layers=5, num_single_layers=20, num_attention_heads=24,
                                              joint_attention_dim=7680)),
    ("qwen-image", "QwenImageTransformer2DModel", {}),
    ("sd3", "SD3Transformer2DModel", dict(num_layers=24, num_attention_heads=24, caption_projection_dim=1536,
                                          pos_embed_max_size=192)),
    ("sd3", "SD3Transformer2DModel", dict(num_layers=38, num_attention_heads=38, caption_projection_dim=2432,
                                          pos_embed_max_size=192, qk_norm="rms_norm")),
    ("z-image", "ZImageTransformer2DModel", {}),
    ("lumina2", "Lumina2Transformer2DModel", {}),
    ("hidream", "HiDreamImageTransformer2DModel", dict(
        patch_size=2, in_channels=16, out_channels=16, num_layers=16, num_single_layers=32, attention_head_dim=128,
        num_attention_heads=20, caption_channels=[4096, 4096], text_emb_dim=2048, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=(64, 32, 32), max_resolution=(128, 128),
        llama_layers=list(range(48)))),
    ("krea2", "Krea2Transformer2DModel", {}),
    ("anima", "CosmosTransformer3DModel", dict(num_attention_heads=16, attention_head_dim=128, num_layers=28)),
    ("sana", "SanaTransformer2DModel", {}),
    ("pixart", "PixArtTransformer2DModel", {}),
    ("cogview", "CogView4Transformer2DModel", {}),
    ("cogview", "CogView3PlusTransformer2DModel", {}),
    ("flux3", "Flux3Transformer2DModel", {}),
    ("qwen-image-2.1", "QwenImage21Transformer2DModel", {}),
    ("auraflow", "AuraFlowTransformer2DModel", {}),
    ("wan", "WanTransformer3DModel", {}),
    ("wan", "WanTransformer3DModel", dict(num_attention_heads=12, ffn_dim=8960, num_layers=30)),
    ("wan", "WanTransformer3DModel", dict(num_attention_heads=24, ffn_dim=14336, num_layers=30,
                                          in_channels=48, out_channels=48)),  # Wan 2.2 5B
    ("hunyuan-video", "HunyuanVideoTransformer3DModel", {}),
    ("hunyuan-image", "HunyuanImageTransformer2DModel", {}),
    ("ltx", "LTXVideoTransformer3DModel", {}),
    ("ltx", "LTX2VideoTransformer3DModel", {}),
]
MODEL_IDS = [f"{fam}-{cls.removesuffix('Model')}-{'default' if not cfg else 'sized'}{i}"
             for i, (fam, cls, cfg) in enumerate(MODELS)]


@cache
def linears(cls: str, config: tuple) -> tuple[tuple[str, int, int], ...]:
    """(name, in, out) of every nn.Linear of the diffusers class, built without weights."""
    import diffusers
    import torch

    with torch.device("meta"):
        model = getattr(diffusers, cls)(**dict(config))
    return tuple((name, m.in_features, m.out_features) for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear))


def frozen(config: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


#: spelling -> (prefix, flatten the dotted name?, key style)
SPELLINGS = {
    "diffusers": ("transformer.", False, "diffusers"),  # diffusers, ai-toolkit (Flux), SimpleTuner
    "peft": ("base_model.model.", False, "peft"),
    "comfyui": ("diffusion_model.", False, "diffusers"),  # ai-toolkit (Z-Image, Qwen), ComfyUI saves
    "bare": ("", False, "diffusers"),  # musubi-tuner diffusers-style, Qwen-Image
    "kohya-transformer": ("lora_transformer_", True, "kohya"),  # OneTrainer
}


def spelled(layers, spelling: str) -> list[Module]:
    prefix, flat, style = SPELLINGS[spelling]
    return [Module(prefix + (name.replace(".", "_") if flat else name), a, b, style=style) for name, a, b in layers]


def header(tensors: dict) -> Header:
    """An in-memory header of ``tensors`` (key -> (dtype, shape)); no alpha is read from it."""
    infos = {name: TensorInfo(dtype, tuple(shape), 0, 0) for name, (dtype, shape) in tensors.items()}
    return Header(__import__("pathlib").Path("memory.safetensors"), 0, 0, infos, {})


def lora_header(layers, spelling: str, *, network: str = "lora", rank: int = 4) -> Header:
    mods = spelled(layers, spelling)
    alpha = None if network == "lora" else float(rank)
    tensors = lora_tensors(mods, rank, alpha, network=network)
    return header({k: v for k, v in tensors.items() if not k.endswith(".alpha")})

"""Tiny but real libraries and models for the mix tests, all built by code in temp folders."""

from __future__ import annotations

import json
import random
from pathlib import Path

from lutnav.sample_loras import LLMShape, Module, lora_modules
from catalog.index.library import Library
from catalog.files.safetensors_writer import encode_floats, write_safetensors

SD1_PICK = ("down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
            "down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
            "down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v",
            "mid_block_attentions_0_transformer_blocks_0_attn2_to_k",
            "encoder_layers_0_self_attn_q_proj")


def pick(family: str, words: tuple[str, ...], *, style: str = "kohya", conv: bool = False) -> list[Module]:
    """A few real modules of ``family`` (names matched with ``.`` and ``_`` alike)."""
    out = []
    for m in lora_modules(family, style=style, conv=conv):
        flat = m.name.replace(".", "_")
        if any(flat.endswith(w) for w in words):
            out.append(m)
    return out


def lora_bytes(modules: list[Module], rank: int, alpha: float | None, seed: int,
               dtype: str = "F16", scale: float = 0.1) -> dict:
    """Random low-rank factors for ``modules`` in their own style (kohya or diffusers)."""
    rng = random.Random(seed)
    tensors = {}
    for m in modules:
        tail = list(m.kernel) if m.kind == "conv" else []
        down = [rank, m.in_features, *tail]
        up = [m.out_features, rank, *([1, 1] if tail else [])]
        kohya = m.style == "kohya"
        names = (".lora_down.weight", ".lora_up.weight") if kohya else (".lora_A.weight", ".lora_B.weight")
        for suffix, shape in zip(names, (down, up)):
            count = 1
            for d in shape:
                count *= d
            tensors[m.name + suffix] = (dtype, shape,
                                        encode_floats([rng.gauss(0, scale) for _ in range(count)], dtype))
        if kohya and alpha is not None:
            tensors[m.name + ".alpha"] = (dtype, [], encode_floats([alpha], dtype))
    return tensors


def write_lora(path: Path, modules: list[Module], *, rank: int = 4, alpha: float | None = 2.0,
               seed: int = 0, metadata: dict | None = None, dtype: str = "F16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, lora_bytes(modules, rank, alpha, seed, dtype), metadata)
    return path


def build_library(root: Path, *, config: str | None = None) -> Library:
    """ink (sd1), hero (sd1, overlaps ink), zz (sd1, diffusers names), xl (sdxl), broken, pickle,
    two entries named ``dup``, and an LLM adapter folder."""
    sd1 = pick("sd1", SD1_PICK)
    write_lora(root / "style/ink/ink.safetensors", sd1, seed=1)
    write_lora(root / "character/hero/hero.safetensors", sd1[1:], seed=2, alpha=4.0)
    write_lora(root / "character/cat/zz.safetensors", pick("sd1", SD1_PICK, style="diffusers"),
               seed=3, alpha=None)
    write_lora(root / "style/xl/xl.safetensors",
               pick("sdxl", ("input_blocks_4_1_transformer_blocks_0_attn2_to_k",
                             "encoder_layers_0_self_attn_q_proj")), seed=4)
    write_lora(root / "style/ink/dup.safetensors", sd1[:2], seed=5)
    write_lora(root / "character/hero/dup.safetensors", sd1[:2], seed=6)
    broken = write_lora(root / "style/bad/broken.safetensors", sd1[:1], seed=7)
    broken.write_bytes(broken.read_bytes()[:-64])
    (root / "style/old").mkdir(parents=True)
    (root / "style/old/old.ckpt").write_bytes(b"\x80\x04not really a pickle")
    llm = lora_modules("llm", style="peft-llm", llm=LLMShape(64, 172, 2, 32))
    folder = root / "industry/qa/qa_adapter"
    folder.mkdir(parents=True)
    write_safetensors(folder / "adapter_model.safetensors", lora_bytes(llm, 4, None, 8))
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM",
        "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "tiny-llama"}))
    (root / "style/ink/ink.toml").write_text('strength = 0.6\nstrength_range = [0.4, 0.8]\n'
                                             'trigger_words = ["ink wash"]\n')
    if config is not None:
        (root / ".lutnav").mkdir(exist_ok=True)
        (root / ".lutnav/config.toml").write_text(config)
    lib = Library(root)
    lib.db  # noqa: B018  (open the index before the scan takes its lock)
    lib.scan_all()
    return lib


# --- a tiny SD1-shaped pipeline (torch, diffusers, transformers) ------------------------------


def tiny_pipeline(folder: Path):
    """A random SD1-shaped pipeline small enough for 64 px in a second, saved to ``folder``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=8, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, norm_num_groups=8)
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=64, max_position_embeddings=77))
    tok_dir = folder.parent / f"{folder.name}-tokenizer-src"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz,":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return pipe


def tiny_lora_modules(pipe, *, conv: bool = False) -> list[Module]:
    """kohya modules for the tiny pipeline's attention layers (and resnet convs with ``conv``)."""
    import torch

    from catalog.detect.kohya_names import TE1, UNET, kohya_module

    out = []
    for part, model in ((UNET, pipe.unet), (TE1, pipe.text_encoder)):
        for path, layer in model.named_modules():
            is_attn = ".attentions." in path or ".self_attn." in path or ".mlp." in path
            is_conv = conv and ".resnets." in path and isinstance(layer, torch.nn.Conv2d)
            if not (is_attn or is_conv):
                continue
            name = kohya_module(part, path, family="sd1")
            if isinstance(layer, torch.nn.Linear):
                out.append(Module(name, layer.in_features, layer.out_features))
            elif isinstance(layer, torch.nn.Conv2d):
                out.append(Module(name, layer.in_channels, layer.out_channels, "conv",
                                  tuple(layer.kernel_size)))
    return out

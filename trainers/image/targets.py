"""Which layers get LoRA adapters, and putting them there with peft.

The layers are the ones kohya's ``networks.lora`` adapts, so a lutnav LoRA has
the modules people expect and every client maps: in the UNet each attention
block (``proj_in`` / ``proj_out``, the self- and cross-attention projections
and the feed-forward layers); with ``conv_lora`` also the resnets' and
samplers' convolutions (LoCon: 3x3 convs at ``conv_rank``); in a CLIP text
encoder the attention and MLP projections.
"""

from __future__ import annotations

import re
from typing import Any

_ATTENTION = re.compile(
    r"(?:.*\.)?attentions\.\d+\.(?:proj_in|proj_out|transformer_blocks\.\d+\."
    r"(?:attn[12]\.(?:to_q|to_k|to_v|to_out\.0)|ff\.net\.(?:0\.proj|2)))")
_CONV = re.compile(r"(?:.*\.)?(?:resnets\.\d+\.(?:conv1|conv2|conv_shortcut|time_emb_proj)|"
                   r"(?:down|up)samplers\.0\.conv)")
_TEXT = re.compile(r"(?:.*\.)?layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|out_proj)|mlp\.(?:fc1|fc2))")


def target_modules(model: Any, *, text: bool = False, conv: bool = False) -> tuple[list[str], list[str]]:
    """(all adapted module names, the 3x3 convolutions among them) of a UNet or a text encoder."""
    import torch

    names, convs = [], []
    for name, module in model.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if text:
            hit = _TEXT.fullmatch(name)
        else:
            hit = _ATTENTION.fullmatch(name) or (conv and _CONV.fullmatch(name))
        if not hit:
            continue
        names.append(name)
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1):
            convs.append(name)
    return names, convs


def add_lora(model: Any, *, rank: int, alpha: float, dropout: float = 0.0, text: bool = False,
             conv: bool = False, conv_rank: int | None = None, conv_alpha: float | None = None) -> int:
    """Inject a LoRA adapter named ``default``; freeze the rest; returns the number of adapted layers."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    names, convs = target_modules(model, text=text, conv=conv)
    if not names:
        return 0
    model.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, init_lora_weights=True,
        rank_pattern={re.escape(n): conv_rank for n in convs} if conv_rank else {},
        alpha_pattern={re.escape(n): conv_alpha for n in convs} if conv_alpha else {},
    )
    inject_adapter_in_model(config, model, adapter_name="default")
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()   # trainable weights stay fp32 under fp16/bf16 mixed precision
    return len(names)

"""Full models that sit in a LoRA folder: what kind each is, and which family, from its keys.

These are never LoRAs (they have no low-rank pairs), but users keep ControlNets,
IP-Adapters, VAEs and text encoders beside their LoRAs and want them named. The
kind comes from the key names each writer uses; the family, where the kind
allows, from widths: a VAE's latent channels, an IP-Adapter's cross-attention
width, and for denoisers the same layer widths that place LoRAs.
"""

from __future__ import annotations

from collections.abc import Sequence

from catalog.detect.families import CROSS_WIDTH, Finding

KINDS = ("checkpoint", "unet", "transformer", "vae", "text-encoder", "controlnet", "ip-adapter")
_CONTROLNET = ("controlnet_", "input_hint_block.", "zero_convs.", "control_model.", "controlnet_blocks.",
               "controlnet_single_blocks.", "controlnet_x_embedder", "controlnet_cond_embedding.")
_IP_ADAPTER = ("image_proj.", "ip_adapter.", "ip_adapter_proj_model.")
_VAE_ROOTS = ("encoder.", "decoder.", "first_stage_model.", "vae.", "quant_conv.", "post_quant_conv.")
_TE_ROOTS = ("text_model.", "encoder.block.", "shared.", "model.layers.", "model.embed_tokens.",
             "text_projection.", "embeddings.", "encoder.layers.", "transformer.resblocks.",
             "language_model.", "model.language_model.")
_UNET_WORDS = ("down_blocks.", "input_blocks.", "up_blocks.", "output_blocks.", "mid_block.", "middle_block.")
#: a VAE's latent channels (its encoder's conv_out writes 2×: mean and log-variance) → families
_LATENT = {(4, 4): ("sd1", "sd2", "sdxl"), (16, 4): ("flux", "sd3", "chroma", "hidream", "z-image", "lumina2"),
           (32, 4): ("flux2",), (16, 5): ("wan", "qwen-image"), (48, 5): ("wan",), (128, 5): ("ltx",)}


def model_kind(names: Sequence[str]) -> str | None:
    """The kind of a full model from its key names, or None when the names say nothing."""
    sample = names if len(names) <= 4096 else names[:: len(names) // 4096 + 1]
    heads = set()
    for n in sample:
        if n.startswith(_CONTROLNET) or ".controlnet_" in n:
            return "controlnet"
        if n.startswith(_IP_ADAPTER):
            return "ip-adapter"
        heads.add(n.split(".", 1)[0])
    has_vae = any(n.startswith(("first_stage_model.", "vae.")) for n in sample)
    has_te = any(n.startswith(("cond_stage_model.", "conditioner.", "text_encoders.", "text_encoder")) for n in sample)
    denoiser = any(n.startswith(("model.diffusion_model.", "diffusion_model.")) for n in sample)
    if denoiser and (has_vae or has_te):
        return "checkpoint"
    if denoiser or heads & {"down_blocks", "input_blocks", "double_blocks", "single_blocks", "transformer_blocks",
                            "joint_blocks", "blocks", "layers", "single_transformer_blocks", "double_stream_blocks",
                            "net"}:
        if heads & {"encoder", "decoder"} and not heads & {"blocks", "layers"}:
            return "vae"
        if "layers" in heads and heads & {"embed_tokens", "norm"} and "noise_refiner" not in heads:
            return "text-encoder"
        unet = any(_bare(n).startswith(_UNET_WORDS) for n in sample)
        return "unet" if unet else "transformer"
    vae = sum(1 for n in sample if n.startswith(_VAE_ROOTS))
    convs = any(n.endswith(("conv_in.weight", "conv_out.weight")) for n in sample)
    if vae >= 0.9 * len(sample) and convs and ({"encoder", "decoder"} <= heads or heads & {"first_stage_model", "vae"}):
        return "vae"  # (a Flux.2 VAE adds a batch norm beside its encoder and decoder)
    if any(n.startswith(_TE_ROOTS) for n in sample):
        return "text-encoder"
    return None


def _bare(name: str) -> str:
    for prefix in ("model.diffusion_model.", "diffusion_model."):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def vae_finding(names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> Finding | None:
    """The family a VAE serves, from its latent channels; SD1/SD2/SDXL share one, Flux and SD3 another."""
    for n, s in zip(names, shapes):
        if n.endswith("encoder.conv_out.weight") and len(s) >= 4:
            channels, ndim = s[0] // 2, len(s)
            fams = _LATENT.get((channels, ndim), ())
            text = f"VAE with {channels} latent channels ({'3D' if ndim == 5 else '2D'})"
            return Finding(text if fams else f"{text}, which no known family uses", frozenset(fams))
    return None


def ip_adapter_finding(names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> Finding | None:
    """SD IP-Adapters: to_k_ip reads the UNet's cross-attention width (768 SD1, 1024 SD2, 2048 SDXL)."""
    for n, s in zip(names, shapes):
        if n.endswith("to_k_ip.weight") and len(s) == 2:
            fam = CROSS_WIDTH.get(s[1])
            return Finding(f"IP-Adapter to_k_ip input {s[1]}", frozenset({fam} if fam else ()))
    return None

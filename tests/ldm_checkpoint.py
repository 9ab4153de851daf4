"""A diffusers SD1-shaped pipeline written back as an A1111 single-file checkpoint (LDM names).

Real checkpoints cannot be downloaded here, so tests make one from a tiny random
pipeline: UNet names through lutnav's own diffusers→LDM block mapper, the VAE
and CLIP text encoder through the layout the original Stable Diffusion code
uses (``first_stage_model.encoder.down.0.block.0…``, attention as 1×1 convs,
``cond_stage_model.transformer.text_model…``).
"""

from __future__ import annotations

import re
from pathlib import Path

_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_name(name: str, family: str, layers_per_block: int = 2) -> str:
    from catalog.detect.kohya_names import diffusers_to_ldm

    module, leaf = name.rsplit(".", 1)
    return f"model.diffusion_model.{diffusers_to_ldm(module, family, layers_per_block=layers_per_block)}.{leaf}"


def vae_name(name: str, levels: int) -> str:
    coder, rest = name.split(".", 1) if name.startswith(("encoder.", "decoder.")) else ("", name)
    if not coder:
        return f"first_stage_model.{rest}"
    rest = rest.replace("conv_norm_out", "norm_out")
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", rest)
    if m:
        kind, i, part, j, tail = m.groups()
        i = int(i) if kind == "down" else levels - 1 - int(i)
        if part == "resnets":
            head, _, leaf = tail.rpartition(".")
            rest = f"{kind}.{i}.block.{j}.{_VAE_RESNET.get(head, head)}.{leaf}"
        else:
            rest = f"{kind}.{i}.{part[:-2]}.{tail}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", rest)
    if m:
        part, j, tail = m.groups()
        if part == "resnets":
            rest = f"mid.block_{int(j) + 1}.{tail}"
        else:
            head, _, leaf = tail.rpartition(".")
            rest = f"mid.attn_1.{_VAE_ATTN[head]}.{leaf}"
    return f"first_stage_model.{coder}.{rest}"


_OPEN_CLIP = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
              "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_names(state: dict, root: str) -> dict:
    """An HF CLIP text model with projection in OpenCLIP's layout (SDXL's second encoder):
    q, k and v stacked into ``in_proj``, the projection stored transposed."""
    import torch

    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {f"{root}token_embedding.weight": state["embeddings.token_embedding.weight"],
           f"{root}positional_embedding": state["embeddings.position_embedding.weight"],
           f"{root}ln_final.weight": state["final_layer_norm.weight"],
           f"{root}ln_final.bias": state["final_layer_norm.bias"],
           f"{root}text_projection": state["text_projection.weight"].T.contiguous()}
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")}
    for n in sorted(layers):
        src, dst = f"encoder.layers.{n}.", f"{root}transformer.resblocks.{n}."
        for leaf in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{leaf}"] = torch.cat(
                [state[f"{src}self_attn.{x}_proj.{leaf}"] for x in "qkv"])
            for hf, oc in _OPEN_CLIP.items():
                out[f"{dst}{oc}.{leaf}"] = state[f"{src}{hf}.{leaf}"]
    return out


def write_single_file(pipe, path: Path, *, family: str | None = None, dtype=None) -> Path:
    """Save ``pipe`` (UNet, VAE, one or two CLIP encoders) as an fp32 LDM checkpoint at ``path``.

    ``family`` picks the up-block layout for the UNet mapper: ``sdxl`` when the first
    up block has attention, ``sd1`` when it has none. Models built on the meta device
    (full-size ones, to test loading without random-initialising billions of weights)
    are written as zeros; ``dtype`` casts every tensor (fp16, as released checkpoints).
    """
    from safetensors.torch import save_file

    out = {}
    if family is None:
        family = "sdxl" if "CrossAttn" in pipe.unet.config.up_block_types[0] else "sd1"
    per_level = pipe.unet.config.layers_per_block
    for name, t in pipe.unet.state_dict().items():
        out[unet_name(name, family, per_level)] = t
    levels = len(pipe.vae.config.block_out_channels)
    for name, t in pipe.vae.state_dict().items():
        key = vae_name(name, levels)
        if ".mid.attn_1." in key and key.endswith(".weight") and t.ndim == 2 and ".norm." not in key:
            t = t[:, :, None, None]
        out[key] = t
    second = getattr(pipe, "text_encoder_2", None)
    first_root = "conditioner.embedders.0.transformer." if second is not None else "cond_stage_model.transformer."
    for name, t in pipe.text_encoder.state_dict().items():
        inner = name if name.startswith("text_model.") else f"text_model.{name}"  # as the original files
        out[first_root + inner] = t
    if second is not None:
        out.update(open_clip_names(second.state_dict(), "conditioner.embedders.1.model."))
    import torch

    def real(t):
        t = torch.zeros(t.shape, dtype=dtype or t.dtype) if t.is_meta else t
        return (t.to(dtype) if dtype is not None else t).contiguous()

    save_file({k: real(v) for k, v in out.items()}, str(path))
    return path


def config_only(folder: Path, dest: Path) -> Path:
    """A copy of a diffusers folder with its config and tokenizer files but no weights."""
    import shutil

    for src in folder.rglob("*"):
        if src.is_file() and src.suffix in {".json", ".txt"}:
            target = dest / src.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest

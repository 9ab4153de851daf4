"""The module lists real LoRAs carry, derived from each base model's structure.

Tests, the demo library and the scan benchmark need LoRA files whose key names
and widths are exactly what trainers write, or base-model detection is only
tested against itself. So the lists are generated from the architectures' own
numbers (channels per UNet level, transformer depth, cross-attention width,
text-encoder width and depth) the way kohya sd-scripts, diffusers and peft walk
the models, instead of being typed out by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Module:
    """One adapted layer: its full module name as the file spells it, and its widths."""

    name: str
    in_features: int
    out_features: int
    kind: str = "linear"  # "linear" | "conv"
    kernel: tuple[int, int] = (1, 1)
    style: str = "kohya"  # "kohya" (lora_down/lora_up/alpha) | "diffusers" | "peft" (lora_A/lora_B)


@dataclass(frozen=True, slots=True)
class UNetShape:
    channels: tuple[int, ...]  # block_out_channels, one per UNet level
    depth: tuple[int, ...]  # transformer blocks per attention in each down level (0: no attention)
    mid_depth: int
    cross_dim: int  # width of the text states that attn2.to_k/to_v read
    linear_proj: bool  # proj_in/proj_out are Linear (SD2, SDXL) rather than 1x1 convs (SD1)
    ldm_names: bool  # kohya names this family's blocks input_blocks/middle_block/output_blocks


@dataclass(frozen=True, slots=True)
class EncoderShape:
    width: int
    layers: int
    mlp: int


@dataclass(frozen=True, slots=True)
class LLMShape:
    """A Llama-shaped causal LM (defaults: TinyLlama-1.1B)."""

    hidden: int = 2048
    intermediate: int = 5632
    layers: int = 22
    kv_width: int = 256  # grouped-query attention: k_proj/v_proj are narrower than q_proj


UNETS = {
    "sd1": UNetShape((320, 640, 1280, 1280), (1, 1, 1, 0), 1, 768, False, False),
    "sd2": UNetShape((320, 640, 1280, 1280), (1, 1, 1, 0), 1, 1024, True, False),
    "sdxl": UNetShape((320, 640, 1280), (0, 2, 10), 10, 2048, True, True),
}
CLIP_L = EncoderShape(768, 12, 3072)
OPENCLIP_H = EncoderShape(1024, 23, 4096)  # SD2 drops the last of its 24 layers
OPENCLIP_BIGG = EncoderShape(1280, 32, 5120)
TEXT_ENCODERS = {
    "sd1": (("te", CLIP_L),),
    "sd2": (("te", OPENCLIP_H),),
    "sdxl": (("te1", CLIP_L), ("te2", OPENCLIP_BIGG)),
    "flux": (("te1", CLIP_L),),
}
FAMILIES = ("sd1", "sd2", "sdxl", "flux", "llm")
STYLES = ("kohya", "diffusers", "peft-llm")
TEMB = 1280  # UNet time-embedding width (4 x 320) that every resnet's time_emb_proj reads
FLUX_HIDDEN, FLUX_DOUBLE, FLUX_SINGLE = 3072, 19, 38

_KOHYA_TE = {"te": "lora_te_", "te1": "lora_te1_", "te2": "lora_te2_"}
_DIFFUSERS_TE = {"te": "text_encoder.", "te1": "text_encoder.", "te2": "text_encoder_2."}


def lora_modules(
    family: str,
    *,
    style: str = "kohya",
    parts: Sequence[str] = ("unet", "te"),
    conv: bool = False,
    blocks: str | None = None,
    llm: LLMShape | None = None,
    unet: UNetShape | None = None,
    text: EncoderShape | None = None,
) -> list[Module]:
    """The modules a full LoRA of ``family`` adapts, named as ``style`` writes them.

    ``parts``: "unet" (the denoiser, also spelled "transformer"), "te" (every text
    encoder of the family) or "te1"/"te2". ``conv`` adds the resnet and sampler
    layers LoCon trains. ``blocks`` forces UNet block names: "diffusers"
    (down_blocks_…) or "ldm" (input_blocks_…); by default kohya uses LDM names for
    SDXL only, as sd-scripts does. ``unet``/``text`` replace the family's UNet and
    (single) text-encoder shapes, for LoRAs of a scaled-down model of that family.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    if (family == "llm") != (style == "peft-llm"):
        raise ValueError(f"family {family!r} is not written in style {style!r}; LLM adapters use 'peft-llm'")
    if family == "llm":
        return _llm_modules(llm or LLMShape())
    if family not in TEXT_ENCODERS:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    out: list[Module] = []
    if "unet" in parts or "transformer" in parts:
        if family == "flux":
            out += _flux_modules(style)
        else:
            shape = unet or UNETS[family]
            ldm = blocks == "ldm" or (blocks is None and style == "kohya" and shape.ldm_names)
            out += _unet_modules(shape, style, ldm, conv)
    encoders = TEXT_ENCODERS[family] if text is None else (("te", text),)
    for part, shape in encoders:
        if "te" in parts or part in parts:
            out += _encoder_modules(part, shape, style)
    return out


def _name(style: str, root: str, path: str) -> str:
    return "lora_" + root + "_" + path.replace(".", "_") if style == "kohya" else f"{root}.{path}"


def _unet_modules(u: UNetShape, style: str, ldm: bool, conv: bool) -> list[Module]:
    out = []
    for d_path, l_path, what, a, b in _unet_sites(u, conv):
        name = _name(style, "unet", l_path if ldm else d_path)
        if what == "attention":
            out += _transformer_modules(name, style, u, channels=a, depth=b)
        else:  # (in, out) of a resnet or sampler layer
            is_conv = what != "linear"
            kernel = (3, 3) if what == "conv3" else (1, 1)
            out.append(Module(name, a, b, "conv" if is_conv else "linear", kernel, _module_style(style)))
    return out


def _unet_sites(u: UNetShape, conv: bool) -> Iterator[tuple[str, str, str, int, int]]:
    """Every Transformer2DModel (and with ``conv`` every resnet/sampler layer) of a UNet.

    Yields (diffusers path, LDM path, what, a, b): for an attention a/b are channels
    and depth; for a layer they are in/out widths and ``what`` is linear/conv1/conv3.
    """
    levels = len(u.channels)
    previous = u.channels[0]
    for i, (ch, depth) in enumerate(zip(u.channels, u.depth)):
        for j in range(2):
            ldm = f"input_blocks.{1 + 3 * i + j}"
            if conv:
                yield from _resnet(f"down_blocks.{i}.resnets.{j}", f"{ldm}.0", previous if j == 0 else ch, ch)
            if depth:
                yield f"down_blocks.{i}.attentions.{j}", f"{ldm}.1", "attention", ch, depth
        if conv and i < levels - 1:
            yield f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{3 * i + 3}.0.op", "conv3", ch, ch
        previous = ch
    if conv:
        yield from _resnet("mid_block.resnets.0", "middle_block.0", previous, previous)
    yield "mid_block.attentions.0", "middle_block.1", "attention", previous, u.mid_depth
    if conv:
        yield from _resnet("mid_block.resnets.1", "middle_block.2", previous, previous)
    rev_ch, rev_depth = u.channels[::-1], u.depth[::-1]
    for i, (ch, depth) in enumerate(zip(rev_ch, rev_depth)):
        skip_in = rev_ch[min(i + 1, levels - 1)]
        for j in range(3):
            ldm = f"output_blocks.{3 * i + j}"
            if conv:
                res_in = (previous if j == 0 else ch) + (skip_in if j == 2 else ch)
                yield from _resnet(f"up_blocks.{i}.resnets.{j}", f"{ldm}.0", res_in, ch)
            if depth:
                yield f"up_blocks.{i}.attentions.{j}", f"{ldm}.1", "attention", ch, depth
        if conv and i < levels - 1:
            ldm_up = f"output_blocks.{3 * i + 2}.{2 if depth else 1}.conv"
            yield f"up_blocks.{i}.upsamplers.0.conv", ldm_up, "conv3", ch, ch
        previous = ch


def _resnet(d_path: str, l_path: str, c_in: int, c_out: int) -> Iterator[tuple[str, str, str, int, int]]:
    yield f"{d_path}.conv1", f"{l_path}.in_layers.2", "conv3", c_in, c_out
    yield f"{d_path}.time_emb_proj", f"{l_path}.emb_layers.1", "linear", TEMB, c_out
    yield f"{d_path}.conv2", f"{l_path}.out_layers.3", "conv3", c_out, c_out
    if c_in != c_out:
        yield f"{d_path}.conv_shortcut", f"{l_path}.skip_connection", "conv1", c_in, c_out


def _transformer_modules(site: str, style: str, u: UNetShape, channels: int, depth: int) -> list[Module]:
    sep = "_" if style == "kohya" else "."
    mstyle = _module_style(style)
    proj_kind = "linear" if u.linear_proj else "conv"
    c, x = channels, u.cross_dim
    out = [Module(f"{site}{sep}proj_in", c, c, proj_kind, style=mstyle)]
    for t in range(depth):
        block = f"{site}{sep}transformer_blocks{sep}{t}{sep}"
        for attn, k_in in (("attn1", c), ("attn2", x)):
            for leaf, width in (("to_q", c), ("to_k", k_in), ("to_v", k_in), (f"to_out{sep}0", c)):
                out.append(Module(f"{block}{attn}{sep}{leaf}", width, c, style=mstyle))
        out.append(Module(f"{block}ff{sep}net{sep}0{sep}proj", c, 8 * c, style=mstyle))  # GEGLU: 2 x 4c
        out.append(Module(f"{block}ff{sep}net{sep}2", 4 * c, c, style=mstyle))
    out.append(Module(f"{site}{sep}proj_out", c, c, proj_kind, style=mstyle))
    return out


def _encoder_modules(part: str, e: EncoderShape, style: str) -> list[Module]:
    kohya = style == "kohya"
    prefix = (_KOHYA_TE if kohya else _DIFFUSERS_TE)[part]
    sep = "_" if kohya else "."
    mstyle = _module_style(style)
    w, m = e.width, e.mlp
    out = []
    for n in range(e.layers):
        layer = f"{prefix}text_model{sep}encoder{sep}layers{sep}{n}{sep}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.append(Module(f"{layer}self_attn{sep}{proj}", w, w, style=mstyle))
        out.append(Module(f"{layer}mlp{sep}fc1", w, m, style=mstyle))
        out.append(Module(f"{layer}mlp{sep}fc2", m, w, style=mstyle))
    return out


def _flux_modules(style: str) -> list[Module]:
    """Flux.1: kohya names the original (BFL) layers, diffusers its own re-implementation."""
    h, mstyle = FLUX_HIDDEN, _module_style(style)
    if style == "kohya":
        double = [("img_attn_qkv", h, 3 * h), ("img_attn_proj", h, h), ("img_mlp_0", h, 4 * h),
                  ("img_mlp_2", 4 * h, h), ("img_mod_lin", h, 6 * h)]
        double += [("txt" + leaf[3:], a, b) for leaf, a, b in double]
        single = [("linear1", h, 7 * h), ("linear2", 5 * h, h), ("modulation_lin", h, 3 * h)]
        d_fmt, s_fmt = "lora_unet_double_blocks_{}_{}", "lora_unet_single_blocks_{}_{}"
    else:
        double = [(f"attn.{leaf}", h, h) for leaf in (
            "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")]
        for ff in ("ff", "ff_context"):
            double += [(f"{ff}.net.0.proj", h, 4 * h), (f"{ff}.net.2", 4 * h, h)]
        double += [("norm1.linear", h, 6 * h), ("norm1_context.linear", h, 6 * h)]
        single = [(f"attn.{leaf}", h, h) for leaf in ("to_q", "to_k", "to_v")]
        single += [("proj_mlp", h, 4 * h), ("proj_out", 5 * h, h), ("norm.linear", h, 3 * h)]
        d_fmt, s_fmt = "transformer.transformer_blocks.{}.{}", "transformer.single_transformer_blocks.{}.{}"
    out = [Module(d_fmt.format(i, leaf), a, b, style=mstyle) for i in range(FLUX_DOUBLE) for leaf, a, b in double]
    out += [Module(s_fmt.format(i, leaf), a, b, style=mstyle) for i in range(FLUX_SINGLE) for leaf, a, b in single]
    return out


def _llm_modules(s: LLMShape) -> list[Module]:
    h, kv, ff = s.hidden, s.kv_width, s.intermediate
    leaves = (("self_attn.q_proj", h, h), ("self_attn.k_proj", h, kv), ("self_attn.v_proj", h, kv),
              ("self_attn.o_proj", h, h), ("mlp.gate_proj", h, ff), ("mlp.up_proj", h, ff),
              ("mlp.down_proj", ff, h))
    return [Module(f"base_model.model.model.layers.{n}.{leaf}", a, b, style="peft")
            for n in range(s.layers) for leaf, a, b in leaves]


def _module_style(style: str) -> str:
    return "peft" if style == "peft-llm" else style


def lora_tensors(
    modules: Iterable[Module],
    rank: int,
    alpha: float | None,
    dtype: str = "F16",
    *,
    network: str = "lora",
    conv_rank: int | None = None,
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every tensor key of a LoRA over ``modules``, with its dtype and shape.

    kohya style gets ``.lora_down.weight`` (rank, in[, kh, kw]), ``.lora_up.weight``
    (out, rank[, 1, 1]) and, unless ``alpha`` is None, a scalar ``.alpha``;
    diffusers/peft style gets ``lora_A``/``lora_B`` and no alpha (it lives in
    metadata or adapter_config.json). ``network`` "loha"/"lokr" gives LyCORIS
    factors (kohya style only); ``conv_rank`` applies to 3x3 convs, as LoCon's
    conv_dim does.
    """
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for m in modules:
        r = conv_rank if conv_rank is not None and m.kernel != (1, 1) else rank
        tail = m.kernel if m.kind == "conv" else ()
        if network != "lora" and m.style != "kohya":
            raise ValueError(f"{network} tensors exist only in kohya style, not for {m.name!r}")
        if network == "loha":
            flat_in = m.in_features * m.kernel[0] * m.kernel[1]
            for w in ("1", "2"):
                out[f"{m.name}.hada_w{w}_a"] = (dtype, (m.out_features, r))
                out[f"{m.name}.hada_w{w}_b"] = (dtype, (r, flat_in))
        elif network == "lokr":
            out_l, out_k = factorization(m.out_features)
            in_m, in_n = factorization(m.in_features)
            out[f"{m.name}.lokr_w1"] = (dtype, (out_l, in_m))
            if r < max(out_k, in_n) / 2:
                out[f"{m.name}.lokr_w2_a"] = (dtype, (out_k, r))
                out[f"{m.name}.lokr_w2_b"] = (dtype, (r, in_n * m.kernel[0] * m.kernel[1]))
            else:  # LyCORIS keeps the Kronecker factor whole when the rank would not save anything
                out[f"{m.name}.lokr_w2"] = (dtype, (out_k, in_n, *tail))
        elif network == "lora":
            down, up = (".lora_down.weight", ".lora_up.weight") if m.style == "kohya" else (
                ".lora_A.weight", ".lora_B.weight")
            out[m.name + down] = (dtype, (r, m.in_features, *tail))
            out[m.name + up] = (dtype, (m.out_features, r, *((1, 1) if tail else ())))
        else:
            raise ValueError(f"network must be lora, loha or lokr, not {network!r}")
        if alpha is not None and m.style == "kohya":
            out[f"{m.name}.alpha"] = (dtype, ())
    return out


def factorization(dim: int) -> tuple[int, int]:
    """Split ``dim`` into the two factors closest to its square root (small one first).

    LoKr stores a weight as a Kronecker product of such factors, which is why a
    2048-wide layer shows up as 32 x 64 in its tensors.
    """
    small = int(dim ** 0.5)
    while dim % small:
        small -= 1
    return small, dim // small

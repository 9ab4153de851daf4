"""The transformer (DiT) block layouts of every family, as their LoRAs name them.

Each layout lists, per block group, how many blocks the released models have and
every adapted layer after the block index (flattened with ``_``), with its
(in, out) width as a multiple of the hidden width — or as a :class:`Fixed`
width where the layer reads or writes something else (a text encoder's 1024-wide
states, a 256-wide modulation bottleneck). Widths and counts were read off the
diffusers model classes (built on the meta device in the tests, default config
and released sizes) and, for the ``original`` spelling, off the original
checkpoints' key names that kohya ``lora_unet_``, ComfyUI ``diffusion_model.``
and musubi-style trainers flatten. Adding a family is one :class:`Layout` per
spelling here plus its entry in :mod:`catalog.detect.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass


class Fixed(int):
    """A layer width that does not scale with the hidden width (e.g. a 1024-wide cross-attention input)."""


Width = float | Fixed | None  # a multiple of the hidden width, a fixed width, or not fixed at all
Mult = tuple[Width, Width]


@dataclass(frozen=True)
class Layout:
    family: str
    label: str
    spelling: str  # "original" (the released checkpoint's names) | "diffusers" | "xlabs"
    hidden: frozenset[int]
    groups: dict[str, tuple[int, dict[str, Mult]]]  # block group -> (block count, layers)


def _stream(**layers: Mult) -> dict[str, Mult]:
    """Layers named for the image stream, plus their twins in the text stream."""
    return {**layers, **{"txt" + name[3:]: m for name, m in layers.items()}}


def _same(*names: str) -> dict[str, Mult]:
    return dict.fromkeys(names, (1, 1))


def _ff(prefix: str, ratio: float) -> dict[str, Mult]:
    return {f"{prefix}_net_0_proj": (1, ratio), f"{prefix}_net_2": (ratio, 1)}


def _free(*names: str, width: int) -> dict[str, Mult]:
    return dict.fromkeys(names, (Fixed(width), Fixed(width)))


_QKVO = ("to_q", "to_k", "to_v", "to_out_0")
_JOINT_ATTN = _same(*(f"attn_{p}" for p in _QKVO), "attn_add_q_proj", "attn_add_k_proj", "attn_add_v_proj",
                    "attn_to_add_out")
_SINGLE_ATTN = _same("attn_to_q", "attn_to_k", "attn_to_v")
_SELF_CROSS = _same(*(f"attn{n}_{p}" for n in (1, 2) for p in _QKVO))
_FLUX_DOUBLE = {**_JOINT_ATTN, **_ff("ff", 4), **_ff("ff_context", 4)}
_FLUX_SINGLE = {**_SINGLE_ATTN, "proj_mlp": (1, 4), "proj_out": (5, 1)}
_FLUX_MOD = {"norm1_linear": (1, 6), "norm1_context_linear": (1, 6)}
_HUNYUAN_REFINER = {**_same(*(f"attn_{p}" for p in _QKVO)), **_ff("ff", 4), "norm_out_linear": (1, 2)}
_BFL_DOUBLE = dict(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_0=(1, 4), img_mlp_2=(4, 1))
_F3072 = frozenset({3072})
_NEXTDIT_EIGHT_THIRDS = 8 / 3


def _nextdit(qkv: dict[str, Mult], ff: dict[str, Mult], mod: dict[str, Mult], layers: int) -> dict:
    """Lumina-style NextDiT: main layers plus two refiners (the context refiner has no modulation)."""
    return {"layers": (layers, {**qkv, **ff, **mod}), "noise_refiner": (2, {**qkv, **ff, **mod}),
            "context_refiner": (2, {**qkv, **ff})}


def _hidream(double: bool) -> dict[str, Mult]:
    out = {**_same(*(f"block_attn1_{p}" for p in ("to_q", "to_k", "to_v", "to_out"))),
           "block_adaLN_modulation_1": (1, 12 if double else 6)}
    if double:
        out.update(_same(*(f"block_attn1_{p}_t" for p in ("to_q", "to_k", "to_v", "to_out"))))
    experts = [("block_ff_i_shared_experts", 1.4)] + [(f"block_ff_i_experts_{e}", 2.7) for e in range(4)]
    experts += [("block_ff_t", 2.7)] if double else []
    for stem, ratio in experts:
        out.update({f"{stem}_w1": (1, ratio), f"{stem}_w3": (1, ratio), f"{stem}_w2": (ratio, 1)})
    return out


LAYOUTS: tuple[Layout, ...] = (
    # --- Flux.1 family (BFL double/single stream MMDiT) -------------------------------------------
    Layout("flux", "Flux.1 double/single blocks", "original", _F3072, {
        "double_blocks": (19, _stream(**_BFL_DOUBLE, img_mod_lin=(1, 6))),
        "single_blocks": (38, {"linear1": (1, 7), "linear2": (5, 1), "modulation_lin": (1, 3)})}),
    Layout("flux", "XLabs Flux attention processors", "xlabs", _F3072, {
        # the names lose ".processor." and a trailing "_lora" when read (see dit_specs.parse_block)
        "double_blocks": (19, {"qkv_lora1": (1, 3), "qkv_lora2": (1, 3), "proj_lora1": (1, 1), "proj_lora2": (1, 1)}),
        "single_blocks": (38, {"qkv": (1, 3), "proj": (1, 1)})}),
    Layout("flux", "Flux.1 transformer_blocks/single_transformer_blocks", "diffusers", _F3072, {
        "transformer_blocks": (19, {**_FLUX_DOUBLE, **_FLUX_MOD}),
        "single_transformer_blocks": (38, {**_FLUX_SINGLE, "norm_linear": (1, 3)})}),
    Layout("chroma", "Chroma double/single blocks with the distilled guidance layer", "original", _F3072, {
        "double_blocks": (19, _stream(**_BFL_DOUBLE)),
        "single_blocks": (38, {"linear1": (1, 7), "linear2": (5, 1)}),
        "distilled_guidance_layer_layers": (5, _free("in_layer", "out_layer", width=5120))}),
    Layout("chroma", "Chroma transformer_blocks with the distilled guidance layer", "diffusers", _F3072, {
        "transformer_blocks": (19, _FLUX_DOUBLE), "single_transformer_blocks": (38, _FLUX_SINGLE),
        "distilled_guidance_layer_layers": (5, _free("linear_1", "linear_2", width=5120))}),
    Layout("hunyuan-video", "HunyuanVideo double/single blocks", "original", _F3072, {
        "double_blocks": (20, _stream(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_fc1=(1, 4),
                                      img_mlp_fc2=(4, 1), img_mod_linear=(1, 6))),
        "single_blocks": (40, {"linear1": (1, 7), "linear2": (5, 1), "modulation_linear": (1, 3)}),
        "txt_in_individual_token_refiner_blocks": (2, {
            "self_attn_qkv": (1, 3), "self_attn_proj": (1, 1), "mlp_fc1": (1, 4), "mlp_fc2": (4, 1),
            "adaLN_modulation_1": (1, 2)})}),
    Layout("hunyuan-video", "HunyuanVideo transformer_blocks/single_transformer_blocks", "diffusers", _F3072, {
        "transformer_blocks": (20, {**_FLUX_DOUBLE, **_FLUX_MOD}),
        "single_transformer_blocks": (40, {**_FLUX_SINGLE, "norm_linear": (1, 3)}),
        "context_embedder_token_refiner_refiner_blocks": (2, _HUNYUAN_REFINER)}),
    Layout("hunyuan-image", "HunyuanImage 2.1 transformer_blocks/single_transformer_blocks", "diffusers",
           frozenset({3584}), {
               "transformer_blocks": (20, {**_FLUX_DOUBLE, **_FLUX_MOD}),
               "single_transformer_blocks": (40, {**_FLUX_SINGLE, "norm_linear": (1, 3)}),
               "context_embedder_token_refiner_refiner_blocks": (2, _HUNYUAN_REFINER)}),
    Layout("flux2", "Flux.2 double/single blocks", "original", frozenset({3072, 4096, 6144}), {
        "double_blocks": (8, _stream(img_attn_qkv=(1, 3), img_attn_proj=(1, 1), img_mlp_0=(1, 6),
                                     img_mlp_2=(3, 1))),
        "single_blocks": (48, {"linear1": (1, 9), "linear2": (4, 1)})}),
    Layout("flux2", "Flux.2 transformer_blocks/single_transformer_blocks", "diffusers",
           frozenset({3072, 4096, 6144}), {
               "transformer_blocks": (8, {**_JOINT_ATTN, "ff_linear_in": (1, 6), "ff_linear_out": (3, 1),
                                          "ff_context_linear_in": (1, 6), "ff_context_linear_out": (3, 1)}),
               "single_transformer_blocks": (48, {"attn_to_qkv_mlp_proj": (1, 9), "attn_to_out": (4, 1)})}),
    Layout("flux3", "Flux3 mode/txt-mode/single blocks with ff.linear_in", "diffusers", _F3072, {
        **{g: (5, {**_same(*(f"attn_{p}" for p in _QKVO)), "ff_linear_in": (1, 6), "ff_linear_out": (3, 1)})
           for g in ("mode_blocks_image", "mode_blocks_image_cond", "txt_mode_blocks")},
        "single_transformer_blocks": (28, {**_same(*(f"attn_{p}" for p in _QKVO)), "ff_linear_in": (1, 6),
                                           "ff_linear_out": (3, 1)})}),
    # --- other image DiTs -----------------------------------------------------------------------------
    Layout("qwen-image-2.1", "Qwen-Image 2.1 transformer_blocks with img_mlp.proj/gate_layer", "diffusers",
           frozenset({4096}), {
               "transformer_blocks": (32, {**_same(*(f"attn_{p}" for p in _QKVO)), "img_mlp_proj": (1, 3),
                                           "img_mlp_gate_layer": (1, 3), "img_mlp_out": (3, 1)})}),
    Layout("qwen-image", "Qwen-Image transformer_blocks with img_mlp/txt_mlp", "diffusers", _F3072, {
        "transformer_blocks": (60, {**_JOINT_ATTN, **_ff("img_mlp", 4), **_ff("txt_mlp", 4),
                                    "img_mod_1": (1, 6), "txt_mod_1": (1, 6)})}),
    Layout("sd3", "SD3 MMDiT transformer_blocks", "diffusers", frozenset({1536, 2432}), {
        "transformer_blocks": (38, {**_JOINT_ATTN, **_ff("ff", 4), **_ff("ff_context", 4),
                                    "norm1_linear": (1, None), "norm1_context_linear": (1, None),
                                    **_same("attn2_to_q", "attn2_to_k", "attn2_to_v", "attn2_to_out_0")})}),
    Layout("sd3", "SD3 MMDiT joint_blocks", "original", frozenset({1536, 2432}), {
        "joint_blocks": (38, {f"{side}_{name}": m for side in ("x_block", "context_block") for name, m in {
            "attn_qkv": (1, 3), "attn_proj": (1, 1), "mlp_fc1": (1, 4), "mlp_fc2": (4, 1),
            "adaLN_modulation_1": (1, None), "attn2_qkv": (1, 3), "attn2_proj": (1, 1)}.items()})}),
    Layout("z-image", "Z-Image layers with attention.to_q/feed_forward.w1", "diffusers", frozenset({3840}), _nextdit(
        _same(*(f"attention_{p}" for p in _QKVO)),
        {"feed_forward_w1": (1, _NEXTDIT_EIGHT_THIRDS), "feed_forward_w3": (1, _NEXTDIT_EIGHT_THIRDS),
         "feed_forward_w2": (_NEXTDIT_EIGHT_THIRDS, 1)}, {"adaLN_modulation_0": (Fixed(256), 4)}, 30)),
    Layout("z-image", "Z-Image layers with attention.qkv/feed_forward.w1", "original", frozenset({3840}), _nextdit(
        {"attention_qkv": (1, 3), "attention_out": (1, 1)},
        {"feed_forward_w1": (1, _NEXTDIT_EIGHT_THIRDS), "feed_forward_w3": (1, _NEXTDIT_EIGHT_THIRDS),
         "feed_forward_w2": (_NEXTDIT_EIGHT_THIRDS, 1)}, {"adaLN_modulation_0": (Fixed(256), 4)}, 30)),
    Layout("lumina2", "Lumina 2 layers with attn.to_q/feed_forward.linear_1", "diffusers", frozenset({2304}),
           _nextdit({"attn_to_q": (1, 1), "attn_to_k": (1, 1 / 3), "attn_to_v": (1, 1 / 3), "attn_to_out_0": (1, 1)},
                    {"feed_forward_linear_1": (1, 4), "feed_forward_linear_3": (1, 4),
                     "feed_forward_linear_2": (4, 1)}, {"norm1_linear": (Fixed(1024), 4)}, 26)),
    Layout("lumina2", "Lumina 2 layers with attention.qkv/feed_forward.w1", "original", frozenset({2304}),
           _nextdit({"attention_qkv": (1, 5 / 3), "attention_out": (1, 1)},
                    {"feed_forward_w1": (1, 4), "feed_forward_w3": (1, 4), "feed_forward_w2": (4, 1)},
                    {"adaLN_modulation_0": (Fixed(1024), 4)}, 26)),
    Layout("hidream", "HiDream-I1 double/single stream blocks", "diffusers", frozenset({2560}), {
        "double_stream_blocks": (16, _hidream(True)), "single_stream_blocks": (32, _hidream(False))}),
    Layout("krea2", "Krea 2 transformer_blocks with attn.to_gate and ff.gate/up/down", "diffusers",
           frozenset({6144}), {
               "transformer_blocks": (28, {"attn_to_q": (1, 1), "attn_to_k": (1, 0.25), "attn_to_v": (1, 0.25),
                                           "attn_to_gate": (1, 1), "attn_to_out_0": (1, 1), "ff_gate": (1, 8 / 3),
                                           "ff_up": (1, 8 / 3), "ff_down": (8 / 3, 1)}),
               **{f"text_fusion_{g}_blocks": (2, {
                   **_free(*(f"attn_{p}" for p in ("to_q", "to_k", "to_v", "to_gate", "to_out_0")), width=2560),
                   "ff_gate": (Fixed(2560), Fixed(6912)), "ff_up": (Fixed(2560), Fixed(6912)),
                   "ff_down": (Fixed(6912), Fixed(2560))}) for g in ("layerwise", "refiner")}}),
    Layout("krea2", "Krea 2 blocks with attn.wq/attn.gate and mlp.gate/up/down", "original", frozenset({6144}), {
        "blocks": (28, {"attn_wq": (1, 1), "attn_wk": (1, 0.25), "attn_wv": (1, 0.25), "attn_gate": (1, 1),
                        "attn_wo": (1, 1), "mlp_gate": (1, 8 / 3), "mlp_up": (1, 8 / 3), "mlp_down": (8 / 3, 1)}),
        **{f"txtfusion_{g}_blocks": (2, {
            **_free(*(f"attn_{p}" for p in ("wq", "wk", "wv", "wo", "gate")), width=2560),
            "mlp_gate": (Fixed(2560), Fixed(6912)), "mlp_up": (Fixed(2560), Fixed(6912)),
            "mlp_down": (Fixed(6912), Fixed(2560))}) for g in ("layerwise", "refiner")}}),
    Layout("anima", "Anima / Cosmos-Predict2 2B blocks (self_attn, cross_attn, mlp.layer1)", "original",
           frozenset({2048}), {
               "blocks": (28, {**_same(*(f"{a}_{p}" for a in ("self_attn", "cross_attn")
                                         for p in ("q_proj", "output_proj")), "self_attn_k_proj", "self_attn_v_proj"),
                               "cross_attn_k_proj": (Fixed(1024), 1), "cross_attn_v_proj": (Fixed(1024), 1),
                               "mlp_layer1": (1, 4), "mlp_layer2": (4, 1),
                               **{f"adaln_modulation_{p}_1": (1, Fixed(256)) for p in ("self_attn", "cross_attn", "mlp")},
                               **{f"adaln_modulation_{p}_2": (Fixed(256), 3) for p in ("self_attn", "cross_attn", "mlp")}})}),
    Layout("anima", "Cosmos-Predict2 2B transformer_blocks (attn2.to_k 1024 wide)", "diffusers", frozenset({2048}), {
        "transformer_blocks": (28, {**_same(*(f"attn1_{p}" for p in _QKVO), "attn2_to_q", "attn2_to_out_0"),
                                    "attn2_to_k": (Fixed(1024), 1), "attn2_to_v": (Fixed(1024), 1), **_ff("ff", 4),
                                    **{f"norm{n}_linear_1": (1, Fixed(256)) for n in (1, 2, 3)},
                                    **{f"norm{n}_linear_2": (Fixed(256), 3) for n in (1, 2, 3)}})}),
    Layout("sana", "Sana transformer_blocks with attn1/attn2 and a conv feed-forward", "diffusers",
           frozenset({1152, 2240}), {
               "transformer_blocks": (28, {**_SELF_CROSS, "ff_conv_inverted": (1, 5), "ff_conv_point": (2.5, 1)})}),
    Layout("pixart", "PixArt transformer_blocks with attn1/attn2/ff", "diffusers", frozenset({1152}), {
        "transformer_blocks": (28, {**_SELF_CROSS, **_ff("ff", 4)})}),
    Layout("cogview", "CogView transformer_blocks with attn1/ff and a 512-wide modulation", "diffusers",
           frozenset({2560}), {
               "transformer_blocks": (30, {**_same(*(f"attn1_{p}" for p in _QKVO)), **_ff("ff", 4),
                                           "norm1_linear": (Fixed(512), 12)})}),
    Layout("auraflow", "AuraFlow joint/single transformer blocks", "diffusers", _F3072, {
        "joint_transformer_blocks": (4, {**_JOINT_ATTN, "norm1_linear": (1, 6), "norm1_context_linear": (1, 6),
                                         **{f"{ff}_{n}": m for ff in ("ff", "ff_context") for n, m in (
                                             ("linear_1", (1, 8 / 3)), ("linear_2", (1, 8 / 3)),
                                             ("out_projection", (8 / 3, 1)))}}),
        "single_transformer_blocks": (32, {**_same(*(f"attn_{p}" for p in _QKVO)), "norm1_linear": (1, 6),
                                           "ff_linear_1": (1, 8 / 3), "ff_linear_2": (1, 8 / 3),
                                           "ff_out_projection": (8 / 3, 1)})}),
    # --- video ---------------------------------------------------------------------------------------
    Layout("wan", "Wan blocks with self_attn/cross_attn/ffn", "original", frozenset({1536, 3072, 5120}), {
        "blocks": (40, {**_same(*(f"{a}_{p}" for a in ("self_attn", "cross_attn") for p in "qkvo"),
                                "cross_attn_k_img", "cross_attn_v_img"),
                        "ffn_0": (1, None), "ffn_2": (None, 1)})}),
    Layout("wan", "Wan blocks with attn1/attn2/ffn", "diffusers", frozenset({1536, 3072, 5120}), {
        "blocks": (40, {**_same(*(f"{a}_{p}" for a in ("attn1", "attn2") for p in _QKVO),
                                "attn2_add_k_proj", "attn2_add_v_proj"),
                        "ffn_net_0_proj": (1, None), "ffn_net_2": (None, 1)})}),
    Layout("ltx", "LTX-Video transformer_blocks with attn1/attn2/ff (LTX-2 audio layers too)", "diffusers",
           frozenset({2048, 4096}), {
               "transformer_blocks": (48, {**_SELF_CROSS, **_ff("ff", 4), **{
                   f"{a}_{p}": (None, None) for a in ("audio_attn1", "audio_attn2", "audio_to_video_attn",
                                                       "video_to_audio_attn") for p in _QKVO},
                   "audio_ff_net_0_proj": (None, None), "audio_ff_net_2": (None, None)})}),
)

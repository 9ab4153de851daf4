"""The generated module lists must be the ones real trainers write, name for name."""

from __future__ import annotations

import pytest

from lutnav.sample_loras import Module, factorization, lora_modules, lora_tensors


def by_name(modules: list[Module]) -> dict[str, Module]:
    return {m.name: m for m in modules}


@pytest.mark.parametrize(("family", "parts", "count"), [
    ("sd1", ("unet",), 192),
    ("sd1", ("te",), 72),
    ("sd2", ("unet",), 192),
    ("sd2", ("te",), 138),  # OpenCLIP-H: 23 layers x 6
    ("sdxl", ("unet",), 722),
    ("sdxl", ("te1",), 72),
    ("sdxl", ("te2",), 192),
    ("sdxl", ("unet", "te"), 722 + 72 + 192),
    ("flux", ("unet",), 19 * 10 + 38 * 3),
])
def test_module_counts_match_kohya(family, parts, count):
    modules = lora_modules(family, parts=parts)
    assert len(modules) == count
    assert len({m.name for m in modules}) == count  # no duplicates


def test_sd1_names_and_widths_are_kohyas():
    mods = by_name(lora_modules("sd1"))
    k = mods["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"]
    assert (k.in_features, k.out_features) == (768, 320)
    mid = mods["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_v"]
    assert (mid.in_features, mid.out_features) == (768, 1280)
    assert mods["lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_0_proj"].out_features == 320 * 8
    assert mods["lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0"].in_features == 1280
    proj = mods["lora_unet_down_blocks_1_attentions_1_proj_in"]
    assert (proj.kind, proj.kernel) == ("conv", (1, 1))  # SD1 projects with 1x1 convs
    q = mods["lora_te_text_model_encoder_layers_11_self_attn_q_proj"]
    assert (q.in_features, q.out_features) == (768, 768)
    assert mods["lora_te_text_model_encoder_layers_0_mlp_fc1"].out_features == 3072
    assert not any("up_blocks_0_attentions" in name for name in mods)  # the lowest up level has none


def test_sd2_differs_from_sd1_only_where_the_model_does():
    sd1, sd2 = by_name(lora_modules("sd1", parts=("unet",))), by_name(lora_modules("sd2", parts=("unet",)))
    assert sd1.keys() == sd2.keys()
    changed = {n for n in sd1 if sd1[n] != sd2[n]}
    assert changed == {n for n in sd1 if n.endswith(("attn2_to_k", "attn2_to_v", "proj_in", "proj_out"))}
    assert sd2["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k"].in_features == 1024
    assert sd2["lora_unet_mid_block_attentions_0_proj_in"].kind == "linear"


def test_sdxl_uses_ldm_block_names_like_sd_scripts():
    mods = by_name(lora_modules("sdxl"))
    k = mods["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"]
    assert (k.in_features, k.out_features) == (2048, 640)
    assert mods["lora_unet_middle_block_1_transformer_blocks_9_attn2_to_k"].out_features == 1280
    assert mods["lora_unet_output_blocks_0_1_transformer_blocks_9_ff_net_2"].in_features == 4 * 1280
    assert mods["lora_unet_output_blocks_5_1_proj_out"].in_features == 640
    assert "lora_unet_input_blocks_1_1_proj_in" not in mods  # no attention at 320 channels
    assert mods["lora_te1_text_model_encoder_layers_11_mlp_fc2"].in_features == 3072
    big_g = mods["lora_te2_text_model_encoder_layers_31_self_attn_k_proj"]
    assert (big_g.in_features, big_g.out_features) == (1280, 1280)
    assert mods["lora_te2_text_model_encoder_layers_0_mlp_fc1"].out_features == 5120


def test_block_names_can_be_forced_either_way():
    ldm = {m.name for m in lora_modules("sd1", parts=("unet",), blocks="ldm")}
    assert "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k" in ldm
    assert "lora_unet_output_blocks_11_1_proj_out" in ldm
    diffusers = {m.name for m in lora_modules("sdxl", parts=("unet",), blocks="diffusers")}
    assert "lora_unet_down_blocks_2_attentions_1_transformer_blocks_9_attn2_to_k" in diffusers
    assert len(ldm) == 192 and len(diffusers) == 722


def test_locon_adds_resnet_and_sampler_layers():
    plain = {m.name for m in lora_modules("sd1", parts=("unet",))}
    conv = by_name(lora_modules("sd1", parts=("unet",), conv=True))
    extra = {n: conv[n] for n in conv if n not in plain}
    assert len(extra) == 86
    c1 = extra["lora_unet_down_blocks_1_resnets_0_conv1"]
    assert (c1.in_features, c1.out_features, c1.kind, c1.kernel) == (320, 640, "conv", (3, 3))
    assert extra["lora_unet_down_blocks_1_resnets_0_conv_shortcut"].kernel == (1, 1)
    assert extra["lora_unet_up_blocks_1_resnets_2_conv1"].in_features == 1280 + 640
    assert extra["lora_unet_up_blocks_0_upsamplers_0_conv"].kernel == (3, 3)
    assert extra["lora_unet_mid_block_resnets_1_time_emb_proj"].kind == "linear"
    xl = {m.name for m in lora_modules("sdxl", parts=("unet",), conv=True)}
    assert {"lora_unet_input_blocks_3_0_op", "lora_unet_output_blocks_2_2_conv",
            "lora_unet_input_blocks_1_0_in_layers_2", "lora_unet_input_blocks_4_0_skip_connection"} <= xl


def test_flux_kohya_and_diffusers_names():
    kohya = by_name(lora_modules("flux", parts=("unet",)))
    qkv = kohya["lora_unet_double_blocks_18_img_attn_qkv"]
    assert (qkv.in_features, qkv.out_features) == (3072, 9216)
    assert kohya["lora_unet_single_blocks_37_linear1"].out_features == 3 * 3072 + 12288
    assert kohya["lora_unet_single_blocks_0_linear2"].in_features == 3072 + 12288
    diffusers = by_name(lora_modules("flux", style="diffusers", parts=("transformer",)))
    assert diffusers["transformer.transformer_blocks.0.ff_context.net.0.proj"].out_features == 12288
    assert diffusers["transformer.single_transformer_blocks.37.proj_out"].in_features == 15360
    te = {m.name for m in lora_modules("flux", parts=("te",))}
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in te


def test_diffusers_and_peft_styles():
    mods = by_name(lora_modules("sdxl", style="diffusers"))
    assert "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k" in mods
    assert "unet.up_blocks.0.attentions.2.transformer_blocks.9.attn1.to_out.0" in mods
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj" in mods
    assert "text_encoder_2.text_model.encoder.layers.31.mlp.fc2" in mods
    assert {m.style for m in mods.values()} == {"diffusers"}
    llm = by_name(lora_modules("llm", style="peft-llm"))
    assert len(llm) == 22 * 7
    k = llm["base_model.model.model.layers.21.self_attn.k_proj"]
    assert (k.in_features, k.out_features) == (2048, 256)
    assert llm["base_model.model.model.layers.0.mlp.down_proj"].in_features == 5632


def test_kohya_tensors_have_down_up_and_alpha():
    mods = lora_modules("sd1", parts=("unet",), conv=True)
    tensors = lora_tensors(mods, 8, 4.0, "BF16", conv_rank=4)
    assert len(tensors) == 3 * len(mods)
    base = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    assert tensors[f"{base}.lora_down.weight"] == ("BF16", (8, 768))
    assert tensors[f"{base}.lora_up.weight"] == ("BF16", (320, 8))
    assert tensors[f"{base}.alpha"] == ("BF16", ())
    assert tensors["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"][1] == (8, 320, 1, 1)
    assert tensors["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"][1] == (4, 320, 3, 3)
    assert tensors["lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight"][1] == (320, 4, 1, 1)
    assert not any(k.endswith(".alpha") for k in lora_tensors(mods, 8, None))


def test_diffusers_tensors_are_lora_a_b_without_alpha():
    tensors = lora_tensors(lora_modules("sd1", style="diffusers"), 4, 4.0)
    assert "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight" in tensors
    assert tensors["unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight"][1] == (1280, 4)
    assert not any(k.endswith(".alpha") for k in tensors)


def test_lycoris_factors():
    mod = [Module("lora_unet_x_attn2_to_k", 2048, 640)]
    loha = lora_tensors(mod, 8, 8, network="loha")
    assert loha["lora_unet_x_attn2_to_k.hada_w1_a"][1] == (640, 8)
    assert loha["lora_unet_x_attn2_to_k.hada_w2_b"][1] == (8, 2048)
    lokr = lora_tensors(mod, 8, 8, network="lokr")
    assert lokr["lora_unet_x_attn2_to_k.lokr_w1"][1] == (20, 32)  # 640 = 20 x 32, 2048 = 32 x 64
    assert lokr["lora_unet_x_attn2_to_k.lokr_w2_b"][1] == (8, 64)
    whole = lora_tensors(mod, 64, 8, network="lokr")  # rank too large to save anything
    assert whole["lora_unet_x_attn2_to_k.lokr_w2"][1] == (32, 64)
    assert factorization(768) == (24, 32) and factorization(3072) == (48, 64) and factorization(7) == (1, 7)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="family"):
        lora_modules("sd4")
    with pytest.raises(ValueError, match="peft-llm"):
        lora_modules("llm")
    with pytest.raises(ValueError, match="style"):
        lora_modules("sd1", style="comfy")
    with pytest.raises(ValueError, match="kohya style"):
        lora_tensors(lora_modules("sd1", style="diffusers")[:1], 4, 4, network="loha")


def _kohya_walk(root, targets) -> set[tuple[str, int, int, str, tuple]]:
    """Every Linear/Conv2d inside modules of the target classes, as sd-scripts walks them."""
    import torch

    found = set()
    for name, module in root.named_modules():
        if module.__class__.__name__ in targets:
            for child_name, child in module.named_modules():
                if isinstance(child, torch.nn.Linear):
                    found.add((f"{name}.{child_name}", child.in_features, child.out_features, "linear", (1, 1)))
                elif isinstance(child, torch.nn.Conv2d):
                    found.add((f"{name}.{child_name}", child.in_channels, child.out_channels, "conv",
                               tuple(child.kernel_size)))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("conv", [False, True])
def test_unet_layouts_match_diffusers_models(family, conv):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from tests.sdconfigs import UNETS

    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**UNETS[family])
    targets = {"Transformer2DModel"} | ({"ResnetBlock2D", "Downsample2D", "Upsample2D"} if conv else set())
    expected = {("unet." + n, *rest) for n, *rest in _kohya_walk(unet, targets)}
    ours = {(m.name, m.in_features, m.out_features, m.kind, m.kernel)
            for m in lora_modules(family, style="diffusers", parts=("unet",), conv=conv)}
    assert ours == expected


@pytest.mark.slow
@pytest.mark.parametrize(("family", "part", "width", "layers", "mlp"), [
    ("sd1", "te", 768, 12, 3072), ("sd2", "te", 1024, 23, 4096),
    ("sdxl", "te1", 768, 12, 3072), ("sdxl", "te2", 1280, 32, 5120),
])
def test_text_encoder_layouts_match_transformers_clip(family, part, width, layers, mlp):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPTextConfig(hidden_size=width, num_hidden_layers=layers, intermediate_size=mlp,
                                         num_attention_heads=width // 64)
    with torch.device("meta"):
        model = transformers.CLIPTextModel(config)
    walked = _kohya_walk(model, {"CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"})
    prefix = {"te": "text_encoder.", "te1": "text_encoder.", "te2": "text_encoder_2."}[part]
    # transformers 5 drops `text_model.` from CLIPTextModel's own names; files on the Hub keep it
    expected = {(prefix + (n if n.startswith("text_model.") else "text_model." + n), i, o, k, ker)
                for n, i, o, k, ker in walked}
    ours = {(m.name, m.in_features, m.out_features, m.kind, m.kernel)
            for m in lora_modules(family, style="diffusers", parts=(part,))}
    assert ours == expected

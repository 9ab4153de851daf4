"""The key-name mapper: every layer of real SD1.5/SD2/SDXL models, both spellings, both directions."""

from __future__ import annotations

import pytest

from catalog.detect.kohya_names import (
    TE1, TE2, UNET, KeyName, diffusers_key, diffusers_to_ldm, kohya_key, ldm_to_diffusers, parse_key,
)
from lutnav.sample_loras import lora_modules
from tests.sdconfigs import CLIP_BIGG, CLIP_L, UNETS


def _layers(model) -> list[str]:
    import torch

    return [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]


def _meta_unet(family: str):
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel(**UNETS[family])


def _meta_clip(config: dict, projection: bool = False):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    with torch.device("meta"):
        return cls(CLIPTextConfig(**config))


# --- fast: the generated layout lists --------------------------------------------------------


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("conv", [False, True])
def test_kohya_and_diffusers_spellings_name_the_same_layers(family, conv):
    kohya = lora_modules(family, style="kohya", conv=conv)
    diffusers = lora_modules(family, style="diffusers", conv=conv)
    for k, d in zip(kohya, diffusers, strict=True):
        a = parse_key(k.name + ".lora_down.weight")
        b = parse_key(d.name + ".lora_A.weight")
        assert a is not None and b is not None, (k.name, d.name)
        assert a.module == b.module
        assert (a.role, b.role) == ("down", "down")
        assert kohya_key(b, family=family) == k.name + ".lora_down.weight"
        assert diffusers_key(a) == d.name + ".lora_A.weight"


def test_sdxl_kohya_uses_ldm_blocks_and_both_block_spellings_parse():
    ldm = lora_modules("sdxl", style="kohya")
    plain = lora_modules("sdxl", style="kohya", blocks="diffusers")
    assert any("input_blocks_4_1" in m.name for m in ldm)
    for a, b in zip(ldm, plain, strict=True):
        ka, kb = parse_key(a.name + ".alpha"), parse_key(b.name + ".alpha")
        assert ka.module == kb.module and ka.role == "alpha"
        assert kohya_key(kb, family="sdxl") == a.name + ".alpha"
        assert kohya_key(ka, family="sdxl", ldm=False) == b.name + ".alpha"
    assert {parse_key(m.name + ".alpha").style for m in ldm if m.name.startswith("lora_unet")} == {"kohya-ldm"}


@pytest.mark.parametrize("key, part, path, role", [
    ("lora_te_text_model_encoder_layers_11_mlp_fc2.lora_up.weight", TE1,
     "text_model.encoder.layers.11.mlp.fc2", "up"),
    ("lora_te1_text_model_encoder_layers_0_self_attn_out_proj.alpha", TE1,
     "text_model.encoder.layers.0.self_attn.out_proj", "alpha"),
    ("text_encoder_2.encoder.layers.3.self_attn.k_proj.lora_B.weight", TE2,  # transformers 5 spelling
     "text_model.encoder.layers.3.self_attn.k_proj", "up"),
    ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight", TE1,
     "text_model.encoder.layers.0.self_attn.q_proj", "down"),
    ("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight", UNET,
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", "up"),
    ("unet.up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.lora.down.weight", UNET,
     "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k", "down"),
    ("base_model.model.mid_block.attentions.0.proj_out.lora_A.default.weight", UNET,
     "mid_block.attentions.0.proj_out", "down"),
    ("lora_unet_output_blocks_2_1_conv.lora_down.weight", UNET, "up_blocks.0.upsamplers.0.conv", "down"),
    ("lora_unet_input_blocks_3_0_op.lora_down.weight", UNET, "down_blocks.0.downsamplers.0.conv", "down"),
    ("lora_unet_middle_block_2_skip_connection.alpha", UNET, "mid_block.resnets.1.conv_shortcut", "alpha"),
    ("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj.hada_w1_a", UNET,
     "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj", "hada_w1_a"),
])
def test_parse_key_reads_every_writer_spelling(key, part, path, role):
    name = parse_key(key)
    assert name == KeyName(part, path, role, name.style)


@pytest.mark.parametrize("key", [
    "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",  # Flux, kohya names
    "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight",  # Flux, diffusers names
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",  # an LLM adapter
    "layers.0.self_attn.q_proj.lora_A.weight",
    "lora_unet_input_blocks_99.alpha",
])
def test_parse_key_leaves_other_families_alone(key):
    assert parse_key(key) is None


def test_unflattening_is_unambiguous_for_look_alike_words():
    # proj vs proj_in, conv vs conv_shortcut/conv_in, to_out.0, linear_1 in the embeddings
    for path in ("down_blocks.0.resnets.1.conv_shortcut", "conv_in", "time_embedding.linear_1",
                 "add_embedding.linear_2", "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj",
                 "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0"):
        name = KeyName(UNET, path, "up", "diffusers")
        back = parse_key(kohya_key(name, family="sd1"))
        assert back.path == path
        assert parse_key(kohya_key(name, family="sdxl")).path == path


# --- slow: module lists from the diffusers / transformers model classes ------------------------


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_every_unet_layer_round_trips_through_both_spellings(family):
    layers = _layers(_meta_unet(family))
    assert len(layers) > 250  # every Linear and Conv2d: attention, resnet, sampler, embedding
    for path in layers:
        for role in ("down", "up", "alpha"):
            name = KeyName(UNET, path, role, "diffusers")
            for key in (kohya_key(name, family=family), kohya_key(name, family=family, ldm=True),
                        kohya_key(name, family=family, ldm=False)):
                back = parse_key(key)
                assert back is not None and (back.part, back.path, back.role) == (UNET, path, role), key
            if role != "alpha":
                assert parse_key(diffusers_key(name)).module == (UNET, path)


@pytest.mark.slow
@pytest.mark.parametrize("config, projection, part", [(CLIP_L, False, TE1), (CLIP_BIGG, True, TE2)])
def test_every_text_encoder_layer_round_trips(config, projection, part):
    model = _meta_clip(config, projection)
    layers = _layers(model)
    assert len(layers) >= 6 * config["num_hidden_layers"]
    for path in layers:
        name = KeyName(part, path, "down", "diffusers")
        expect = path if path.startswith(("text_model.", "text_projection")) else "text_model." + path
        for family in ("sd1", "sdxl"):
            back = parse_key(kohya_key(name, family=family))
            assert back.module == (part, expect)
        assert parse_key(diffusers_key(name)).module == (part, expect)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_layout_lists_name_real_layers_with_real_widths(family):
    import torch

    unet = _meta_unet(family)
    mods = dict(unet.named_modules())
    for m in lora_modules(family, style="diffusers", parts=("unet",), conv=True):
        layer = mods[parse_key(m.name + ".lora_A.weight").path]
        if isinstance(layer, torch.nn.Linear):
            assert (layer.in_features, layer.out_features) == (m.in_features, m.out_features), m.name
        else:
            assert (layer.in_channels, layer.out_channels) == (m.in_features, m.out_features), m.name


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_ldm_names_agree_with_diffusers_own_checkpoint_converter(family):
    """Write every UNet weight under our LDM name; diffusers' converter must give the names back."""
    import torch
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet = _meta_unet(family)
    expected = {k for k in unet.state_dict()}
    ldm = {}
    for key in expected:
        module, leaf = key.rsplit(".", 1)
        ldm_key = f"model.diffusion_model.{diffusers_to_ldm(module, family)}.{leaf}"
        assert ldm_to_diffusers(diffusers_to_ldm(module, family)) == module
        ldm[ldm_key] = torch.zeros(1)
    converted = convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    assert set(converted) == expected

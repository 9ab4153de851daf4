"""Every family in the registry, named from LoRAs on its real diffusers class, in every spelling.

The module names and widths come from the diffusers model classes built on the
meta device (tests/family_models.py); the assertions are what a user sees in
``ls``: the base model, and "unknown" naming the candidates where a file truly
fits two families.
"""

from __future__ import annotations

import pytest

from catalog.detect.classify import classify
from lutnav.sample_loras import Module, lora_tensors
from catalog.detect.registry import FAMILIES, IMAGE_FAMILIES

from .family_models import MODEL_IDS, MODELS, frozen, header, linears, lora_header

pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow  # builds ~20 diffusers classes on the meta device


def _layers(cls, config):
    return linears(cls, frozen(config))


@pytest.mark.parametrize(("family", "cls", "config"), MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("spelling", ["diffusers", "peft", "comfyui", "bare", "kohya-transformer"])
def test_every_family_is_named_in_every_spelling(family, cls, config, spelling):
    c = classify(lora_header(_layers(cls, config), spelling))
    assert c.base_model == family, c.warnings
    assert c.format == {"peft": "peft", "kohya-transformer": "kohya"}.get(spelling, "diffusers")
    assert c.parts == ["transformer"]
    assert c.evidence and not [w for w in c.warnings if "unknown" in w]


@pytest.mark.parametrize(("family", "cls", "config"), [m for m in MODELS if m[0] in (
    "flux", "qwen-image", "wan", "z-image", "hidream", "krea2", "anima")], ids=str)
@pytest.mark.parametrize("network", ["loha", "lokr"])
def test_loha_and_lokr_on_dit_models(family, cls, config, network):
    layers = [layer for layer in _layers(cls, config) if "blocks" in layer[0] or "layers" in layer[0]]
    c = classify(lora_header(layers, "kohya-transformer", network=network))
    assert (c.base_model, c.network) == (family, network), c.warnings


@pytest.mark.parametrize(("family", "cls"), [("flux", "FluxTransformer2DModel"),
                                              ("qwen-image", "QwenImageTransformer2DModel"),
                                              ("z-image", "ZImageTransformer2DModel")])
@pytest.mark.parametrize("magnitude", ["dora_scale", "lora_magnitude_vector", "magnitude"])
def test_dora_on_dit_models_is_named_and_reported(family, cls, magnitude):
    layers = _layers(cls, {})
    tensors = lora_tensors([Module(f"transformer.{n}", a, b, style="diffusers") for n, a, b in layers], 4, None)
    tensors |= {f"transformer.{n}.{magnitude}": ("BF16", (1, b)) for n, a, b in layers}
    c = classify(header(tensors))
    assert c.base_model == family, c.warnings
    assert any("DoRA" in w for w in c.warnings)


def test_a_file_that_fits_two_families_is_unknown_and_names_both():
    """Sana 600M and PixArt share 1152-wide attn1/attn2 in 28 blocks; only Sana's conv ff or PixArt's ff differ."""
    sana600 = _layers("SanaTransformer2DModel", dict(num_attention_heads=36, attention_head_dim=32, num_layers=28,
                                                      num_cross_attention_heads=16, cross_attention_head_dim=72,
                                                      cross_attention_dim=1152))
    attention = [layer for layer in sana600 if ".attn" in layer[0]]
    c = classify(lora_header(attention, "diffusers"))
    assert c.base_model == "unknown"
    assert any("pixart or sana" in w for w in c.warnings), c.warnings


def test_flux_attention_alone_names_its_look_alikes():
    flux = [layer for layer in _layers("FluxTransformer2DModel", {}) if ".attn." in layer[0]
            and layer[0].startswith("transformer_blocks")]
    c = classify(lora_header(flux, "diffusers"))
    assert c.base_model == "unknown"
    assert any("chroma" in w and "flux" in w for w in c.warnings), c.warnings


def test_registry_vocabulary_is_lower_case_with_hyphens():
    for name, fam in FAMILIES.items():
        assert name == fam.name and name == name.lower() and " " not in name and "_" not in name
        assert fam.versions and fam.label
    assert {"flux2", "qwen-image", "z-image", "wan", "hunyuan-video", "sd3"} <= IMAGE_FAMILIES


# ---- original (ComfyUI / kohya / trainer) names, checked against diffusers' own converters -------

_ANIMA_TO_ORIGINAL = {"transformer_blocks.": "blocks.", "attn1.to_q": "self_attn.q_proj", "attn1.to_k": "self_attn.k_proj",
                      "attn1.to_v": "self_attn.v_proj", "attn1.to_out.0": "self_attn.output_proj",
                      "attn2.to_q": "cross_attn.q_proj", "attn2.to_k": "cross_attn.k_proj",
                      "attn2.to_v": "cross_attn.v_proj", "attn2.to_out.0": "cross_attn.output_proj",
                      "ff.net.0.proj": "mlp.layer1", "ff.net.2": "mlp.layer2",
                      **{f"norm{n}.linear_{k}": f"adaln_modulation_{part}.{k}"
                         for n, part in ((1, "self_attn"), (2, "cross_attn"), (3, "mlp")) for k in (1, 2)}}
_KREA2_TO_ORIGINAL = {"transformer_blocks.": "blocks.", "text_fusion.": "txtfusion.", "attn.to_q": "attn.wq",
                      "attn.to_k": "attn.wk", "attn.to_v": "attn.wv", "attn.to_out.0": "attn.wo",
                      "attn.to_gate": "attn.gate", "ff.gate": "mlp.gate", "ff.up": "mlp.up", "ff.down": "mlp.down"}


def _renamed(layers, table):
    out = []
    for name, a, b in layers:
        if "blocks." not in name:
            continue
        for new, old in table.items():
            name = name.replace(new, old)
        out.append((name, a, b))
    return out


@pytest.mark.parametrize(("family", "cls", "config", "table", "prefix", "convert"), [
    ("anima", "CosmosTransformer3DModel", dict(num_attention_heads=16, attention_head_dim=128, num_layers=28),
     _ANIMA_TO_ORIGINAL, "diffusion_model.", "_convert_non_diffusers_anima_lora_to_diffusers"),
    ("krea2", "Krea2Transformer2DModel", {}, _KREA2_TO_ORIGINAL, "base_model.model.",
     "_convert_non_diffusers_krea2_lora_to_diffusers"),
    ("krea2", "Krea2Transformer2DModel", {}, _KREA2_TO_ORIGINAL, "diffusion_model.",
     "_convert_non_diffusers_krea2_lora_to_diffusers"),
])
def test_original_names_that_diffusers_converts_back(family, cls, config, table, prefix, convert):
    from diffusers.loaders import lora_conversion_utils

    layers = _layers(cls, config)
    original = _renamed(layers, table)
    tensors = lora_tensors([Module(prefix + n, a, b, style="peft") for n, a, b in original], 4, None)
    back = getattr(lora_conversion_utils, convert)(dict.fromkeys(tensors, 0))
    expected = {f"transformer.{n}.lora_{ab}.weight" for n, _, _ in layers if "blocks." in n for ab in "AB"}
    assert set(back) == expected  # the names are the ones diffusers' converter reads
    c = classify(header(tensors))
    assert c.base_model == family, c.warnings


def test_kohya_flux_with_clip_l_and_t5_is_flux():
    """The transformer blocks decide; CLIP-L + T5 (numbered te1/te2 by kohya, te1/te3 by others) only corroborate."""
    from lutnav.sample_loras import lora_modules

    flux = lora_modules("flux", parts=("unet", "te"))
    for t5_prefix in ("lora_te2_", "lora_te3_"):
        t5 = [Module(f"{t5_prefix}encoder_block_{n}_layer_0_SelfAttention_{p}", 4096, 4096)
              for n in range(24) for p in "qkvo"]
        c = classify(header({k: v for k, v in lora_tensors(flux + t5, 4, None).items()}))
        assert c.base_model == "flux", c.warnings
        assert set(c.parts) >= {"transformer", "te1"}


def test_text_encoders_that_contradict_the_blocks_are_overruled_and_said():
    from lutnav.sample_loras import lora_modules

    flux = lora_modules("flux", parts=("unet",))
    sdxl_te = lora_modules("sdxl", parts=("te",))
    c = classify(header(lora_tensors(flux + sdxl_te, 4, None)))
    assert c.base_model == "flux"
    assert any("transformer blocks decide" in w for w in c.warnings)


def test_chroma_original_names_with_the_distilled_guidance_layer():
    h = 3072
    mods = [Module(f"diffusion_model.double_blocks.{i}.{s}_attn.qkv", h, 3 * h, style="diffusers")
            for i in range(19) for s in ("img", "txt")]
    mods += [Module(f"diffusion_model.single_blocks.{i}.linear1", h, 7 * h, style="diffusers") for i in range(38)]
    mods += [Module(f"diffusion_model.distilled_guidance_layer.layers.{i}.in_layer", 5120, 5120, style="diffusers")
             for i in range(5)]
    c = classify(header(lora_tensors(mods, 4, None)))
    assert c.base_model == "chroma", c.warnings


def test_readme_documents_every_family_name():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    for name, fam in FAMILIES.items():
        assert f"| `{name}` | {fam.versions} |" in readme, name

"""LLM adapters on every architecture, embeddings in every layout, full models of every kind, SDXL variants.

LLM layer names and widths come from transformers' own model classes, full
models' keys from diffusers/transformers classes, all built on the meta device.
"""

from __future__ import annotations

import pytest

from catalog.detect.classify import classify
from lutnav.sample_loras import Module, lora_modules, lora_tensors

from .family_models import header

pytestmark = pytest.mark.slow


def _llm_adapter(config_cls: str, **config):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(getattr(transformers, config_cls)(**config))
    mods = []
    for name, m in model.named_modules():
        if name.startswith("lm_head") or not name:
            continue
        if isinstance(m, torch.nn.Linear):
            mods.append(Module(f"base_model.model.{name}", m.in_features, m.out_features, style="peft"))
        elif isinstance(m, Conv1D):  # GPT-2 keeps its weights (in, out)
            mods.append(Module(f"base_model.model.{name}", m.weight.shape[0], m.nf, style="peft"))
    return header(lora_tensors(mods, 8, None))


@pytest.mark.parametrize(("config_cls", "config", "base_name", "arch"), [
    ("LlamaConfig", {}, None, "llama"),  # Llama 2 7B widths
    ("LlamaConfig", {}, "meta-llama/Llama-2-7b-hf", "llama"),
    ("MistralConfig", {}, "mistralai/Mistral-7B-v0.1", "mistral"),
    ("MistralConfig", {}, None, None),  # Mistral 7B and Llama 3 8B are one shape: left open
    ("Qwen2Config", dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                         num_hidden_layers=4), None, "qwen2"),
    ("Qwen2Config", {}, "Qwen/Qwen2.5-7B-Instruct", "qwen2"),
    ("GemmaConfig", {}, None, "gemma"),
    ("GPT2Config", {}, None, "gpt2"),
    ("GPT2Config", {}, "meta-llama/Llama-2-7b-hf", "gpt2"),  # a config that disagrees loses to the layers
    ("GPTNeoXConfig", dict(num_hidden_layers=4), None, "gpt-neox"),
    ("Phi3Config", dict(num_hidden_layers=4), None, "phi3"),
    ("OPTConfig", {}, None, "opt"),
])
def test_llm_adapters_on_any_architecture(config_cls, config, base_name, arch):
    h = _llm_adapter(config_cls, **config)
    adapter_config = {"r": 8, "lora_alpha": 16, **({"base_model_name_or_path": base_name} if base_name else {})}
    c = classify(h, adapter_config)
    assert (c.base_model, c.arch, c.format) == ("llm", arch, "peft"), (c.evidence, c.warnings)
    assert c.parts == ["llm"]
    assert "hidden" in c.evidence
    if config_cls == "GPT2Config" and base_name:
        assert any("layers win" in w for w in c.warnings)


@pytest.mark.parametrize(("tensors", "base"), [
    ({"<cat-toy>": ("F32", (768,))}, "sd1"),
    ({"<my-style>": ("F16", (4, 1024))}, "sd2"),
    ({"string_to_param.*": ("F32", (2, 768))}, "sd1"),
    ({"emb_params": ("F32", (3, 768))}, "sd1"),
    ({"clip_l": ("F16", (2, 768)), "clip_g": ("F16", (2, 1280))}, "sdxl"),
])
def test_embeddings_in_every_layout(tensors, base):
    c = classify(header(tensors))
    assert (c.format, c.base_model) == ("embedding", base), c.warnings


def _state_header(model, prefix: str = ""):
    return header({prefix + k: ("F16", tuple(v.shape)) for k, v in model.state_dict().items()})


def _meta(cls_path: str, **config):
    torch = pytest.importorskip("torch")
    module, _, name = cls_path.rpartition(".")
    lib = pytest.importorskip(module)
    with torch.device("meta"):
        return getattr(lib, name)(**config)


@pytest.mark.parametrize(("cls", "config", "kind", "base"), [
    ("diffusers.ControlNetModel", dict(cross_attention_dim=768), "controlnet", "sd1"),
    ("diffusers.AutoencoderKL", {}, "vae", "unknown"),  # SD1, SD2 and SDXL share the 4-channel VAE
    ("diffusers.AutoencoderKLFlux2", {}, "vae", "flux2"),
    ("diffusers.FluxTransformer2DModel", {}, "transformer", "flux"),
    ("diffusers.ZImageTransformer2DModel", {}, "transformer", "z-image"),
    ("diffusers.SD3Transformer2DModel", dict(num_layers=24, num_attention_heads=24, caption_projection_dim=1536,
                                             pos_embed_max_size=192), "transformer", "sd3"),
    ("diffusers.UNet2DConditionModel", dict(cross_attention_dim=768), "unet", "sd1"),
    ("transformers.CLIPTextModel", dict(config=None), "text-encoder", "unknown"),
])
def test_full_models_are_named_with_their_kind_and_never_called_loras(cls, config, kind, base):
    if cls == "transformers.CLIPTextModel":
        transformers = pytest.importorskip("transformers")
        config = dict(config=transformers.CLIPTextConfig())
    c = classify(_state_header(_meta(cls, **config)))
    assert (c.format, c.model_kind, c.base_model) == ("checkpoint", kind, base), (c.evidence, c.warnings)
    assert c.network is None and c.rank is None
    assert any("not a LoRA" in w for w in c.warnings)
    if base == "unknown":
        assert any("unknown" in w for w in c.warnings)


def test_ip_adapter_is_named_by_its_cross_attention_width():
    tensors = {"image_proj.proj.weight": ("F16", (3072, 1024)), "image_proj.norm.weight": ("F16", (768,))}
    for n in range(1, 32, 2):
        tensors[f"ip_adapter.{n}.to_k_ip.weight"] = ("F16", (320, 768))
        tensors[f"ip_adapter.{n}.to_v_ip.weight"] = ("F16", (320, 768))
    c = classify(header(tensors))
    assert (c.format, c.model_kind, c.base_model) == ("checkpoint", "ip-adapter", "sd1"), c.warnings


@pytest.mark.parametrize(("meta", "variant"), [
    ({"ss_sd_model_name": "ponyDiffusionV6XL_v6StartWithThisOne.safetensors"}, "pony"),
    ({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora", "ss_sd_model_name": "illustriousXL_v01"},
     "illustrious"),
    ({"ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": "noobaiXLNAIXL_vPred10"}, "noobai"),
    ({}, None),
])
def test_sdxl_variants_from_metadata_when_the_shapes_agree(tmp_path, meta, variant):
    from .test_classify import classify_file, lora_file

    sdxl = lora_tensors(lora_modules("sdxl", parts=("unet",)), 4, 4.0)
    c = classify_file(lora_file(tmp_path, sdxl, alpha=4.0, metadata=meta))
    assert (c.base_model, c.base_variant) == ("sdxl", variant)
    sd1 = classify_file(lora_file(tmp_path, lora_tensors(lora_modules("sd1"), 4, 4.0), alpha=4.0, metadata=meta))
    assert sd1.base_variant is None  # a claim never names a variant the shapes contradict


def _original_checkpoint(prefix: str, modules, extra: dict | None = None):
    """A full model in its original names: each adapted layer's weight (out, in), plus norms and biases."""

    tensors = {}
    for name, a, b in modules:
        tensors[f"{prefix}{name}.weight"] = ("BF16", (b, a))
        tensors[f"{prefix}{name}.bias"] = ("BF16", (b,))
    return header(tensors | (extra or {}))


def _flat(family: str):
    from catalog.detect.dit_keys import dotted

    return [(dotted(m.name.removeprefix("lora_unet_")), m.in_features, m.out_features)
            for m in lora_modules(family, parts=("unet",))]


@pytest.mark.parametrize(("label", "make", "kind", "base"), [
    ("Flux all-in-one (ComfyUI)", lambda: _original_checkpoint("model.diffusion_model.", _flat("flux"), {
        "vae.decoder.conv_in.weight": ("BF16", (512, 16, 3, 3)),
        "text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight": ("BF16", (768, 768)),
        "model.diffusion_model.double_blocks.0.img_attn.norm.query_norm.scale": ("BF16", (128,))}),
     "checkpoint", "flux"),
    ("Flux dev transformer (BFL release)", lambda: _original_checkpoint("", _flat("flux")), "transformer", "flux"),
    ("SD3.5 medium original", lambda: _original_checkpoint("model.diffusion_model.", [
        (f"joint_blocks.{i}.{side}.{leaf}", a * 1536, b * 1536) for i in range(24)
        for side in ("x_block", "context_block")
        for leaf, a, b in (("attn.qkv", 1, 3), ("attn.proj", 1, 1), ("mlp.fc1", 1, 4), ("mlp.fc2", 4, 1))], {
        "first_stage_model.decoder.conv_in.weight": ("F16", (512, 16, 3, 3))}), "checkpoint", "sd3"),
    ("Z-Image (ComfyUI names)", lambda: _original_checkpoint("", [
        (f"layers.{i}.{leaf}", a, b) for i in range(30) for leaf, a, b in (
            ("attention.qkv", 3840, 11520), ("attention.out", 3840, 3840), ("feed_forward.w1", 3840, 10240),
            ("feed_forward.w2", 10240, 3840), ("feed_forward.w3", 3840, 10240), ("adaLN_modulation.0", 256, 15360))],
        {"layers.0.attention.q_norm.weight": ("BF16", (128,))}), "transformer", "z-image"),
    ("Anima (net. prefix)", lambda: _original_checkpoint("net.", [
        (f"blocks.{i}.{leaf}", a, b) for i in range(28) for leaf, a, b in (
            ("self_attn.q_proj", 2048, 2048), ("cross_attn.k_proj", 1024, 2048), ("mlp.layer1", 2048, 8192),
            ("mlp.layer2", 8192, 2048), ("adaln_modulation_self_attn.1", 2048, 256),
            ("adaln_modulation_self_attn.2", 256, 6144))]), "transformer", "anima"),
])
def test_full_dit_models_in_original_names(label, make, kind, base):
    c = classify(make())
    assert (c.format, c.model_kind, c.base_model) == ("checkpoint", kind, base), (label, c.evidence, c.warnings)

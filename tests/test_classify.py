"""Classifying LoRA files from their headers: real key layouts, real widths, real files."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest

from catalog.detect.classify import classify
from catalog.detect.metadata_claims import top_tags
from catalog.files.header import read_header
from lutnav.sample_loras import Module, lora_modules, lora_tensors
from catalog.files.safetensors_writer import encode_floats, write_safetensors

_counter = iter(range(10**6))


def lora_file(folder: Path, tensors: dict, *, alpha: float | list | None = None, metadata: dict | None = None,
              name: str | None = None) -> Path:
    """Write ``tensors`` (key -> (dtype, shape)) as a sparse safetensors file; ``.alpha`` keys get
    ``alpha`` (one value, or one per alpha key in order)."""
    path = folder / (name or f"lora{next(_counter)}.safetensors")
    alphas = iter(alpha if isinstance(alpha, list) else [])
    spec = {}
    for key, (dtype, shape) in tensors.items():
        data = None
        if key.endswith(".alpha"):
            value = next(alphas) if isinstance(alpha, list) else alpha
            data = struct.pack("<q", int(value)) if dtype == "I64" else encode_floats([value], dtype)
        spec[key] = (dtype, shape, data)
    write_safetensors(path, spec, metadata or {}, sparse=True, fsync=False)
    return path


def classify_file(path: Path, adapter_config: dict | None = None):
    return classify(read_header(path), adapter_config)


def family_file(folder: Path, family: str, *, rank: int = 4, alpha: float = 2.0, **kwargs) -> Path:
    style = kwargs.pop("style", "kohya")
    network = kwargs.pop("network", "lora")
    metadata = kwargs.pop("metadata", None)
    mods = lora_modules(family, style=style, **kwargs)
    return lora_file(folder, lora_tensors(mods, rank, alpha, network=network), alpha=alpha, metadata=metadata)


def blocks(fmt: str, count: int, layers: dict[str, tuple[int, int]], *, start: int = 0) -> list[Module]:
    """Modules ``fmt.format(i, layer)`` for blocks start..count-1."""
    return [Module(fmt.format(i, leaf), a, b) for i in range(start, count) for leaf, (a, b) in layers.items()]


# ---- the families and layouts a library holds -------------------------------------------------

@pytest.mark.parametrize(("label", "kwargs", "fmt", "network", "base", "parts"), [
    ("kohya sd1", dict(family="sd1"), "kohya", "lora", "sd1", ["te", "unet"]),
    ("kohya sd2", dict(family="sd2"), "kohya", "lora", "sd2", ["te", "unet"]),
    ("kohya sdxl (LDM names)", dict(family="sdxl"), "kohya", "lora", "sdxl", ["te1", "te2", "unet"]),
    ("kohya sdxl, diffusers block names", dict(family="sdxl", blocks="diffusers"), "kohya", "lora", "sdxl",
     ["te1", "te2", "unet"]),
    ("kohya sd1, LDM names", dict(family="sd1", blocks="ldm"), "kohya", "lora", "sd1", ["te", "unet"]),
    ("kohya sd2, LDM names, unet only", dict(family="sd2", blocks="ldm", parts=("unet",)), "kohya", "lora",
     "sd2", ["unet"]),
    ("kohya flux", dict(family="flux", parts=("unet",)), "kohya", "lora", "flux", ["transformer"]),
    ("kohya flux + clip", dict(family="flux"), "kohya", "lora", "flux", ["te1", "transformer"]),
    ("diffusers sd1", dict(family="sd1", style="diffusers"), "diffusers", "lora", "sd1", ["te", "unet"]),
    ("diffusers sdxl", dict(family="sdxl", style="diffusers"), "diffusers", "lora", "sdxl",
     ["te1", "te2", "unet"]),
    ("diffusers flux", dict(family="flux", style="diffusers", parts=("unet",)), "diffusers", "lora", "flux",
     ["transformer"]),
    ("locon sd1", dict(family="sd1", conv=True), "kohya", "locon", "sd1", ["te", "unet"]),
    ("locon sdxl", dict(family="sdxl", conv=True), "kohya", "locon", "sdxl", ["te1", "te2", "unet"]),
    ("loha sdxl", dict(family="sdxl", network="loha"), "lycoris", "loha", "sdxl", ["te1", "te2", "unet"]),
    ("lokr sdxl", dict(family="sdxl", network="lokr"), "lycoris", "lokr", "sdxl", ["te1", "te2", "unet"]),
    ("loha sd1 unet", dict(family="sd1", network="loha", parts=("unet",)), "lycoris", "loha", "sd1", ["unet"]),
    ("te-only sd1", dict(family="sd1", parts=("te",)), "kohya", "lora", "sd1", ["te"]),
    ("te-only sd2", dict(family="sd2", parts=("te",)), "kohya", "lora", "sd2", ["te"]),
    ("te-only sdxl", dict(family="sdxl", parts=("te",)), "kohya", "lora", "sdxl", ["te1", "te2"]),
])
def test_family_layouts(tmp_path, label, kwargs, fmt, network, base, parts):
    c = classify_file(family_file(tmp_path, **kwargs))
    assert (c.format, c.network, c.base_model, c.parts) == (fmt, network, base, parts), c.warnings
    assert c.rank == 4
    assert c.evidence  # says what decided it
    assert c.tensor_count > 0 and c.dtype == "F16"


def test_evidence_names_the_width_that_decided(tmp_path):
    sd1 = classify_file(family_file(tmp_path, "sd1", parts=("unet",)))
    sd2 = classify_file(family_file(tmp_path, "sd2", parts=("unet",)))
    sdxl = classify_file(family_file(tmp_path, "sdxl", parts=("unet",)))
    assert "attn2.to_k input 768" in sd1.evidence
    assert "attn2.to_k input 1024" in sd2.evidence
    assert "attn2.to_k input 2048" in sdxl.evidence
    assert not sd1.warnings and not sd2.warnings and not sdxl.warnings


def test_peft_llama_adapter(tmp_path):
    tensors = lora_tensors(lora_modules("llm", style="peft-llm"), 16, None)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32,
              "base_model_name_or_path": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}
    c = classify_file(lora_file(tmp_path, tensors), config)
    assert (c.format, c.base_model, c.parts, c.rank) == ("peft", "llm", ["llm"], 16)
    assert (c.alpha, c.alpha_source) == (32.0, "adapter_config.json")
    assert c.base_model_name == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert "hidden 2048" in c.evidence
    assert not c.warnings


def test_peft_keys_with_adapter_name_and_alpha_pattern(tmp_path):
    tensors = {k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default."): v
               for k, v in lora_tensors(lora_modules("llm", style="peft-llm"), 8, None).items()}
    config = {"r": 8, "lora_alpha": 16, "alpha_pattern": {"q_proj": 32}}
    c = classify_file(lora_file(tmp_path, tensors), config)
    assert (c.format, c.base_model, c.rank, c.alpha) == ("peft", "llm", 8, 16.0)
    assert any("alpha_pattern" in w for w in c.warnings)


def test_peft_config_rank_mismatch_is_reported(tmp_path):
    tensors = lora_tensors(lora_modules("llm", style="peft-llm"), 8, None)
    c = classify_file(lora_file(tmp_path, tensors), {"r": 16, "lora_alpha": 16})
    assert any("r=16" in w and "rank 8" in w for w in c.warnings)


# ---- alpha -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["F16", "BF16", "F32"])
def test_kohya_alpha_is_read_from_the_tensor_bytes(tmp_path, dtype):
    tensors = lora_tensors(lora_modules("sd1"), 8, 4.0, dtype)
    c = classify_file(lora_file(tmp_path, tensors, alpha=4.0, metadata={"ss_network_alpha": "4.0"}))
    assert (c.rank, c.alpha, c.alpha_source, c.dtype) == (8, 4.0, "tensor", dtype)
    assert not c.warnings


def test_tensor_alpha_wins_over_ss_network_alpha(tmp_path):
    tensors = lora_tensors(lora_modules("sd1", parts=("unet",)), 8, 4.0)
    c = classify_file(lora_file(tmp_path, tensors, alpha=4.0,
                                metadata={"ss_network_alpha": "8", "ss_network_dim": "16"}))
    assert c.alpha == 4.0
    assert any("ss_network_alpha says 8" in w and "4" in w for w in c.warnings)
    assert any("ss_network_dim says 16" in w for w in c.warnings)


def test_alpha_varying_per_module_is_reported(tmp_path):
    mods = lora_modules("sd1", parts=("unet",))
    tensors = lora_tensors(mods, 8, 1.0)
    n = sum(1 for k in tensors if k.endswith(".alpha"))
    values = [8.0 if i % 2 else 4.0 for i in range(n)]
    values[0] = 4.0
    c = classify_file(lora_file(tmp_path, tensors, alpha=values))
    assert c.alpha in (4.0, 8.0)
    assert any("alpha varies per module" in w for w in c.warnings)


def test_integer_alpha_equal_to_rank_is_flagged(tmp_path):
    tensors = {k: ("I64", ()) if k.endswith(".alpha") else v
               for k, v in lora_tensors(lora_modules("sd1", parts=("unet",)), 8, 8).items()}
    c = classify_file(lora_file(tmp_path, tensors, alpha=8))
    assert (c.alpha, c.alpha_source) == (8.0, "tensor")
    assert any("integer equal to the rank" in w for w in c.warnings)


def test_locon_conv_rank_and_alpha_kept_apart(tmp_path):
    mods = lora_modules("sd1", parts=("unet",), conv=True)
    tensors = lora_tensors(mods, 16, 8.0, conv_rank=4)
    conv_names = {m.name for m in mods if m.kernel == (3, 3)}
    alphas = [1.0 if k[: -len(".alpha")] in conv_names else 8.0 for k in tensors if k.endswith(".alpha")]
    c = classify_file(lora_file(tmp_path, tensors, alpha=alphas))
    assert (c.network, c.has_conv, c.rank, c.conv_rank) == ("locon", True, 16, 4)
    assert (c.alpha, c.conv_alpha) == (8.0, 1.0)
    assert not c.warnings


def test_missing_alpha_tensors_mean_alpha_equals_rank(tmp_path):
    c = classify_file(lora_file(tmp_path, lora_tensors(lora_modules("sd1"), 8, None)))
    assert c.alpha is None
    assert c.alpha_source == "missing: loaders assume alpha = rank"


def test_diffusers_alpha_from_lora_adapter_metadata(tmp_path):
    tensors = lora_tensors(lora_modules("sdxl", style="diffusers", parts=("unet",)), 8, None)
    meta = {"lora_adapter_metadata": orjson.dumps({"unet.r": 8, "unet.lora_alpha": 16}).decode(),
            "format": "pt"}
    with_meta = classify_file(lora_file(tmp_path, tensors, metadata=meta))
    assert (with_meta.alpha, with_meta.alpha_source) == (16.0, "lora_adapter_metadata")
    without = classify_file(lora_file(tmp_path, tensors, metadata={"format": "pt"}))
    assert without.alpha is None
    assert "alpha = rank" in without.alpha_source
    assert without.base_model == with_meta.base_model == "sdxl"


def test_diffusers_metadata_with_different_component_alphas(tmp_path):
    tensors = lora_tensors(lora_modules("sd1", style="diffusers"), 4, None)
    meta = {"lora_adapter_metadata": orjson.dumps({"unet.lora_alpha": 4, "text_encoder.lora_alpha": 8}).decode()}
    c = classify_file(lora_file(tmp_path, tensors, metadata=meta))
    assert c.alpha == 4.0
    assert any("different alphas" in w for w in c.warnings)


# ---- rank --------------------------------------------------------------------------------------

def test_rank_is_the_most_common_and_variation_is_named(tmp_path):
    mods = lora_modules("sd1", parts=("unet",))
    tensors = lora_tensors(mods[:150], 16, 8.0) | lora_tensors(mods[150:], 4, 8.0)
    c = classify_file(lora_file(tmp_path, tensors, alpha=8.0))
    assert c.rank == 16
    assert any("rank varies per module: 4-16" in w for w in c.warnings)


# ---- the rest of what sits in a LoRA folder ----------------------------------------------------

def test_textual_inversion_embeddings(tmp_path):
    sd1 = classify_file(lora_file(tmp_path, {"emb_params": ("F32", (4, 768))}))
    assert (sd1.format, sd1.base_model, sd1.rank) == ("embedding", "sd1", None)
    sdxl = classify_file(lora_file(tmp_path, {"clip_l": ("F16", (2, 768)), "clip_g": ("F16", (2, 1280))}))
    assert (sdxl.format, sdxl.base_model) == ("embedding", "sdxl")


def test_full_checkpoint_is_flagged_and_still_placed(tmp_path):
    tensors = {}
    for m in lora_modules("sd1", parts=("unet",), blocks="ldm")[:40]:
        path = m.name.removeprefix("lora_unet_")
        tensors[f"model.diffusion_model.{path}.weight"] = (
            "F16", (m.out_features, m.in_features) + ((1, 1) if m.kind == "conv" else ()))
    c = classify_file(lora_file(tmp_path, tensors))
    assert c.format == "checkpoint"
    assert c.base_model == "sd1"
    assert any("not a LoRA" in w for w in c.warnings)
    assert c.rank is None and c.alpha is None


def test_random_tensors_are_unknown(tmp_path):
    c = classify_file(lora_file(tmp_path, {"weights": ("F32", (3, 5)), "bias": ("F32", (5,))}))
    assert (c.format, c.base_model, c.rank) == ("unknown", "unknown", None)
    assert any("no LoRA tensor pairs" in w for w in c.warnings)


def test_dora_extras_are_reported(tmp_path):
    mods = lora_modules("sd1", parts=("unet",))
    tensors = lora_tensors(mods, 4, 4.0) | {f"{m.name}.dora_scale": ("F16", (1, m.in_features)) for m in mods[:10]}
    c = classify_file(lora_file(tmp_path, tensors, alpha=4.0))
    assert c.base_model == "sd1"
    assert any("DoRA" in w for w in c.warnings)


# ---- metadata that lies, evidence that conflicts or is missing ---------------------------------

@pytest.mark.parametrize("meta", [
    {"ss_base_model_version": "sdxl_base_v1-0"},
    {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"},
])
def test_lying_metadata_loses_to_shapes(tmp_path, meta):
    c = classify_file(family_file(tmp_path, "sd1", metadata=meta))
    assert c.base_model == "sd1"
    key = next(iter(meta))
    assert any(key in w and "sdxl" in w and "shapes win" in w for w in c.warnings)


def test_conflicting_shapes_give_unknown(tmp_path):
    unet = lora_tensors(lora_modules("sd1", parts=("unet",)), 4, 2.0)
    tes = lora_tensors(lora_modules("sdxl", parts=("te",)), 4, 2.0)
    c = classify_file(lora_file(tmp_path, unet | tes, alpha=2.0))
    assert c.base_model == "unknown"
    assert any("disagree" in w and "sd1" in w and "sdxl" in w for w in c.warnings)


def test_mixed_cross_attention_widths_give_unknown(tmp_path):
    sd1 = lora_modules("sd1", parts=("unet",))
    sdxl_cross = [m for m in lora_modules("sdxl", parts=("unet",), blocks="diffusers") if "attn2" in m.name][:8]
    renamed = [Module(m.name.replace("transformer_blocks_", "transformer_blocks_0"), m.in_features,
                      m.out_features) for m in sdxl_cross]
    c = classify_file(lora_file(tmp_path, lora_tensors(sd1 + renamed, 4, 2.0), alpha=2.0))
    assert c.base_model == "unknown"
    assert any("768" in w and "2048" in w for w in c.warnings)


def test_missing_evidence_gives_unknown_and_metadata_may_pick_among_what_shapes_allow(tmp_path):
    self_attn = [m for m in lora_modules("sd1", parts=("unet",)) if "attn1" in m.name]
    tensors = lora_tensors(self_attn, 4, 2.0)
    bare = classify_file(lora_file(tmp_path, tensors, alpha=2.0))
    assert bare.base_model == "unknown"
    assert any("sd1 or sd2" in w for w in bare.warnings)
    claimed = classify_file(lora_file(tmp_path, tensors, alpha=2.0, metadata={"ss_base_model_version": "sd_v1"}))
    assert claimed.base_model == "sd1"
    assert "ss_base_model_version" in claimed.evidence
    wrong = classify_file(lora_file(tmp_path, tensors, alpha=2.0, metadata={"ss_base_model_version": "flux1"}))
    assert wrong.base_model == "unknown"  # a claim outside what the shapes allow picks nothing


def test_clip_l_text_encoder_alone_is_ambiguous(tmp_path):
    te1 = [Module(m.name.replace("lora_te_", "lora_te1_"), m.in_features, m.out_features)
           for m in lora_modules("sd1", parts=("te",))]
    c = classify_file(lora_file(tmp_path, lora_tensors(te1, 4, 4.0), alpha=4.0))
    assert c.base_model == "unknown"
    assert c.parts == ["te1"]


def test_old_diffusers_attention_processor_spelling(tmp_path):
    tensors = {}
    for m in lora_modules("sd1", style="diffusers", parts=("unet",)):
        if ".attn" not in m.name:
            continue
        head, _, leaf = m.name.rpartition(".")
        if leaf == "0":  # to_out.0
            head, leaf = head.rsplit(".", 1)[0], "to_out"
        name = f"{head}.processor.{leaf}_lora"
        tensors[f"{name}.down.weight"] = ("F32", (4, m.in_features))
        tensors[f"{name}.up.weight"] = ("F32", (m.out_features, 4))
    c = classify_file(lora_file(tmp_path, tensors))
    assert (c.format, c.base_model, c.rank) == ("diffusers", "sd1", 4)


# ---- transformer families: names real trainers write, with their widths -------------------------

FLUX_DOUBLE = {"img_attn_qkv": (3072, 9216), "img_attn_proj": (3072, 3072), "img_mlp_0": (3072, 12288),
               "img_mlp_2": (12288, 3072), "txt_attn_qkv": (3072, 9216)}


@pytest.mark.parametrize(("label", "modules", "base", "fmt"), [
    ("XLabs flux", blocks("double_blocks.{}.processor.{}", 19, {
        "qkv_lora1": (3072, 9216), "proj_lora1": (3072, 3072), "qkv_lora2": (3072, 9216)}), "flux", "diffusers"),
    ("ComfyUI flux", blocks("diffusion_model.double_blocks.{}.{}", 19, {
        "img_attn.qkv": (3072, 9216), "img_mlp.0": (3072, 12288), "img_mod.lin": (3072, 18432)}), "flux",
     "diffusers"),
    ("kohya flux, some single blocks only", blocks("lora_unet_single_blocks_{}_{}", 20, {
        "linear1": (3072, 21504), "linear2": (15360, 3072), "modulation_lin": (3072, 9216)}, start=7), "flux",
     "kohya"),
    ("musubi hunyuan video", blocks("lora_unet_double_blocks_{}_{}", 20, {
        "img_attn_qkv": (3072, 9216), "img_mlp_fc1": (3072, 12288), "img_mlp_fc2": (12288, 3072)})
     + blocks("lora_unet_single_blocks_{}_{}", 40, {"linear1": (3072, 21504)}), "hunyuan-video", "kohya"),
    ("flux.2 klein, kohya names", blocks("lora_unet_double_blocks_{}_{}", 5, {
        "img_attn_qkv": (3072, 9216), "img_mlp_0": (3072, 18432), "img_mlp_2": (9216, 3072)})
     + blocks("lora_unet_single_blocks_{}_{}", 20, {"linear1": (3072, 27648), "linear2": (12288, 3072)}),
     "flux2", "kohya"),
    ("flux.2 dev, diffusers", blocks("transformer.transformer_blocks.{}.{}", 8, {
        "attn.to_q": (6144, 6144), "ff.linear_in": (6144, 36864)})
     + blocks("transformer.single_transformer_blocks.{}.{}", 48, {"attn.to_qkv_mlp_proj": (6144, 55296)}),
     "flux2", "diffusers"),
    ("qwen-image", blocks("transformer.transformer_blocks.{}.{}", 60, {
        "attn.to_q": (3072, 3072), "attn.add_k_proj": (3072, 3072), "img_mlp.net.0.proj": (3072, 12288)}),
     "qwen-image", "diffusers"),
    ("wan 2.1 1.3B, musubi", blocks("lora_unet_blocks_{}_{}", 30, {
        "self_attn_q": (1536, 1536), "cross_attn_k": (1536, 1536), "ffn_0": (1536, 8960),
        "ffn_2": (8960, 1536)}), "wan", "kohya"),
    ("wan 14B, diffusers", blocks("transformer.blocks.{}.{}", 40, {
        "attn1.to_q": (5120, 5120), "attn2.to_k": (5120, 5120), "ffn.net.0.proj": (5120, 13824)}),
     "wan", "diffusers"),
    ("sd3 medium, kohya", blocks("lora_unet_joint_blocks_{}_{}", 24, {
        "x_block_attn_qkv": (1536, 4608), "context_block_attn_qkv": (1536, 4608),
        "x_block_mlp_fc1": (1536, 6144)}), "sd3", "kohya"),
    ("sd3.5 large, diffusers", blocks("transformer.transformer_blocks.{}.{}", 38, {
        "attn.to_q": (2432, 2432), "attn.add_k_proj": (2432, 2432), "ff_context.net.0.proj": (2432, 9728)}),
     "sd3", "diffusers"),
])
def test_transformer_families(tmp_path, label, modules, base, fmt):
    network_style = [Module(m.name, m.in_features, m.out_features,
                            style="kohya" if m.name.startswith("lora_") else "diffusers") for m in modules]
    tensors = lora_tensors(network_style, 16, 16.0)
    if "processor" in label:  # XLabs spells the pair .down/.up
        tensors = {k.replace(".lora_A.weight", ".down.weight").replace(".lora_B.weight", ".up.weight"): v
                   for k, v in tensors.items()}
    c = classify_file(lora_file(tmp_path, tensors, alpha=16.0))
    assert (c.base_model, c.format) == (base, fmt), c.warnings
    assert c.rank == 16
    assert c.parts == ["transformer"]


def test_flux_and_hunyuan_names_alone_do_not_decide(tmp_path):
    # attention only, on blocks both models have: the widths and names fit either
    tensors = lora_tensors(blocks("lora_unet_double_blocks_{}_{}", 10, {"img_attn_qkv": (3072, 9216),
                                                                         "img_attn_proj": (3072, 3072)}), 8, 8.0)
    c = classify_file(lora_file(tmp_path, tensors, alpha=8.0))
    assert c.base_model == "unknown"
    assert any("flux" in w and "hunyuan-video" in w for w in c.warnings)


def test_wrong_width_transformer_is_unknown(tmp_path):
    tensors = lora_tensors(blocks("lora_unet_double_blocks_{}_{}", 19, {"img_attn_qkv": (2048, 6144),
                                                                         "img_mlp_0": (2048, 8192)}), 8, 8.0)
    c = classify_file(lora_file(tmp_path, tensors, alpha=8.0))
    assert c.base_model == "unknown"
    assert any("no known family" in w for w in c.warnings)


# ---- card-like header fields -------------------------------------------------------------------

def test_header_fields_from_modelspec_and_kohya(tmp_path):
    meta = {
        "modelspec.title": "Ink Wash",
        "modelspec.trigger_phrase": "mo_shui, ink",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "ss_output_name": "ink_wash_v2",
        "ss_tag_frequency": orjson.dumps({"10_ink": {"ink": 30, " mountain": 12, "river": 12},
                                          "5_extra": {"mountain": 5, "boat": 1}}).decode(),
        "ss_resolution": "(512, 512)",
        "ss_network_module": "networks.lora",
        "ss_learning_rate": "1e-4",
        "ss_num_epochs": "10",
        "ss_network_args": orjson.dumps({"conv_dim": "4"}).decode(),
        "ss_seed": "None",
    }
    c = classify_file(family_file(tmp_path, "sd1", metadata=meta))
    f = c.header_fields
    assert f["title"] == "Ink Wash" and c.header_sources["title"] == "modelspec"
    assert f["trigger_words"] == ["mo_shui", "ink"]
    assert f["tags"][:3] == ["ink", "mountain", "river"] and c.header_sources["tags"] == "kohya ss_*"
    assert f["base_model_claim"] == "stable-diffusion-v1/lora"
    assert f["resolution"] == "512x512"
    assert f["training"]["learning_rate"] == pytest.approx(1e-4)
    assert f["training"]["num_epochs"] == 10 and f["training"]["network_args"] == {"conv_dim": "4"}
    assert "seed" not in f["training"]
    assert c.base_model == "sd1" and not c.warnings


def test_top_tags_rank_by_count_then_name_over_every_dataset():
    # a big tag table: only the ten most frequent are shown, ties in alphabetical order
    table = {f"tag{n:04d}": n % 50 for n in range(3000)}
    expected = sorted(table, key=lambda t: (-table[t], t))[:10]
    assert top_tags(orjson.dumps({"10_x": table}).decode()) == expected
    assert expected[:2] == ["tag0049", "tag0099"]
    # tags are trimmed and summed across datasets; empty tags and non-numbers are left out
    raw = {"1_a": {" ink ": 3, "boat": 9, "  ": 50, "note": "many"}, "2_b": {"ink": 7, "sky": 10.0},
           "3_c": ["not", "a", "table"]}
    assert top_tags(orjson.dumps(raw).decode()) == ["ink", "sky", "boat"]
    assert top_tags(orjson.dumps({"1_a": {"sky": True, "sea": 2}}).decode()) == ["sea", "sky"]
    assert top_tags(orjson.dumps({"1_a": {"b": 1, "a": 1, "c": 1}}).decode(), limit=2) == ["a", "b"]
    assert top_tags("{not json") == [] and top_tags("[1, 2]") == [] and top_tags(None) == []


def test_kohya_output_name_is_the_title_without_modelspec(tmp_path):
    c = classify_file(family_file(tmp_path, "sd1", metadata={"ss_output_name": "herocat",
                                                             "ss_sd_model_name": "v1-5-pruned.safetensors"}))
    assert c.header_fields["title"] == "herocat"
    assert c.header_sources["title"] == "kohya ss_*"
    assert c.base_model_name == "v1-5-pruned.safetensors"


def test_classify_accepts_a_plain_tensor_dict():
    """Headers built in memory (as other tests and tools do) classify the same way."""
    from catalog.files.header import Header, TensorInfo

    tensors = {name: TensorInfo(dtype, shape, 0, 0)
               for name, (dtype, shape) in lora_tensors(lora_modules("sdxl", style="diffusers"), 4, None).items()}
    c = classify(Header(Path("memory.safetensors"), 0, 0, tensors, {}))
    assert (c.format, c.base_model, c.rank) == ("diffusers", "sdxl", 4)


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "kwargs", "family"), [
    ("FluxTransformer2DModel", {}, "flux"),
    ("Flux2Transformer2DModel", {}, "flux2"),
    ("Flux2Transformer2DModel", dict(num_layers=5, num_single_layers=20, num_attention_heads=24,
                                     joint_attention_dim=7680), "flux2"),
    ("QwenImageTransformer2DModel", {}, "qwen-image"),
    ("WanTransformer3DModel", dict(num_attention_heads=12, ffn_dim=8960, num_layers=30), "wan"),
    ("WanTransformer3DModel", {}, "wan"),
    ("HunyuanVideoTransformer3DModel", {}, "hunyuan-video"),
    ("SD3Transformer2DModel", dict(num_layers=24, num_attention_heads=24, caption_projection_dim=1536,
                                   pos_embed_max_size=192), "sd3"),
    ("SD3Transformer2DModel", dict(num_layers=38, num_attention_heads=38, caption_projection_dim=2432,
                                   pos_embed_max_size=192, qk_norm="rms_norm"), "sd3"),
])
def test_transformer_layouts_match_diffusers_models(tmp_path, cls, kwargs, family):
    """A LoRA on every Linear of the real diffusers class is recognised as its family."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        model = getattr(diffusers, cls)(**kwargs)
    modules = [Module(f"transformer.{name}", m.in_features, m.out_features, style="diffusers")
               for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    c = classify_file(lora_file(tmp_path, lora_tensors(modules, 4, None)))
    assert c.base_model == family, c.warnings


def test_converter_mangled_unet_keys_are_reported(tmp_path):
    """diffusers' convert_state_dict_to_kohya on a UNet + text-encoder LoRA: TE keys fine, UNet keys mangled."""
    te = lora_tensors(lora_modules("sdxl", parts=("te",)), 4, 4.0)
    unet = {}
    for m in lora_modules("sdxl", parts=("unet",), blocks="diffusers")[:20]:
        unet[f"{m.name}_lora.down.weight"] = ("F16", (4, m.in_features))
        unet[f"{m.name}_lora.up.weight"] = ("F16", (m.out_features, 4))
    c = classify_file(lora_file(tmp_path, te | unet, alpha=4.0))
    assert c.base_model == "sdxl"
    assert any("40 tensors outside the LoRA pairs" in w and "converter" in w for w in c.warnings)

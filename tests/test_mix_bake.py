"""Baking a blend into a single-file checkpoint, and the factored SVD on awkward factors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from catalog.files.header import read_header
from catalog.files.safetensors_writer import write_safetensors
from lutnav.cli import cli
from tests.mixlib import build_library

pytestmark = pytest.mark.slow

SD1_TARGETS = {  # LDM checkpoint key -> (diffusers module path, part, shape)
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight":
        (("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"), (320, 320)),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":
        (("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"), (320, 768)),
    "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight":
        (("te1", "text_model.encoder.layers.0.self_attn.q_proj"), (768, 768)),
}


def read(path, key):
    import numpy as np

    from lutnav.mix.tensors import as_float, storage

    h = read_header(path)
    info = h.tensors[key]
    with open(path, "rb") as fh:
        fh.seek(h.data_offset + info.start)
        data = fh.read(info.end - info.start)
    if info.dtype not in ("F16", "BF16", "F32", "F64"):
        return None, data
    return as_float(np.frombuffer(data, dtype=storage(info.dtype)).reshape(info.shape), info.dtype,
                    np.float64), data


def test_bake_adds_the_blend_to_the_weights_it_adapts_and_copies_the_rest(tmp_path):
    import numpy as np

    from lutnav.mix.merge import delta
    from lutnav.mix.tensors import load_lora

    lib = build_library(tmp_path / "loras")
    rng = np.random.default_rng(0)
    base = tmp_path / "sd15.safetensors"
    tensors = {key: ("F16", list(shape), rng.standard_normal(shape).astype(np.float16).tobytes())
               for key, (_, shape) in SD1_TARGETS.items()}
    tensors["first_stage_model.decoder.conv_in.weight"] = ("F32", [4, 4], rng.standard_normal(16).astype(np.float32).tobytes())
    tensors["model.diffusion_model.step"] = ("I64", [1], (7).to_bytes(8, "little"))
    write_safetensors(base, tensors, {"note": "base"})
    out = tmp_path / "baked.safetensors"
    res = CliRunner().invoke(cli, ["--library", str(lib.root), "mix", "ink:0.6", "hero:0.4",
                                   "--into-model", str(base), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 of 5 weights changed" in res.output and "no weight in sd15.safetensors" in res.output
    a, b = load_lora(lib.abspath("style/ink/ink.safetensors")), load_lora(lib.abspath("character/hero/hero.safetensors"))
    for key, (module, _shape) in SD1_TARGETS.items():
        want, _ = read(base, key)
        for lora, w in ((a, 0.6), (b, 0.4)):
            if module in lora.modules:
                want = want + delta(lora.modules[module], w)
        got, _ = read(out, key)
        assert np.allclose(got, want, atol=2e-3), key
    for key in ("first_stage_model.decoder.conv_in.weight", "model.diffusion_model.step"):
        assert read(out, key)[1] == read(base, key)[1]
    h_in, h_out = read_header(base), read_header(out)
    assert [(k, i.start, i.end) for k, i in h_in.tensors.items()] == [(k, i.start, i.end) for k, i in h_out.tensors.items()]
    assert h_out.metadata["note"] == "base" and "ink" in h_out.metadata["lutnav.ss_merged_from"]


def test_openclip_q_k_v_land_in_their_third_of_in_proj(tmp_path):
    from catalog.detect.kohya_names import TE2
    from lutnav.mix.bake import checkpoint_target

    keys = {"conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj_weight",
            "conditioner.embedders.1.model.transformer.resblocks.3.mlp.c_fc.weight",
            "conditioner.embedders.0.transformer.text_model.encoder.layers.3.self_attn.k_proj.weight",
            "model.diffusion_model.input_blocks.4.1.proj_in.weight"}
    path = "text_model.encoder.layers.3.self_attn.{}"
    assert checkpoint_target(keys, (TE2, path.format("v_proj")), "sdxl") == (
        "conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj_weight", 2)
    assert checkpoint_target(keys, (TE2, "text_model.encoder.layers.3.mlp.fc1"), "sdxl")[1] is None
    assert checkpoint_target(keys, ("te1", path.format("k_proj")), "sdxl")[0].startswith("conditioner.embedders.0")
    assert checkpoint_target(keys, ("unet", "down_blocks.1.attentions.0.proj_in"), "sdxl")[0].endswith("4.1.proj_in.weight")
    assert checkpoint_target(keys, ("unet", "mid_block.attentions.0.proj_in"), "sdxl") is None


def test_bake_refuses_a_checkpoint_of_another_model(tmp_path):
    import numpy as np

    lib = build_library(tmp_path / "loras")
    base = tmp_path / "other.safetensors"
    write_safetensors(base, {"model.x.weight": ("F16", [2, 2], np.zeros(4, np.float16).tobytes())})
    out = tmp_path / "baked.safetensors"
    res = CliRunner().invoke(cli, ["--library", str(lib.root), "mix", "ink:0.6", "--into-model", str(base),
                                   "--out", str(out)])
    assert res.exit_code == 1 and "none of the blend's" in res.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("case", ["duplicate", "zero", "narrow"])
def test_truncation_is_optimal_even_for_degenerate_factors(case):
    import numpy as np

    from lutnav.mix.merge import one_thread, truncate

    rng = np.random.default_rng(1)
    out_dim, in_dim, r = (6, 40, 8) if case == "narrow" else (48, 40, 8)
    up, down = rng.standard_normal((out_dim, r)), rng.standard_normal((r, in_dim))
    if case == "duplicate":  # the same LoRA stacked twice: rank 8 in 16 columns
        up, down = np.concatenate([up, up], 1), np.concatenate([down, down], 0)
    if case == "zero":  # an untrained LoRA: up is all zeros
        up = np.concatenate([up, np.zeros_like(up)], 1)
        down = np.concatenate([down, rng.standard_normal((r, in_dim))], 0)
    truth = up @ down
    s = np.linalg.svd(truth, compute_uv=False)
    with one_thread():
        new_up, new_down, err = truncate(up, down, 5)
    optimum = np.sqrt(np.sum(s[5:] ** 2) / np.sum(s ** 2))
    assert np.all(np.isfinite(new_up)) and np.all(np.isfinite(new_down))
    assert err == pytest.approx(optimum, abs=1e-9)
    assert np.linalg.norm(new_up @ new_down - truth) / np.linalg.norm(truth) == pytest.approx(optimum, abs=1e-6)

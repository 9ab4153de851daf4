"""Key conversion on files, and the real loaders: a tiny SD1 pipeline loads what lutnav writes."""

from __future__ import annotations

import logging
import struct

import pytest
from click.testing import CliRunner

from catalog.files.header import read_header, read_scalars
from catalog.detect.kohya_names import parse_key
from lutnav.cli import cli
from catalog.detect.clients import client_warning
from lutnav.mix.convert import convert_file
from lutnav.mix.errors import MergeInputError, MixError, OutputExists
from tests.mixlib import SD1_PICK, build_library, pick, write_lora


def raw(path, key) -> bytes:
    h = read_header(path)
    info = h.tensors[key]
    with open(path, "rb") as fh:
        fh.seek(h.data_offset + info.start)
        return fh.read(info.end - info.start)


def test_kohya_to_diffusers_and_back_keeps_the_effective_weights(tmp_path):
    src = write_lora(tmp_path / "k.safetensors", pick("sd1", SD1_PICK), alpha=2.0, dtype="F32")
    diff = convert_file(src, "diffusers", tmp_path / "d.safetensors")
    assert diff.folded == len(SD1_PICK) and diff.family == "sd1"
    keys = list(read_header(diff.path).tensors)
    assert all(k.startswith(("unet.", "text_encoder.")) and ".lora_" in k for k in keys)
    back = convert_file(diff.path, "kohya", tmp_path / "k2.safetensors")
    assert sorted(read_header(back.path).tensors) == sorted(read_header(src).tensors)
    for key in read_header(src).tensors:
        if key.endswith("lora_down.weight"):
            assert raw(back.path, key) == raw(src, key)  # bytes copied as they are
        elif key.endswith("lora_up.weight"):  # alpha/rank = 2/4 went into the up weights
            a = struct.unpack(f"<{len(raw(src, key)) // 4}f", raw(src, key))
            b = struct.unpack(f"<{len(raw(back.path, key)) // 4}f", raw(back.path, key))
            assert b == pytest.approx([x / 2 for x in a], rel=1e-6)
    alphas = read_scalars(read_header(back.path), [k for k in read_header(back.path).tensors
                                                   if k.endswith(".alpha")])
    assert set(alphas.values()) == {4.0}  # the scale is in the weights now: alpha = rank


def test_alpha_not_equal_rank_is_folded_into_lora_b(tmp_path):
    import numpy as np

    src = write_lora(tmp_path / "k.safetensors", pick("sd1", SD1_PICK[:1]), alpha=1.0)  # scale 1/4
    out = convert_file(src, "diffusers", tmp_path / "d.safetensors").path
    [up_k] = [k for k in read_header(src).tensors if k.endswith("lora_up.weight")]
    [up_d] = [k for k in read_header(out).tensors if k.endswith("lora_B.weight")]
    a = np.frombuffer(raw(src, up_k), np.float16).astype(np.float32)
    b = np.frombuffer(raw(out, up_d), np.float16).astype(np.float32)
    assert np.allclose(b, a / 4, rtol=1e-3, atol=1e-6)


def test_sdxl_kohya_output_uses_ldm_blocks_and_numbered_encoders(tmp_path):
    mods = pick("sdxl", ("down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k",
                        "encoder_layers_0_self_attn_q_proj"),
                style="diffusers")
    src = write_lora(tmp_path / "d.safetensors", mods, alpha=None)
    out = convert_file(src, "kohya", tmp_path / "k.safetensors")
    keys = set(read_header(out.path).tensors)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight" in keys
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha" in keys
    assert "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha" in keys


def test_refusals_leave_nothing_behind(tmp_path):
    from lutnav.sample_loras import lora_modules, lora_tensors
    from catalog.files.safetensors_writer import write_safetensors

    src = write_lora(tmp_path / "k.safetensors", pick("sd1", SD1_PICK))
    with pytest.raises(MixError, match="onto itself"):
        convert_file(src, "kohya", src)
    (tmp_path / "taken.safetensors").write_bytes(b"x")
    with pytest.raises(OutputExists):
        convert_file(src, "kohya", tmp_path / "taken.safetensors")
    flux = tmp_path / "flux.safetensors"
    write_safetensors(flux, {k: (d, list(s), None) for k, (d, s) in
                             lora_tensors(lora_modules("flux")[:2], 4, 4.0).items()})
    with pytest.raises(MergeInputError, match="SD1/SD2/SDXL"):
        convert_file(flux, "diffusers", tmp_path / "f.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flux.safetensors", "k.safetensors",
                                                          "taken.safetensors"]


def test_client_warning_is_the_catalog_line(tmp_path):
    from lutnav.sample_loras import lora_modules

    keys = [m.name + s for m in lora_modules("sd1", style="diffusers") for s in (".lora_A.weight", ".lora_B.weight")]
    assert client_warning(keys).startswith("ComfyUI will ignore 256 of 528 tensors")
    assert client_warning(keys).endswith("`lutnav convert --to kohya`")
    kohya = [m.name + s for m in lora_modules("sdxl", conv=True) for s in (".lora_down.weight", ".alpha")]
    assert client_warning(kohya) is None


@pytest.mark.parametrize("family", [None, "sdxl", "flux"])
def test_client_warning_counts_agree_with_each_clients_report(family):
    """The catalog line counts every key once for all clients; a client report lists them
    one client at a time: both must name the same client, numbers and fix."""
    from catalog.detect.clients import check_all
    from lutnav.sample_loras import lora_modules

    modules = lora_modules("sdxl", style="diffusers")
    keys = [m.name + s for m in modules[:40] for s in (".lora_A.weight", ".lora_B.weight")]
    keys += [m.name + s for m in lora_modules("sdxl", conv=True)[:30] for s in (".hada_w1_a", ".hada_w1_b", ".alpha")]
    keys += ["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight", "not_a_lora_key"]
    line = client_warning(keys, family)
    reports = [r for r in check_all(keys, family) if r.dropped and r.mapped + len(r.unknown) < r.total
               and (family != "flux" or r.mapped or r.client == "comfyui")]
    if family == "flux":  # SD names under a Flux verdict: outside the Flux rules, so nothing to say
        assert not reports and line is None
        return
    assert reports, "the mix of names is meant to be dropped by some client"
    assert line is not None
    named = [r for r in reports if line.startswith(f"{r.label} will ignore {len(r.dropped)} of {len(keys)} tensors")]
    assert named and (named[0].fix is None or line.endswith(named[0].fix))


# --- the real loader ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.mixlib import tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny") / "sd1-tiny"
    return tiny_pipeline(folder), folder


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_and_probe(pipe, path):
    """UNet output before/after loading ``path``; the warnings diffusers logged; injected LoRA layers."""
    import torch

    torch.manual_seed(0)
    latents = torch.randn(1, 4, 8, 8)
    text = torch.randn(1, 5, 32)
    with torch.no_grad():
        before = pipe.unet(latents, 10, encoder_hidden_states=text).sample
    handler = _Collect()
    logger = logging.getLogger("diffusers")
    logger.addHandler(handler)
    try:
        pipe.load_lora_weights(str(path), adapter_name="probe")
    finally:
        logger.removeHandler(handler)
    try:
        with torch.no_grad():
            after = pipe.unet(latents, 10, encoder_hidden_states=text).sample
        layers = sum(1 for model in (pipe.unet, pipe.text_encoder) for n, m in model.named_modules()
                     if hasattr(m, "lora_A") and "probe" in getattr(m, "lora_A", {}))
    finally:
        pipe.unload_lora_weights()
    return before, after, handler.messages, layers


@pytest.mark.slow
def test_merged_kohya_file_loads_in_diffusers_and_changes_the_unet(tiny, tmp_path):
    from catalog.files.safetensors_writer import write_safetensors
    from tests.mixlib import lora_bytes, tiny_lora_modules

    pipe, _folder = tiny
    root = tmp_path / "loras"
    mods = tiny_lora_modules(pipe, conv=True)
    (root / "style/a").mkdir(parents=True)
    write_safetensors(root / "style/a/a.safetensors", lora_bytes(mods, 4, 2.0, 1, scale=0.3))
    write_safetensors(root / "style/a/b.safetensors", lora_bytes(mods[::2], 2, 2.0, 2, scale=0.3))
    lib = build_library(root)
    out = root / "style/a/ab.safetensors"
    res = CliRunner().invoke(cli, ["--library", str(root), "mix", "a:0.6", "b:0.4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    before, after, warnings, layers = load_and_probe(pipe, out)
    assert not [w for w in warnings if "unexpected" in w.lower() or "not loaded" in w.lower()], warnings
    assert layers == len(mods)
    assert not bool((before - after).abs().max() < 1e-4)
    assert lib.get("ab").parents == ["style/a/a.safetensors", "style/a/b.safetensors"]


@pytest.mark.slow
def test_convert_to_diffusers_loads_with_no_leftover_keys(tiny, tmp_path):
    from catalog.files.safetensors_writer import write_safetensors
    from tests.mixlib import lora_bytes, tiny_lora_modules

    pipe, _folder = tiny
    mods = tiny_lora_modules(pipe)
    src = tmp_path / "k.safetensors"
    write_safetensors(src, lora_bytes(mods, 4, 1.0, 3, scale=0.3))
    out = convert_file(src, "diffusers", tmp_path / "d.safetensors")
    assert all(parse_key(k).style == "diffusers" for k in read_header(out.path).tensors)
    before, after, warnings, layers = load_and_probe(pipe, out.path)
    assert not [w for w in warnings if "unexpected" in w.lower()], warnings
    assert layers == len(mods) == out.modules
    assert not bool((before - after).abs().max() < 1e-4)
    # kohya and converted files are the same LoRA to diffusers
    _, after_kohya, _, _ = load_and_probe(pipe, src)
    assert float((after - after_kohya).abs().max()) < 1e-3


@pytest.mark.slow
def test_merged_file_acts_like_the_originals_stacked_at_their_weights(tiny, tmp_path):
    """diffusers with the merged file == diffusers with both originals at 0.6 / 0.4."""
    import torch

    from catalog.files.safetensors_writer import write_safetensors
    from tests.mixlib import lora_bytes, tiny_lora_modules

    pipe, _folder = tiny
    root = tmp_path / "loras"
    mods = tiny_lora_modules(pipe)
    (root / "style/a").mkdir(parents=True)
    a, b = root / "style/a/a.safetensors", root / "style/a/b.safetensors"
    write_safetensors(a, lora_bytes(mods, 4, 2.0, 1, scale=0.3))
    write_safetensors(b, lora_bytes(mods[::2], 2, 1.0, 2, scale=0.3))  # other rank, other alpha
    build_library(root)
    out = root / "style/a/ab.safetensors"
    res = CliRunner().invoke(cli, ["--library", str(root), "mix", "a:0.6", "b:0.4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    torch.manual_seed(0)
    latents, text = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 32)
    with torch.no_grad():
        pipe.load_lora_weights(str(a), adapter_name="a")
        pipe.load_lora_weights(str(b), adapter_name="b")
        pipe.set_adapters(["a", "b"], adapter_weights=[0.6, 0.4])
        stacked = pipe.unet(latents, 10, encoder_hidden_states=text).sample
        pipe.unload_lora_weights()
        pipe.load_lora_weights(str(out), adapter_name="ab")
        merged = pipe.unet(latents, 10, encoder_hidden_states=text).sample
        pipe.unload_lora_weights()
        plain = pipe.unet(latents, 10, encoder_hidden_states=text).sample
    change = float((stacked - plain).abs().max())
    assert change > 1e-3
    assert float((merged - stacked).abs().max()) < 0.01 * change


def test_convert_carries_the_sources_card_fields_over(demo_library):
    root = demo_library.root
    result = CliRunner().invoke(cli, ["--library", str(root), "convert", "ink_wash_v2", "--to", "diffusers"])
    assert result.exit_code == 0, result.output
    shown = demo_library.get("ink_wash_v2.diffusers")
    source = demo_library.get("ink_wash_v2")
    for field in ("strength_range", "themes", "type", "notes"):
        assert getattr(shown, field) == getattr(source, field), field
    assert shown.sources["themes"] == "card"
    again = CliRunner().invoke(cli, ["--library", str(root), "convert", "ink_wash_v2", "--to", "diffusers",
                                     "--overwrite"])
    assert again.exit_code == 0 and "card:" not in again.output  # an existing card is never replaced

"""Merges: exact rank concatenation and factored SVD, checked against dense ΔW sums."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from catalog.detect.kohya_names import parse_key
from catalog.progress import finish
from lutnav.cli import cli
from tests.mixlib import SD1_PICK, build_library, pick, write_lora

pytestmark = pytest.mark.slow


def dense(path) -> dict:
    """ΔW per module (float64) of a LoRA file, the slow obvious way."""
    import numpy as np

    from lutnav.mix.tensors import as_float, load_lora

    out = {}
    for module, f in load_lora(path).modules.items():
        up = as_float(f.up, f.dtype, np.float64).reshape(f.up.shape[0], -1)
        down = as_float(f.down, f.dtype, np.float64).reshape(f.rank, -1)
        out[module] = (up @ down) * f.scale
    return out


def blend_dense(paths_weights) -> dict:
    total: dict = {}
    for path, w in paths_weights:
        for module, d in dense(path).items():
            total[module] = total.get(module, 0) + w * d
    return total


def rel_err(a, b) -> float:
    import numpy as np

    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture
def lib(tmp_path):
    return build_library(tmp_path / "loras")


def run(lib, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


def test_exact_merge_equals_the_weighted_sum_and_enters_the_catalog(lib):
    # ink: kohya, alpha 2, rank 4; zz: diffusers names, no alpha (= rank); hero lacks ink's first module
    out = lib.root / "style/ink/blend.safetensors"
    res = run(lib, "mix", "ink:0.5", "zz:0.3", "--out", str(out))
    assert res.exit_code == 0, res.output
    want = blend_dense([(lib.abspath("style/ink/ink.safetensors"), 0.5),
                        (lib.abspath("character/cat/zz.safetensors"), 0.3)])
    got = dense(out)
    assert set(got) == set(want)
    for module in want:
        assert rel_err(got[module], want[module]) < 2e-3  # fp16 storage
    from catalog.files.header import read_header

    header = read_header(out)
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in header.tensors)
    assert {parse_key(k).role for k in header.tensors} == {"down", "up", "alpha"}
    meta = header.metadata
    assert meta["ss_merged_from"] == "ink, zz" and meta["ss_merge_method"] == "concat"
    assert json.loads(meta["modelspec.merge_recipe"])[1] == {
        "name": "zz", "path": "character/cat/zz.safetensors", "weight": 0.3}
    entry = lib.get("blend")
    assert entry.parents == ["style/ink/ink.safetensors", "character/cat/zz.safetensors"]
    assert entry.rank == 8 and entry.base_model == "sd1" and entry.format == "kohya"
    assert "<lora:blend:1>" in res.output


def test_modules_of_one_lora_are_kept_and_overwrite_replaces(lib):
    out = lib.root / "style/ink/blend.safetensors"
    assert run(lib, "mix", "ink:0.6", "hero:0.4", "--out", str(out)).exit_code == 0
    got = dense(out)
    assert len(got) == len(SD1_PICK)  # hero lacks one of ink's modules; it is still there
    first = [m for m in got if m[1].endswith("attn1.to_q")][0]
    assert got[first].shape[0] == 320
    res = run(lib, "mix", "ink:0.6", "hero:0.4", "--out", str(out))
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = run(lib, "mix", "ink:0.3", "hero:0.3", "--out", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    assert lib.get("blend").description.startswith("Blend of ink at 0.3")


def test_conv_locon_layers_merge_exactly(tmp_path):
    mods = pick("sd1", ("down_blocks_1_resnets_0_conv1", "down_blocks_1_resnets_0_conv_shortcut",
                        "down_blocks_0_attentions_0_proj_in", "attn2_to_k"), conv=True)
    assert any(m.kernel == (3, 3) for m in mods)
    root = tmp_path / "loras"
    write_lora(root / "style/a/a.safetensors", mods, seed=1, dtype="F32")
    write_lora(root / "style/b/b.safetensors", mods, seed=2, alpha=1.0, dtype="F32")
    lib = build_library(root)
    out = root / "style/a/ab.safetensors"
    assert run(lib, "mix", "a:0.6", "b:0.4", "--out", str(out)).exit_code == 0
    want = blend_dense([(root / "style/a/a.safetensors", 0.6), (root / "style/b/b.safetensors", 0.4)])
    got = dense(out)
    for module in want:
        assert rel_err(got[module], want[module]) < 1e-6


def test_svd_merge_reaches_the_optimal_truncation_and_reports_it(tmp_path):
    import numpy as np

    from lutnav.mix.blend import resolve_items, write_merged
    from lutnav.prompt_tags import parse_spec

    root = tmp_path / "loras"
    mods = pick("sd1", SD1_PICK)
    write_lora(root / "style/a/a.safetensors", mods, rank=8, seed=1, alpha=4.0, dtype="F32")
    write_lora(root / "style/b/b.safetensors", mods, rank=8, seed=2, alpha=8.0, dtype="F32")
    lib = build_library(root)
    items = resolve_items(lib, [parse_spec("a:0.7"), parse_spec("b:0.3")])
    result = finish(write_merged(lib, items, root / "style/a/ab5.safetensors", rank=5))
    want = blend_dense([(root / "style/a/a.safetensors", 0.7), (root / "style/b/b.safetensors", 0.3)])
    got = dense(root / "style/a/ab5.safetensors")
    for module, target in want.items():
        s = np.linalg.svd(target, compute_uv=False)
        optimum = float(np.sqrt(np.sum(s[5:] ** 2) / np.sum(s ** 2)))
        assert result.report.errors[module] == pytest.approx(optimum, abs=1e-9)
        assert rel_err(got[module], target) == pytest.approx(optimum, abs=1e-6)
        assert result.report.ranks[module] == 5
    assert 0 < result.report.mean <= result.report.worst[1] < 1


def test_svd_at_full_rank_is_lossless_and_cli_prints_the_errors(lib):
    out = lib.root / "style/ink/b8.safetensors"
    res = run(lib, "mix", "ink:0.6", "hero:0.4", "--out", str(out), "--rank", "8")
    assert res.exit_code == 0, res.output
    assert "worst 0" in res.output and "mean 0" in res.output
    res = run(lib, "mix", "ink:0.6", "hero:0.4", "--out", str(out), "--rank", "3", "--overwrite")
    assert "relative Frobenius error per module: worst" in res.output


@pytest.mark.parametrize("rank", ["0", "9", "-1"])
def test_rank_outside_the_concatenated_rank_is_refused_without_a_file(lib, rank):
    out = lib.root / "style/ink/b.safetensors"
    res = run(lib, "mix", "ink:0.6", "hero:0.4", "--out", str(out), "--rank", rank)
    assert res.exit_code == 1
    assert "outside 1..8" in res.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_alpha_of_a_diffusers_file_comes_from_its_adapter_metadata(tmp_path):
    from catalog.files.safetensors_writer import write_safetensors
    from lutnav.mix.tensors import load_lora
    from tests.mixlib import lora_bytes

    mods = pick("sd1", SD1_PICK, style="diffusers")
    meta = {"lora_adapter_metadata": json.dumps({
        "unet.r": 4, "unet.lora_alpha": 2, "text_encoder.r": 4, "text_encoder.lora_alpha": 1,
        "unet.alpha_pattern": {"mid_block.attentions.0.transformer_blocks.0.attn2.to_k": 8}})}
    path = tmp_path / "d.safetensors"
    write_safetensors(path, lora_bytes(mods, 4, None, 1), meta)
    alphas = {m[1].split(".")[0] + ("/mid" if "mid_block" in m[1] else ""): f.alpha
              for m, f in load_lora(path).modules.items()}
    assert alphas == {"down_blocks": 2.0, "mid_block/mid": 8.0, "text_model": 1.0}


@pytest.mark.parametrize("network", ["loha", "lokr"])
def test_loha_and_lokr_merge_as_their_exact_dense_delta(tmp_path, network):
    """LoHa/LoKr factor exactly into a low-rank pair, so the merge is the weighted dense sum."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from lutnav.sample_loras import lora_tensors

    root = tmp_path / "loras"
    mods = pick("sd1", SD1_PICK)
    (root / "style/l").mkdir(parents=True)
    rng = np.random.default_rng(5)
    spec = lora_tensors(mods, 4, 2.0, network=network)
    arrays = {k: (np.array(2.0, np.float32) if k.endswith(".alpha") else
                  (rng.standard_normal(s) * 0.1).astype(np.float32)) for k, (d, s) in spec.items()}
    save_file(arrays, str(root / f"style/l/{network}.safetensors"))
    lib = build_library(root)
    out = root / "style/l/x.safetensors"
    res = run(lib, "mix", f"{network}:0.5", "ink:0.3", "--out", str(out))
    assert res.exit_code == 0, res.output
    t = load_file(str(out))
    for m in mods:
        name = m.name
        if network == "loha":
            w = (arrays[f"{name}.hada_w1_a"] @ arrays[f"{name}.hada_w1_b"]) * \
                (arrays[f"{name}.hada_w2_a"] @ arrays[f"{name}.hada_w2_b"]) * (2.0 / 4)
        else:
            w2 = arrays[f"{name}.lokr_w2_a"] @ arrays[f"{name}.lokr_w2_b"] if f"{name}.lokr_w2_a" in arrays \
                else arrays[f"{name}.lokr_w2"]
            scale = 2.0 / 4 if f"{name}.lokr_w2_a" in arrays else 1.0
            w = np.kron(arrays[f"{name}.lokr_w1"], w2) * scale
        want = 0.5 * w
        ink = dense(lib.abspath("style/ink/ink.safetensors"))
        parsed = parse_key(name + ".alpha").module
        if parsed in ink:
            want = want + 0.3 * ink[parsed]
        down, up = t[name + ".lora_down.weight"].astype(np.float64), t[name + ".lora_up.weight"].astype(np.float64)
        got = (float(t[name + ".alpha"]) / down.shape[0]) * up @ down
        assert np.abs(got - want).max() <= 2e-3 * np.abs(want).max(), name


def test_lycoris_conv_tucker_cores_are_refused_with_the_reason(tmp_path):
    from catalog.files.safetensors_writer import write_safetensors

    root = tmp_path / "loras"
    (root / "style/l").mkdir(parents=True)
    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    tensors = {f"{name}.{r}": ("F16", s, None) for r, s in (
        ("hada_w1_a", [320, 4]), ("hada_w1_b", [4, 320]), ("hada_w2_a", [320, 4]), ("hada_w2_b", [4, 320]),
        ("hada_t1", [4, 4, 3, 3]), ("hada_t2", [4, 4, 3, 3]))}
    write_safetensors(root / "style/l/tucker.safetensors", tensors)
    lib = build_library(root)
    res = run(lib, "mix", "tucker:0.5", "ink:0.3", "--out", str(root / "style/l/x.safetensors"))
    assert res.exit_code == 1 and "Tucker" in res.output and "hada_t1" in res.output
    assert not (root / "style/l/x.safetensors").exists()


def test_same_layer_with_other_widths_is_refused_without_a_file(tmp_path):
    from lutnav.sample_loras import Module

    root = tmp_path / "loras"
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    write_lora(root / "style/a/wide.safetensors", [Module(name, 96, 96)], seed=1)
    write_lora(root / "style/a/narrow.safetensors", [Module(name, 64, 64)], seed=2)
    lib = build_library(root)
    out = root / "style/a/x.safetensors"
    res = run(lib, "mix", "wide:0.5", "narrow:0.5", "--out", str(out))
    assert res.exit_code == 1 and "shapes differ" in res.output
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]

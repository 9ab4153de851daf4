"""mix --out, convert and check on the transformer families: the merged ΔW is the weighted sum, in numpy.

Files are written with real module names and widths of each family; ΔW is
computed from the raw tensors with safetensors' own numpy reader, independent
of lutnav's loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.index.library import Library
from catalog.files.safetensors_writer import write_safetensors
from lutnav.cli import cli

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.slow

H = 3072
#: (module names as written, in, out) per family and spelling; each set names its family unambiguously
FLUX_KOHYA = [("lora_unet_double_blocks_0_img_attn_qkv", H, 3 * H), ("lora_unet_double_blocks_0_img_mod_lin", H, 6 * H),
              ("lora_unet_single_blocks_3_linear2", 5 * H, H)]
FLUX_COMFY = [("diffusion_model.double_blocks.0.img_attn.qkv", H, 3 * H),
              ("diffusion_model.double_blocks.1.img_mod.lin", H, 6 * H)]
QWEN = [("transformer.transformer_blocks.0.img_mod.1", H, 6 * H), ("transformer.transformer_blocks.0.attn.to_q", H, H),
        ("transformer.transformer_blocks.59.txt_mlp.net.2", 4 * H, H)]
WAN = [("lora_unet_blocks_0_self_attn_q", 5120, 5120), ("lora_unet_blocks_0_ffn_0", 5120, 13824),
       ("lora_unet_blocks_39_cross_attn_k", 5120, 5120)]


def write(path: Path, modules, *, rank: int, alpha: float | None, seed: int, dtype=np.float16) -> Path:
    rng = np.random.default_rng(seed)
    tensors = {}
    kohya = modules[0][0].startswith("lora_")
    down_s, up_s = (".lora_down.weight", ".lora_up.weight") if kohya else (".lora_A.weight", ".lora_B.weight")
    tag = {np.float16: "F16", np.float32: "F32"}[dtype]
    for name, a, b in modules:
        down = (rng.standard_normal((rank, a)) * 0.05).astype(dtype)
        up = (rng.standard_normal((b, rank)) * 0.05).astype(dtype)
        tensors[name + down_s] = (tag, list(down.shape), down.tobytes())
        tensors[name + up_s] = (tag, list(up.shape), up.tobytes())
        if alpha is not None:
            tensors[name + ".alpha"] = (tag, [], np.array(alpha, dtype).tobytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, tensors, {})
    return path


def deltas(path: Path) -> dict[str, np.ndarray]:
    """ΔW per module stem, float64: (alpha / rank) · up @ down, alpha = rank when absent."""
    from safetensors.numpy import load_file

    t = load_file(str(path))
    out = {}
    for key in t:
        for down_s, up_s in ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight")):
            if key.endswith(down_s):
                stem = key[: -len(down_s)]
                down, up = t[key].astype(np.float64), t[stem + up_s].astype(np.float64)
                alpha = float(t[stem + ".alpha"]) if stem + ".alpha" in t else down.shape[0]
                out[stem] = (alpha / down.shape[0]) * up @ down
    return out


def canon(stem: str) -> str:
    for prefix in ("lora_unet_", "diffusion_model.", "transformer."):
        stem = stem.removeprefix(prefix)
    return stem.replace(".", "_")


def run(lib: Library, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


def library(tmp_path: Path, files: dict[str, tuple]) -> Library:
    root = tmp_path / "loras"
    for rel, (mods, rank, alpha, seed) in files.items():
        write(root / rel, mods, rank=rank, alpha=alpha, seed=seed)
    lib = Library(root)
    lib.db  # noqa: B018
    lib.scan_all()
    return lib


@pytest.mark.parametrize(("family", "a", "b", "spelling"), [
    ("flux", (FLUX_KOHYA, 4, 2.0), (FLUX_KOHYA[:2], 8, 8.0), "lora_unet_"),
    ("qwen-image", (QWEN, 4, None), (QWEN[1:], 2, None), "transformer."),
    ("wan", (WAN, 4, 1.0), (WAN, 4, 4.0), "lora_unet_"),
])
def test_exact_merge_is_the_weighted_sum_and_keeps_the_spelling(tmp_path, family, a, b, spelling):
    lib = library(tmp_path, {"style/x/a.safetensors": (*a, 1), "style/x/b.safetensors": (*b, 2)})
    assert lib.get("style/x/a.safetensors").base_model == family
    out = lib.root / "style/x/ab.safetensors"
    res = run(lib, "mix", "a:0.6", "b:0.4", "--out", str(out))
    assert res.exit_code == 0, res.output
    merged = deltas(out)
    want: dict[str, np.ndarray] = {}
    for rel, w in (("style/x/a.safetensors", 0.6), ("style/x/b.safetensors", 0.4)):
        for stem, d in deltas(lib.abspath(rel)).items():
            want[stem] = want.get(stem, 0) + w * d
    assert set(merged) == set(want) and all(k.startswith(spelling) for k in merged)
    for stem, d in want.items():
        scale = float(np.abs(d).max())
        assert np.abs(merged[stem] - d).max() <= 2e-3 * scale, stem  # fp16 rounding of the factors
    assert lib.get("style/x/ab.safetensors").base_model == family


def test_svd_merge_to_a_rank_reports_the_error(tmp_path):
    lib = library(tmp_path, {"style/x/a.safetensors": (FLUX_KOHYA, 4, 4.0, 1),
                             "style/x/b.safetensors": (FLUX_KOHYA, 4, 4.0, 2)})
    out = lib.root / "style/x/ab8.safetensors"
    res = run(lib, "mix", "a:0.5", "b:0.5", "--out", str(out), "--rank", "8")
    assert res.exit_code == 0, res.output
    assert "relative Frobenius error" in res.output
    merged, a, b = deltas(out), deltas(lib.abspath("style/x/a.safetensors")), deltas(lib.abspath("style/x/b.safetensors"))
    for stem in a:
        want = 0.5 * a[stem] + 0.5 * b[stem]
        assert np.abs(merged[stem] - want).max() <= 2e-3 * np.abs(want).max()  # rank 8 = 4 + 4: exact


def test_two_prefixes_of_one_naming_merge_into_a_spelling_comfyui_loads(tmp_path):
    lib = library(tmp_path, {"style/x/k.safetensors": (FLUX_KOHYA, 4, 4.0, 1),
                             "style/x/c.safetensors": (FLUX_COMFY, 4, None, 2)})
    out = lib.root / "style/x/kc.safetensors"
    res = run(lib, "mix", "k:0.5", "c:0.5", "--out", str(out))
    assert res.exit_code == 0, res.output
    merged = {canon(k): v for k, v in deltas(out).items()}
    k, c = deltas(lib.abspath("style/x/k.safetensors")), deltas(lib.abspath("style/x/c.safetensors"))
    want = {canon(s): 0.5 * d for s, d in k.items()}
    for s, d in c.items():
        want[canon(s)] = want.get(canon(s), 0) + 0.5 * d
    assert set(merged) == set(want)
    for stem, d in want.items():
        assert np.abs(merged[stem] - d).max() <= 2e-3 * np.abs(d).max()
    check = json.loads(run(lib, "check", str(out), "--client", "comfyui", "--json").output)[0]
    assert check["dropped"] == [] and check["mapped"] == check["total"]


def test_merge_across_families_is_refused(tmp_path):
    lib = library(tmp_path, {"style/x/f.safetensors": (FLUX_KOHYA, 4, 4.0, 1),
                             "style/x/q.safetensors": (QWEN, 4, None, 2)})
    res = run(lib, "mix", "f:0.5", "q:0.5", "--out", str(lib.root / "style/x/fq.safetensors"))
    assert res.exit_code == 1
    assert "base models differ" in res.output and "flux" in res.output and "qwen-image" in res.output
    assert not (lib.root / "style/x/fq.safetensors").exists()


XLABS = [("double_blocks.0.processor.qkv_lora1", H, 3 * H), ("double_blocks.0.processor.proj_lora2", H, H),
         ("single_blocks.37.processor.qkv_lora", H, 3 * H), ("single_blocks.37.processor.proj_lora", H, H)]
PEFT_FLUX = [("base_model.model.single_transformer_blocks.0.attn.to_q", H, H),  # blocks 0-18 / 0-37: Flux's counts
             ("base_model.model.single_transformer_blocks.37.proj_mlp", H, 4 * H),
             ("base_model.model.transformer_blocks.18.norm1.linear", H, 6 * H)]


def test_xlabs_flux_is_lost_in_comfyui_and_converts_to_names_it_loads(tmp_path):
    src = tmp_path / "loras/style/x/xl.safetensors"
    write(src, XLABS, rank=4, alpha=None, seed=3)
    from safetensors.numpy import load_file, save_file

    t = load_file(str(src))
    save_file({k.replace(".lora_A.weight", ".down.weight").replace(".lora_B.weight", ".up.weight"): v
               for k, v in t.items()}, str(src))
    lib = Library(tmp_path / "loras")
    lib.scan_all()
    assert lib.get("style/x/xl.safetensors").base_model == "flux"
    before = json.loads(run(lib, "check", str(src), "--client", "comfyui", "--json").output)[0]
    assert (before["mapped"], len(before["dropped"])) == (0, 8)
    text = run(lib, "check", str(src), "--client", "comfyui").output
    assert "will load 0 of 8" in text and "convert --to kohya" in text
    out = tmp_path / "converted.safetensors"
    res = run(lib, "convert", str(src), "--to", "kohya", "--out", str(out))
    assert res.exit_code == 0, res.output
    after = json.loads(run(lib, "check", str(out), "--client", "comfyui", "--json").output)[0]
    assert after["dropped"] == [] and after["mapped"] == after["total"] == 12
    got, x = deltas(out), load_file(str(src))
    qkv = x["double_blocks.0.processor.qkv_lora1.up.weight"].astype(np.float64) @ \
        x["double_blocks.0.processor.qkv_lora1.down.weight"].astype(np.float64)
    assert np.allclose(got["lora_unet_double_blocks_0_img_attn_qkv"], qkv)
    single = got["lora_unet_single_blocks_37_linear1"]  # q, k, v rows, then zeros for the MLP input
    s_qkv = x["single_blocks.37.processor.qkv_lora.up.weight"].astype(np.float64) @ \
        x["single_blocks.37.processor.qkv_lora.down.weight"].astype(np.float64)
    assert single.shape == (7 * H, H) and np.allclose(single[: 3 * H], s_qkv) and not single[3 * H:].any()
    proj = got["lora_unet_single_blocks_37_linear2"]
    assert proj.shape == (H, 5 * H) and not proj[:, H:].any()


def test_peft_prefixed_flux_converts_to_names_comfyui_loads_and_refuses_what_it_drops(tmp_path):
    src = write(tmp_path / "loras/style/x/p.safetensors", PEFT_FLUX, rank=4, alpha=None, seed=4)
    lib = Library(tmp_path / "loras")
    lib.scan_all()
    entry = lib.get("style/x/p.safetensors")
    assert entry.base_model == "flux" and any("ComfyUI will ignore 6 of 6" in w for w in entry.warnings)
    refused = run(lib, "convert", str(src), "--to", "peft", "--out", str(tmp_path / "p2.safetensors"))
    assert refused.exit_code == 1 and "--to diffusers" in refused.output  # PEFT is what ComfyUI drops
    assert not (tmp_path / "p2.safetensors").exists()
    comfy = tmp_path / "c.safetensors"  # ComfyUI names are the original layers: q/k/v stacked
    assert run(lib, "convert", str(src), "--to", "comfyui", "--out", str(comfy)).exit_code == 0
    assert "diffusion_model.single_blocks.37.linear1" in {k.rsplit(".lora_", 1)[0] for k in deltas(comfy)}
    out = tmp_path / "d.safetensors"
    assert run(lib, "convert", str(src), "--to", "diffusers", "--out", str(out)).exit_code == 0
    after = json.loads(run(lib, "check", str(out), "--client", "comfyui", "--json").output)[0]
    assert after["dropped"] == [] and after["mapped"] == 6
    assert {canon(k.removeprefix("base_model.model.")) for k in deltas(src)} == {canon(k) for k in deltas(out)}


def test_check_says_a_client_without_support_for_the_family(tmp_path):
    lib = library(tmp_path, {"style/x/w.safetensors": (WAN, 4, 4.0, 1)})
    out = run(lib, "check", str(lib.abspath("style/x/w.safetensors"))).output
    assert "base model wan" in out
    assert "ComfyUI: will load 9 of 9" in out  # 3 modules: down, up, alpha
    assert "AUTOMATIC1111/Forge: will load 0 of 9" in out and "no Wan 2.x support" in out


def test_dora_on_a_transformer_family_is_refused_for_merging_with_the_reason(tmp_path):
    lib = library(tmp_path, {"style/x/a.safetensors": (QWEN, 4, None, 1), "style/x/b.safetensors": (QWEN, 4, None, 2)})
    from safetensors.numpy import load_file, save_file

    path = lib.abspath("style/x/a.safetensors")
    t = load_file(str(path))
    t["transformer.transformer_blocks.0.attn.to_q.lora_magnitude_vector"] = np.ones((H,), np.float16)
    save_file(t, str(path))
    lib.scan_all()
    res = run(lib, "mix", "a:0.5", "b:0.5", "--out", str(lib.root / "style/x/ab.safetensors"))
    assert res.exit_code == 1 and "magnitude" in res.output and "low-rank" in res.output
    assert not (lib.root / "style/x/ab.safetensors").exists()


FLUX_DIFFUSERS = [(f"transformer.transformer_blocks.{i}.{leaf}", a, b) for i in (0, 18) for leaf, a, b in (
    ("attn.to_q", H, H), ("attn.to_k", H, H), ("attn.to_v", H, H), ("attn.add_k_proj", H, H),
    ("ff.net.0.proj", H, 4 * H), ("norm1.linear", H, 6 * H))]
FLUX_DIFFUSERS += [(f"transformer.single_transformer_blocks.37.{leaf}", a, b) for leaf, a, b in (
    ("attn.to_q", H, H), ("attn.to_v", H, H), ("proj_mlp", H, 4 * H), ("proj_out", 5 * H, H))]


def test_diffusers_flux_converts_to_original_layers_exactly(tmp_path):
    """to_q/to_k/to_v stack into img_attn.qkv, q/k/v/proj_mlp into linear1: ΔW rows land where the model has them."""
    src = write(tmp_path / "loras/style/x/d.safetensors", FLUX_DIFFUSERS, rank=4, alpha=None, seed=5)
    lib = Library(tmp_path / "loras")
    lib.scan_all()
    out = tmp_path / "k.safetensors"
    res = run(lib, "convert", str(src), "--to", "kohya", "--out", str(out))
    assert res.exit_code == 0, res.output
    got, d = deltas(out), deltas(src)
    qkv = got["lora_unet_double_blocks_18_img_attn_qkv"]
    for n, leaf in enumerate(("to_q", "to_k", "to_v")):
        assert np.allclose(qkv[n * H:(n + 1) * H], d[f"transformer.transformer_blocks.18.attn.{leaf}"], atol=1e-6)
    txt = got["lora_unet_double_blocks_0_txt_attn_qkv"]
    assert not txt[:H].any() and np.allclose(txt[H:2 * H], d["transformer.transformer_blocks.0.attn.add_k_proj"])
    lin1 = got["lora_unet_single_blocks_37_linear1"]
    assert lin1.shape == (7 * H, H) and not lin1[H:2 * H].any()
    assert np.allclose(lin1[3 * H:], d["transformer.single_transformer_blocks.37.proj_mlp"], atol=1e-6)
    assert np.allclose(got["lora_unet_double_blocks_0_img_mod_lin"], d["transformer.transformer_blocks.0.norm1.linear"])
    after = json.loads(run(lib, "check", str(out), "--client", "comfyui", "--json").output)[0]
    assert after["dropped"] == [] and after["mapped"] == after["total"]


def test_flux_in_both_namings_merges_onto_the_original_layers(tmp_path):
    lib = library(tmp_path, {"style/x/k.safetensors": (FLUX_KOHYA, 4, 2.0, 1),
                             "style/x/d.safetensors": (FLUX_DIFFUSERS, 4, None, 2)})
    out = lib.root / "style/x/kd.safetensors"
    res = run(lib, "mix", "k:0.5", "d:0.5", "--out", str(out))
    assert res.exit_code == 0, res.output
    got, k = deltas(out), deltas(lib.abspath("style/x/k.safetensors"))
    d = deltas(lib.abspath("style/x/d.safetensors"))
    qkv = got["lora_unet_double_blocks_0_img_attn_qkv"]
    want = 0.5 * k["lora_unet_double_blocks_0_img_attn_qkv"]
    for n, leaf in enumerate(("to_q", "to_k", "to_v")):
        want[n * H:(n + 1) * H] += 0.5 * d[f"transformer.transformer_blocks.0.attn.{leaf}"]
    assert np.abs(qkv - want).max() <= 2e-3 * np.abs(want).max()

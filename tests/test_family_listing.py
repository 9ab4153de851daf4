"""ls --base, search and the TUI's base filter speak the registry's family names and SDXL variants."""

from __future__ import annotations

import json

from click.testing import CliRunner

from catalog.index.browse import View, facet, page
from lutnav.sample_loras import Module, lora_modules, lora_tensors
from catalog.index.library import Library
from lutnav.cli import cli

from .test_classify import lora_file


def _library(tmp_path):
    root = tmp_path / "loras"
    (root / "style/a").mkdir(parents=True)
    (root / "style/b").mkdir(parents=True)
    flux = [Module(f"lora_unet_double_blocks_{i}_img_mod_lin", 3072, 18432) for i in range(19)]
    lora_file(root / "style/a", lora_tensors(flux, 4, 4.0), alpha=4.0, name="ink_flux.safetensors")
    qwen = [Module(f"transformer.transformer_blocks.{i}.img_mod.1", 3072, 18432, style="diffusers") for i in range(60)]
    lora_file(root / "style/a", lora_tensors(qwen, 4, None), name="ink_qwen.safetensors")
    sdxl = lora_tensors(lora_modules("sdxl", parts=("unet",)), 4, 4.0)
    lora_file(root / "style/b", sdxl, alpha=4.0, name="pony_style.safetensors")
    (root / "style/b/pony_style.civitai.info").write_text(json.dumps({"baseModel": "Pony"}))
    lora_file(root / "style/b", sdxl, alpha=4.0, name="plain_xl.safetensors",
              metadata={"ss_sd_model_name": "illustriousXL_v01.safetensors"})
    lib = Library(root)
    lib.scan_all()
    return lib


def run(lib, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


def test_ls_base_takes_every_family_and_variant(tmp_path):
    lib = _library(tmp_path)
    names = lambda res: sorted(e["name"] for e in json.loads(res.output))
    assert names(run(lib, "ls", "--base", "flux", "--json")) == ["ink_flux"]
    assert names(run(lib, "ls", "--base", "qwen-image", "--json")) == ["ink_qwen"]
    assert names(run(lib, "ls", "--base", "sdxl", "--json")) == ["plain_xl", "pony_style"]
    pony = json.loads(run(lib, "ls", "--base", "pony", "--json").output)
    assert [(e["name"], e["base_model"], e["base_variant"]) for e in pony] == [("pony_style", "sdxl", "pony")]
    assert names(run(lib, "ls", "--base", "illustrious", "--json")) == ["plain_xl"]
    table = run(lib, "ls", "--base", "sdxl").output
    assert "sdxl (pony)" in table and "sdxl (illustrious)" in table
    assert run(lib, "ls", "--base", "z-image", "--json").output.strip() == "[]"


def test_a_misspelt_base_names_the_nearest_families(tmp_path):
    lib = _library(tmp_path)
    res = run(lib, "ls", "--base", "qwen_image")
    assert res.exit_code == 2 and "qwen-image" in res.output


def test_search_reads_a_family_word_as_the_base_filter(tmp_path):
    lib = _library(tmp_path)
    hits = json.loads(run(lib, "search", "ink qwen-image", "--json").output)
    assert [e["name"] for e in hits] == ["ink_qwen"]


def test_tui_base_filter_offers_families_and_variants(tmp_path):
    lib = _library(tmp_path)
    values = dict(facet(lib, "base_model"))
    assert values["flux"] == 1 and values["qwen-image"] == 1 and values["sdxl"] == 2 and values["pony"] == 1
    rows = page(lib, View(base="pony"), limit=10)
    assert [r.name for r in rows] == ["pony_style"]


def test_a_sidecar_claim_picks_among_the_families_the_shapes_allow(tmp_path):
    """Flux attention + MLP without modulation fits Flux.1 and Chroma alike; Civitai's baseModel settles it."""
    root = tmp_path / "loras"
    (root / "style/c").mkdir(parents=True)
    h = 3072
    mods = [Module(f"transformer.transformer_blocks.{i}.{leaf}", a, b, style="diffusers") for i in range(19)
            for leaf, a, b in (("attn.to_q", h, h), ("ff.net.0.proj", h, 4 * h))]
    mods += [Module(f"transformer.single_transformer_blocks.{i}.proj_mlp", h, 4 * h, style="diffusers")
             for i in range(38)]
    for name in ("bare", "claimed", "against"):
        lora_file(root / "style/c", lora_tensors(mods, 4, None), name=f"{name}.safetensors")
    (root / "style/c/claimed.civitai.info").write_text(json.dumps({"baseModel": "Flux.1 D"}))
    (root / "style/c/against.civitai.info").write_text(json.dumps({"baseModel": "SDXL 1.0"}))
    lib = Library(root)
    lib.scan_all()
    bare, claimed, against = (lib.get(f"style/c/{n}.safetensors") for n in ("bare", "claimed", "against"))
    assert bare.base_model == "unknown" and bare.base_candidates == ["chroma", "flux"]
    assert any("chroma or flux" in w for w in bare.warnings)
    assert claimed.base_model == "flux" and "picks flux" in claimed.sources["base_model"]
    assert not any(w.startswith("base model unknown") for w in claimed.warnings)
    assert against.base_model == "unknown"  # a claim outside what the shapes allow picks nothing
    (root / "style/c/claimed.civitai.info").write_text(json.dumps({"baseModel": "Chroma"}))
    lib.scan_all()
    assert lib.get("style/c/claimed.safetensors").base_model == "chroma"

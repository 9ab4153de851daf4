"""``lutnav mix`` / ``check`` / ``convert`` through the real CLI, on a tiny library built by code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lutnav.cli import cli
from tests.mixlib import build_library


@pytest.fixture
def lib(tmp_path):
    return build_library(tmp_path / "loras")


def run(lib, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


def leftovers(folder):
    """Temp files a failed write would leave behind."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_mix_prints_the_a1111_tag_line_with_card_defaults(lib):
    res = run(lib, "mix", "ink", "hero:0.3")
    assert res.exit_code == 0, res.output
    # ink has no weight: its card's strength (0.6) is used; its trigger words follow
    assert res.output.strip() == "<lora:ink:0.6> <lora:hero:0.3> ink wash"


def test_mix_comfy_prints_a_loraloader_chain(lib):
    res = run(lib, "mix", "ink:0.6", "hero:0.3", "--comfy", "--checkpoint", "sd15.safetensors")
    assert res.exit_code == 0, res.output
    graph = json.loads(res.output)
    loaders = [n for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert [n["inputs"]["lora_name"] for n in loaders] == ["style/ink/ink.safetensors",
                                                           "character/hero/hero.safetensors"]
    assert loaders[1]["inputs"]["model"] == ["2", 0] and loaders[1]["inputs"]["strength_clip"] == 0.3
    assert graph["1"]["inputs"]["ckpt_name"] == "sd15.safetensors"


def test_over_the_total_is_refused_and_force_passes_it(lib):
    res = run(lib, "mix", "ink:0.7", "hero:0.5")
    assert res.exit_code == 1
    assert "refused: total strength 1.20 > max_total 1" in res.output
    assert "<lora:" not in res.output
    res = run(lib, "mix", "ink:0.7", "hero:0.5", "--force")
    assert res.exit_code == 0
    assert "warning: total strength 1.20" in res.output and "<lora:ink:0.7>" in res.output


def test_config_limits_apply(tmp_path):
    lib = build_library(tmp_path / "loras", config="[mix]\nmax_total = 1.5\n")
    assert run(lib, "mix", "ink:0.7", "hero:0.5").exit_code == 0


@pytest.mark.parametrize("args, expected", [
    (["nosuch:0.5"], "no entry named 'nosuch'"),
    (["dup:0.5"], "matches 2 entries"),
    (["ink:abc"], "weight 'abc' is not a number"),
    (["ink:"], "missing the weight"),
    (["ink:nan"], "finite number"),
    (["ink:0.3", "style/ink/ink.safetensors:0.3"], "twice"),
    (["ink:0.5", "broken:0.3"], "broken is broken"),
    (["ink:0.5", "old:0.3"], "old is a pickle file"),
    (["ink:0.5", "xl:0.3", "--force"], "base models differ: ink is sd1, xl is sdxl"),
    (["ink:0.5", "qa_adapter:0.3", "--force"], "LLM adapters cannot blend"),
])
def test_bad_input_is_one_line_and_exit_1(lib, args, expected):
    res = run(lib, "mix", *args)
    assert res.exit_code == 1
    assert expected in res.output
    assert "Traceback" not in res.output


def test_bad_out_paths_are_refused_before_any_work(lib, tmp_path):
    existing = tmp_path / "blend.safetensors"
    existing.write_bytes(b"keep me")
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(existing))
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert existing.read_bytes() == b"keep me"
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(tmp_path / "nope" / "b.safetensors"))
    assert res.exit_code == 1 and "does not exist" in res.output
    assert not (tmp_path / "nope").exists()
    res = run(lib, "mix", "ink:0.5", "--rank", "4")
    assert res.exit_code == 2 and "--rank needs --out" in res.output
    assert leftovers(tmp_path) == []


def test_recipe_unknown_key_names_line_and_nearest_key(lib, tmp_path):
    recipe = tmp_path / "blend.toml"
    recipe.write_text('name = "ink_hero"\n\n[[lora]]\nname = "ink"\nweight = 0.6\n\n'
                      '[[lora]]\nname = "hero"\nwieght = 0.3\n')
    res = run(lib, "mix", "--recipe", str(recipe))
    assert res.exit_code == 1
    assert "line 9" in res.output and "`wieght`" in res.output and "did you mean `weight`" in res.output
    recipe.write_text('# ink, smaller\nout = "b.safetensors"\nrnak = 4\n[[lora]]\nname = "ink"\n')
    res = run(lib, "mix", "--recipe", str(recipe))
    assert "line 3" in res.output and "did you mean `rank`" in res.output


def test_recipe_runs_like_the_command_line(lib, tmp_path):
    recipe = tmp_path / "blend.toml"
    recipe.write_text('[[lora]]\nname = "ink"\nweight = 0.6\n\n[[lora]]\nname = "hero"\nweight = 0.3\n')
    res = run(lib, "mix", "--recipe", str(recipe))
    assert res.exit_code == 0, res.output
    assert res.output.strip().startswith("<lora:ink:0.6> <lora:hero:0.3>")
    recipe.write_text('force = true\n[[lora]]\nname = "ink"\nweight = 0.9\n\n'
                      '[[lora]]\nname = "hero"\nweight = 0.9\n')
    assert run(lib, "mix", "--recipe", str(recipe)).exit_code == 0
    recipe.write_text('[[lora]]\nname = "ink"\nweight = "strong"\n')
    res = run(lib, "mix", "--recipe", str(recipe))
    assert res.exit_code == 1 and "line 3" in res.output and "lora.0.weight" in res.output


def test_check_reports_what_each_client_drops(lib):
    res = run(lib, "check", "zz", "--json")
    assert res.exit_code == 0
    reports = {r["client"]: r for r in json.loads(res.output)}
    # zz (diffusers names): its 4 UNet modules are attention pairs; the text-encoder pair is kept
    assert len(reports["comfyui"]["dropped"]) == 8 and reports["comfyui"]["mapped"] == 2
    assert len(reports["a1111"]["dropped"]) == 10
    assert reports["diffusers"]["dropped"] == []
    res = run(lib, "check", "ink", "--client", "comfyui")
    assert res.exit_code == 0 and "will load 15 of 15 tensors" in res.output


def test_convert_to_kohya_then_every_client_maps_everything(lib, tmp_path):
    out = tmp_path / "zz_kohya.safetensors"
    res = run(lib, "convert", "zz", "--to", "kohya", "--out", str(out))
    assert res.exit_code == 0, res.output
    res = run(lib, "check", str(out), "--json")
    assert all(r["dropped"] == [] for r in json.loads(res.output))
    again = run(lib, "convert", "zz", "--to", "kohya", "--out", str(out))
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_preview_without_diffusers_says_how_to_install(lib, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_diffusers(name, *args, **kwargs):
        if name == "diffusers" or name.startswith("diffusers."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    model = lib.root / "sd1-model"  # configured, so the check reaches the missing extra
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    (model / "unet" / "config.json").write_text('{"cross_attention_dim": 768}')
    (lib.root / ".lutnav" / "config.toml").write_text('[models]\nsd1 = "sd1-model"\n')
    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    res = run(lib, "preview", "ink")
    assert res.exit_code == 1
    assert "pip install 'lutnav[train]'" in res.output and len(res.output.strip().splitlines()) == 1


def test_guards_take_the_ls_json_objects_as_they_are(lib):
    from lutnav.mix.guards import check_blend

    by_name = {e.name: e for e in lib.entries()}
    verdict = check_blend([by_name["ink"], by_name["hero"]], [0.6, 0.3], lib.config)
    assert verdict.ok and verdict.warnings == []
    verdict = check_blend([by_name["ink"], by_name["xl"]], [0.5, 0.5], lib.config, force=True)
    assert not verdict.ok
    verdict = check_blend([by_name["ink"]], [0.9], lib.config)  # its card says 0.4 ~ 0.8
    assert verdict.ok and "strength_range [0.4, 0.8]" in verdict.warnings[0]


def test_recipe_schema_is_a_valid_schema_and_paths_are_relative_to_the_recipe(tmp_path):
    from jsonschema import Draft202012Validator

    import schemas
    from lutnav.mix.recipe import load_recipe

    Draft202012Validator.check_schema(schemas.load("mix-recipe"))
    (tmp_path / "blends").mkdir()
    recipe = tmp_path / "blends" / "ink_hero.toml"
    recipe.write_text('out = "out/ink_hero.safetensors"\nrank = 8\n[[lora]]\nname = "ink"\n'
                      '[preview]\nprompt = "mountains"\nsteps = 4\n')
    r = load_recipe(recipe)
    assert r.name == "ink_hero" and r.rank == 8 and r.specs[0].weight is None
    assert r.out == tmp_path / "blends" / "out" / "ink_hero.safetensors"
    assert r.preview == {"prompt": "mountains", "steps": 4}

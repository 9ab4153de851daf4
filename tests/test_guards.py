"""The blend guards as a pure function over entries (what the TUI basket holds)."""

from __future__ import annotations

import math

import pytest

from catalog.index.entry import Entry
from lutnav.mix.errors import MixError
from lutnav.mix.guards import check_blend, mix_config, module_set


def entry(name: str, base: str = "sd1", **extra) -> Entry:
    e = {"path": f"style/x/{name}.safetensors", "name": name, "base_model": base, "format": "kohya",
         "error": None, "parts": ["unet", "te"], "strength_range": None}
    e.update(extra)
    return Entry(**e)


def test_the_seed_workflow_blend_passes():
    v = check_blend([entry("ink"), entry("hero")], [0.7, 0.3], {})
    assert v.ok and not v.refusals and not v.warnings


def test_total_strength_over_one_is_refused_with_numbers_and_the_way_out():
    v = check_blend([entry("ink"), entry("hero")], [0.7, 0.5], {})
    assert not v.ok
    [line] = v.refusals
    assert "1.20 > max_total 1" in line and "ink 0.7 + hero 0.5" in line and "--force" in line


def test_negative_weights_count_by_magnitude():
    assert not check_blend([entry("ink"), entry("hero")], [0.7, -0.5], {}).ok


def test_force_passes_soft_rules_but_still_says_why():
    v = check_blend([entry("a"), entry("b"), entry("c")], [0.6, 0.6, 0.6], {}, force=True)
    assert v.ok
    assert any("max_loras 2" in w and "passed with --force" in w for w in v.warnings)
    assert any("max_total" in w for w in v.warnings)


def test_limits_come_from_the_config():
    config = {"mix": {"max_loras": 3, "max_total": 2.0, "weight_range": [-1, 1]}}
    assert check_blend([entry("a"), entry("b"), entry("c")], [0.6, 0.6, 0.6], config).ok
    v = check_blend([entry("a")], [1.5], config)
    assert not v.ok and "outside weight_range [-1, 1]" in v.refusals[0]


@pytest.mark.parametrize("bad", [{"max_total": "lots"}, {"weight_range": [2, -2]}, {"max_loras": 1.5},
                                 {"max_total": True}])
def test_a_wrong_config_value_is_one_clear_error(bad):
    with pytest.raises(MixError, match=r"\[mix\]"):
        mix_config({"mix": bad})


def test_different_base_models_are_refused_even_with_force():
    v = check_blend([entry("ink"), entry("xl", "sdxl")], [0.5, 0.5], {}, force=True)
    assert not v.ok
    assert "ink is sd1" in v.refusals[0] and "xl is sdxl" in v.refusals[0]
    v = check_blend([entry("ink"), entry("qa", "llm", format="peft")], [0.5, 0.5], {}, force=True)
    assert "LLM adapters cannot blend" in v.refusals[0]


def test_unknown_base_is_a_warning_only():
    v = check_blend([entry("ink"), entry("odd", "unknown")], [0.5, 0.5], {})
    assert v.ok and any("odd: base model unknown" in w for w in v.warnings)


def test_broken_pickle_and_twice_are_hard_refusals():
    broken = entry("b", error="file.safetensors: cut short")
    pickle = entry("p", "unknown", format="pickle")
    v = check_blend([broken, pickle], [0.3, 0.3], {}, force=True)
    assert not v.ok
    assert any("b is broken: file.safetensors: cut short" in r for r in v.refusals)
    assert any("p is a pickle file" in r for r in v.refusals)
    v = check_blend([entry("ink"), entry("ink")], [0.3, 0.3], {}, force=True)
    assert not v.ok and "twice" in v.refusals[0]


def test_card_strength_range_is_a_warning():
    v = check_blend([entry("ink", strength_range=[0.6, 0.8])], [0.9], {})
    assert v.ok and "strength_range [0.6, 0.8]" in v.warnings[0]


def test_nan_weight_is_refused():
    v = check_blend([entry("ink")], [math.nan], {}, force=True)
    assert not v.ok and "not a finite number" in v.refusals[0]


def test_disjoint_modules_give_a_note():
    v = check_blend([entry("a"), entry("b")], [0.5, 0.5], {},
                    modules=[{("unet", "x")}, {("te1", "y")}])
    assert v.ok and "touch no common module" in v.notes[0]
    v = check_blend([entry("a", parts=["unet"]), entry("b", parts=["te"])], [0.5, 0.5], {})
    assert v.notes
    assert not check_blend([entry("a"), entry("b")], [0.5, 0.5], {},
                           modules=[{("unet", "x")}, {("unet", "x")}]).notes


def test_module_set_agrees_across_spellings(tmp_path):
    from tests.mixlib import SD1_PICK, pick, write_lora

    kohya = write_lora(tmp_path / "k.safetensors", pick("sd1", SD1_PICK))
    diffusers = write_lora(tmp_path / "d.safetensors", pick("sd1", SD1_PICK, style="diffusers"), alpha=None)
    assert module_set(kohya) == module_set(diffusers)
    assert len(module_set(kohya)) == len(SD1_PICK)

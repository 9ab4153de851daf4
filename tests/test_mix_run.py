"""``lutnav.mix.run(MixRequest(...))`` without the command line: what the CLI and TUI build on."""

from __future__ import annotations

import pytest

from catalog.progress import Progress, collect, finish
from lutnav.mix import Line, MixRequest, run
from lutnav.mix.errors import MixUsageError, OutputExists
from lutnav.prompt_tags import Spec
from tests.mixlib import build_library


@pytest.fixture
def lib(tmp_path):
    return build_library(tmp_path / "loras")


def test_exact_merge_writes_cards_and_indexes_the_blend(lib):
    from catalog.files.header import read_header

    out = lib.root / "style/ink/blend.safetensors"
    said: list[Line] = []
    steps, result = collect(run(MixRequest(lib, [Spec("ink", 0.5), Spec("zz", 0.3)], out=out),
                                         say=said.append))
    assert result.ok and result.written == out and result.sampling is None
    assert steps and all(isinstance(s, Progress) for s in steps)
    assert steps[-1].done == steps[-1].total == 5  # one step per module of the union
    meta = read_header(out).metadata
    assert meta["ss_merged_from"] == "ink, zz" and meta["ss_merge_method"] == "concat"
    assert meta["modelspec.description"] == f"lutnav mix ink:0.5 zz:0.3 --out {out.name}"
    entry = lib.get("blend")
    assert entry.parents == ["style/ink/ink.safetensors", "character/cat/zz.safetensors"]
    assert entry.rank == 8
    # what the CLI prints: the notes on stderr, the new entry's tag on stdout, in this order
    assert said == result.lines
    notes = [line.text for line in said if line.err]
    assert notes[0].startswith(f"wrote {out} (5 modules, exact, max rank 8,")
    assert notes[1] == "indexed as style/ink/blend.safetensors (card lists its parents)"
    assert [line.text for line in said if not line.err] == ["<lora:blend:1>"]


def test_a_blend_over_the_limits_is_refused_before_any_work(lib, tmp_path):
    out = tmp_path / "blend.safetensors"
    steps, result = collect(run(MixRequest(lib, [Spec("ink", 0.7), Spec("hero", 0.5)], out=out)))
    assert not result.ok and steps == []
    assert result.lines == [Line("refused: total strength 1.20 > max_total 1 (ink 0.7 + hero 0.5; "
                                 "[mix] in .lutnav/config.toml) — lower the weights, raise the limit, "
                                 "or pass --force", err=True)]
    assert result.written is None and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "loras"] == []


def test_force_passes_the_soft_guards_and_says_why(lib):
    result = finish(run(MixRequest(lib, [Spec("ink", 0.7), Spec("hero", 0.5)], force=True)))
    assert result.ok
    texts = [(line.err, line.text) for line in result.lines]
    assert texts[0][0] and texts[0][1].startswith("warning: total strength 1.20")
    assert texts[-1] == (False, "<lora:ink:0.7> <lora:hero:0.5> ink wash")


def test_hard_refusals_hold_even_with_force(lib):
    result = finish(run(MixRequest(lib, [Spec("ink", 0.5), Spec("xl", 0.3)], force=True)))
    assert not result.ok
    assert any("base models differ: ink is sd1, xl is sdxl" in r for r in result.verdict.refusals)


def test_comfy_chain_comes_back_as_json(lib):
    result = finish(run(MixRequest(lib, [Spec("ink", 0.6), Spec("hero", 0.3)], comfy=True,
                                   checkpoint="sd15.safetensors")))
    (line,) = [line for line in result.lines if not line.err]
    assert line.json["1"]["inputs"]["ckpt_name"] == "sd15.safetensors"


def test_an_existing_output_is_refused_untouched(lib, tmp_path):
    out = tmp_path / "blend.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExists):
        finish(run(MixRequest(lib, [Spec("ink", 0.5), Spec("hero", 0.3)], out=out)))
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("options, message", [
    ({"rank": 4}, "--rank needs --out"),
    ({"into_model": "base.safetensors"}, "--into-model needs --out"),
    ({"out": "b.safetensors", "into_model": "base.safetensors", "rank": 4}, "takes no --rank"),
])
def test_options_that_do_not_fit_are_refused_when_the_request_is_made(lib, options, message):
    with pytest.raises(MixUsageError, match=message):
        MixRequest(lib, [Spec("ink", 0.5)], **options)


def test_llm_adapters_without_an_out_folder_are_a_usage_error(lib):
    with pytest.raises(MixUsageError, match="pass --out DIR"):
        finish(run(MixRequest(lib, [Spec("qa_adapter", 0.5)])))

"""Tags and ComfyUI chains stay well-formed whatever a file (or a card) is called."""

from __future__ import annotations

import json

import pytest

from tests.hubserver import run
from tests.lorafiles import write_kohya

HOSTILE = ["new\nline", "tab\there", "a<b>c", "cr\rlf", "bell\x07", "sep\u2028x", "rtl\u202eevil", "nel\x85x"]


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "loras"
    for i, name in enumerate(HOSTILE):
        write_kohya(root / "style" / "odd" / f"{name}.safetensors", seed=i)
    (root / "style" / "odd" / "a<b>c.toml").write_text(
        'trigger_words = ["two\\nlines", "<lora:evil:5>"]\n', "utf-8")
    run(root, "scan")
    return root


def _single_tag(line: str) -> str:
    assert line.count("<") == 1 and line.count(">") == 1, line
    return line


@pytest.mark.parametrize("name", HOSTILE)
def test_prompt_prints_one_line_with_one_tag(library, name):
    out = run(library, "prompt", f"{name}:0.5").output
    assert out.endswith("\n") and "\n" not in out[:-1] and "\r" not in out and "\u2028" not in out
    tag = _single_tag(out.strip())
    assert tag.startswith("<lora:") and tag.endswith(":0.5>")
    inner = tag[len("<lora:"):-len(":0.5>")]
    assert ":" not in inner and all(ch.isprintable() for ch in inner)


def test_mix_tag_line_cleans_names_and_trigger_words(library):
    out = run(library, "mix", "a<b>c:0.4", "--force").output
    line = [ln for ln in out.splitlines() if ln.startswith("<lora:")]
    assert len(line) == 1
    assert line[0].count("<") == 1 and "evil" in line[0] and "two lines" in line[0]


def test_comfy_chain_titles_are_clean_and_names_exact(library):
    out = run(library, "mix", "new\nline:0.4", "a<b>c:0.3", "--comfy", "--force").output
    graph = json.loads(out[out.index("{"):])
    loras = [n for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert [n["inputs"]["lora_name"] for n in loras] == ["style/odd/new\nline.safetensors",
                                                         "style/odd/a<b>c.safetensors"]
    for node in loras:
        assert node["_meta"]["title"].isprintable() and "<" not in node["_meta"]["title"]

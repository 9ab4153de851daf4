"""Every verb fed the wrong kind of argument: one line on stderr, a non-zero exit, no traceback.

The argument rule is the same everywhere: a bare word is an entry name looked up
in the catalog; a path contains a separator or starts with ``.`` or ``~``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
from click.testing import CliRunner

from lutnav.cli import cli
from lutnav.demo import write_demo

#: kind → the argument given
KINDS = {
    "folder": "./afolder",
    "pickle file": "./old.ckpt",
    "truncated file": "./cut.safetensors",
    "missing file": "./missing.safetensors",
    "pickle entry": "anime_lineart_2022",
    "truncated entry": "broken_download",
    "missing name": "nope",
}

#: verb → its command line, ``{}`` standing for the argument
VERBS = {
    "show": ["show", "{}"],
    "card": ["card", "{}", "--set", "strength=0.5"],
    "hash": ["hash", "{}"],
    "prompt": ["prompt", "{}"],
    "export": ["export", "{}", "--zip", "out.zip"],
    "mix": ["mix", "{}:0.5", "herocat:0.3"],
    "convert": ["convert", "{}", "--to", "kohya"],
    "check": ["check", "{}"],
    "preview": ["preview", "{}"],
    "grid": ["grid", "{}"],
    "chat": ["chat", "{}", "-p", "hi"],
    "pull": ["pull", "{}"],
}

#: combinations that rightly succeed: the catalog shows, annotates and hashes any entry
ALLOWED = {("show", "pickle entry"), ("show", "truncated entry"), ("card", "pickle entry"),
           ("card", "truncated entry"), ("hash", "pickle entry"), ("hash", "truncated entry"),
           ("prompt", "pickle entry")}
#: `pull NAME` asks the Hub; offline that is its own one-line error, tested with the hub tests
HUB = {("pull", "pickle entry"), ("pull", "truncated entry"), ("pull", "missing name")}

OTHER_FAMILY = {
    "preview": ["preview", "ink_wash_v2", "--model", "./xl_model"],
    "grid": ["grid", "ink_wash_v2", "--checkpoints", "./xl_model"],
    "grid-config": ["grid", "ink_wash_v2"],
    "mix": ["mix", "ink_wash_v2:0.7", "watercolor_sdxl:0.3"],
    "chat": ["chat", "ink_wash_v2", "-p", "hi"],
    "convert": ["convert", "med_qa", "--to", "kohya"],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    base = tmp_path_factory.mktemp("wrong")
    write_demo(base / "loras")
    (base / "afolder").mkdir()
    (base / "afolder" / "notes.txt").write_text("not a LoRA")
    (base / "old.ckpt").write_bytes(pickle.dumps({"state_dict": {}}))
    shutil.copy(base / "loras/character/cats/broken_download.safetensors", base / "cut.safetensors")
    (base / "herocat").mkdir()  # a folder named like an entry: the bare word still means the entry
    xl = base / "xl_model"  # an SDXL diffusers folder: its configs say so, no weights needed
    (xl / "unet").mkdir(parents=True)
    (xl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline",
                                                     "text_encoder_2": ["transformers", "CLIPTextModel"]}))
    (xl / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 2048,
                                                        "addition_embed_type": "text_time"}))
    config = base / "loras" / ".lutnav" / "config.toml"
    config.parent.mkdir(exist_ok=True)
    config.write_text('[models]\nsd1 = "../xl_model"\n')
    return base


def _run(workdir, argv):
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return CliRunner().invoke(cli, ["--library", "loras", *argv])
    finally:
        os.chdir(cwd)


def _assert_one_line(result, what):
    assert result.exit_code not in (0, None), f"{what}: exit 0\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{what}: raised {result.exception!r}"
    assert "Traceback" not in result.output, what
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{what}: stderr is not one line:\n{result.stderr}"
    assert result.stdout.strip() == "", f"{what}: printed to stdout:\n{result.stdout}"


CASES = [(verb, kind) for verb in VERBS for kind in KINDS if (verb, kind) not in ALLOWED | HUB]


@pytest.mark.parametrize(("verb", "kind"), CASES, ids=[f"{v}-{k.replace(' ', '_')}" for v, k in CASES])
def test_wrong_kind_argument_is_one_line_and_a_non_zero_exit(workdir, verb, kind):
    argv = [a.replace("{}", KINDS[kind]) for a in VERBS[verb]]
    _assert_one_line(_run(workdir, argv), f"{verb} {KINDS[kind]}")


@pytest.mark.parametrize("case", sorted(OTHER_FAMILY))
def test_other_family_is_refused_before_anything_loads(workdir, case):
    result = _run(workdir, OTHER_FAMILY[case])
    _assert_one_line(result, case)
    if case in ("preview", "grid", "grid-config"):
        assert "xl_model is sdxl, the LoRA is sd1 — pick a sd1 checkpoint" in result.stderr


def test_train_given_a_folder_for_its_config_is_one_line(workdir):
    _assert_one_line(_run(workdir, ["train", "./afolder", "--check"]), "train ./afolder")


def test_a_bare_word_is_an_entry_even_beside_a_folder_of_that_name(workdir):
    result = _run(workdir, ["convert", "herocat", "--to", "diffusers", "--out", "hero.safetensors"])
    assert result.exit_code == 0, result.output
    assert (workdir / "hero.safetensors").is_file()
    result = _run(workdir, ["convert", "./herocat", "--to", "kohya"])
    assert "herocat: folder is not a PEFT adapter" in result.stderr


@pytest.mark.slow
def test_a_lora_of_other_widths_on_a_checkpoint_of_its_family_is_one_line(tmp_path, monkeypatch):
    """Family checks pass (both SD1), the shapes do not: one line, not pages of size mismatches."""
    pytest.importorskip("diffusers")
    from tests.lorafiles import write_kohya
    from trainers.image.tiny import write_tiny_sd

    model = write_tiny_sd(tmp_path / "sd1-tiny", channels=(32, 64))
    root = tmp_path / "loras"
    write_kohya(root / "style" / "full" / "full_size.safetensors")  # SD 1.5 widths (320, 640, …)
    (root / ".lutnav").mkdir()
    (root / ".lutnav" / "config.toml").write_text(f'[models]\nsd1 = "{model}"\n[preview]\nsteps = 1\nsize = 64\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--library", str(root), "preview", "full_size"])
    _assert_one_line(result, "preview full_size")
    assert "does not fit the checkpoint" in result.stderr and "size mismatch" in result.stderr

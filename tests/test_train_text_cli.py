"""`lutnav train` / `lutnav chat` on a tiny random Llama: plan, train, file into the library, talk to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lutnav.cli import cli  # noqa: E402
from trainers.text.tiny import color_facts, write_jsonl, write_tiny_llama  # noqa: E402

CONFIG = """\
task_type = "text-generation"
base_model = "tiny-llama"
train_data = "facts.jsonl"
eval_split = 0.1
lora_rank = 4
alpha = 8
batch_size = 8
max_steps = 12
learning_rate = 1e-2
save_steps = 6
name = "color_facts"
category = "industry"
theme = "colors"
description = "Knows the colour of things."
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    write_tiny_llama(root / "tiny-llama")
    write_jsonl(root / "facts.jsonl", color_facts(60, seed=3))
    (root / "cfg.toml").write_text(CONFIG, "utf-8")
    (root / "lib").mkdir()
    return root


def invoke(root: Path, *args: str):
    return CliRunner().invoke(cli, ["--library", str(root / "lib"), *args], catch_exceptions=False)


def test_check_prints_the_plan_and_writes_nothing(setup):
    result = invoke(setup, "train", str(setup / "cfg.toml"), "--check")
    assert result.exit_code == 0, result.output
    assert "format          instruction (auto:" in result.output
    assert "steps           12 (7 per epoch, 1.71 epochs)" in result.output
    assert "industry/colors/color_facts/" in result.output
    assert not (setup / "output").exists()


def test_check_reports_bad_data_as_one_error(setup, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"\n', "utf-8")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(CONFIG.replace('"facts.jsonl"', json.dumps(str(bad))).replace(
        '"tiny-llama"', json.dumps(str(setup / "tiny-llama"))), "utf-8")
    result = CliRunner().invoke(cli, ["--library", str(setup / "lib"), "train", str(cfg), "--check"])
    assert result.exit_code == 1
    assert f"{bad}:2: not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_train_files_the_adapter_and_chat_answers(setup, tmp_path):
    merged = tmp_path / "merged"
    result = invoke(setup, "train", str(setup / "cfg.toml"), "--merge-into", str(merged))
    assert result.exit_code == 0, result.output
    assert "filed industry/colors/color_facts" in result.output

    entries = json.loads(invoke(setup, "ls", "--json").output)
    entry = next(e for e in entries if e["name"] == "color_facts")
    assert (entry["base_model"], entry["format"], entry["rank"], entry["alpha"]) == ("llm", "peft", 4, 8.0)
    folder = setup / "lib" / "industry" / "colors" / "color_facts"
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                         "lutnav.toml"]
    card = (folder / "lutnav.toml").read_text("utf-8")
    assert 'description = "Knows the colour of things."' in card and "eval_loss = " in card
    assert f'base_model_claim = "{setup / "tiny-llama"}"' in card

    shown = json.loads(invoke(setup, "show", "color_facts", "--json").output)
    assert shown["training"]["steps"] == 12 and shown["training"]["data"]["train_examples"] == 54

    chat = invoke(setup, "chat", "color_facts", "--prompt", "what is the color of the sky ?",
                  "--max-new-tokens", "6")
    assert chat.exit_code == 0 and chat.output.strip()

    # the merged model computes what base + adapter compute
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[2, 5, 9, 14, 20, 7]])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(setup / "tiny-llama")),
                                             str(folder)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(str(merged))(ids).logits
    assert torch.allclose(got, expected, atol=1e-4)

    again = CliRunner().invoke(cli, ["--library", str(setup / "lib"), "train", str(setup / "cfg.toml")])
    assert again.exit_code == 1 and "already has an entry" in again.output and "overwrite" in again.output


def test_a_library_named_with_library_is_created_and_the_result_filed(setup, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.replace('"facts.jsonl"', json.dumps(str(setup / "facts.jsonl"))).replace(
        '"tiny-llama"', json.dumps(str(setup / "tiny-llama"))).replace("max_steps = 12", "max_steps = 2"),
        "utf-8")
    target = tmp_path / "new-lib"
    check = CliRunner().invoke(cli, ["train", str(cfg), "--check", "--library", str(target)])
    assert f"library         {target} (will be created)" in check.output
    assert not target.exists()
    result = CliRunner().invoke(cli, ["train", str(cfg), "--library", str(target)])
    assert result.exit_code == 0, result.output
    assert f"created library {target}" in result.output
    assert (target / "industry" / "colors" / "color_facts" / "adapter_config.json").is_file()

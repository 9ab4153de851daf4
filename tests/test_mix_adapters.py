"""`lutnav mix` of two LLM adapters on one base: guards, then peft's weighted adapter."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lutnav.cli import cli

pytestmark = pytest.mark.slow


def _adapter(base, folder, seed: int, rank: int = 4):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=rank, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(folder)
    return folder


def test_two_adapters_blend_into_a_new_indexed_adapter(tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainers.text.tiny import write_tiny_llama

    base = write_tiny_llama(tmp_path / "base")
    root = tmp_path / "loras"
    _adapter(base, root / "industry" / "medical" / "med_a", seed=1)
    _adapter(base, root / "industry" / "legal" / "law_b", seed=2)
    runner = CliRunner()
    lib = ["--library", str(root)]

    refused = runner.invoke(cli, [*lib, "mix", "med_a:0.8", "law_b:0.8", "--out", str(root / "industry" / "x")])
    assert refused.exit_code == 1 and "1.6" in refused.output
    assert not (root / "industry" / "x").exists()

    no_out = runner.invoke(cli, [*lib, "mix", "med_a:0.5", "law_b:0.5"])
    assert no_out.exit_code != 0 and "--out" in no_out.output

    out = root / "industry" / "medical" / "med_law"
    done = runner.invoke(cli, [*lib, "mix", "med_a:0.5", "law_b:0.5", "--out", str(out)])
    assert done.exit_code == 0, done.output
    entries = {e["name"]: e for e in json.loads(runner.invoke(cli, [*lib, "ls", "--json"]).output)}
    assert entries["med_law"]["format"] == "peft" and entries["med_law"]["base_model"] == "llm"
    assert entries["med_law"]["rank"] == 8  # exact: ranks concatenated

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out))
    ids = torch.tensor([[1, 2, 3, 4]])
    plain = AutoModelForCausalLM.from_pretrained(base)(ids).logits
    assert not torch.allclose(model(ids).logits, plain)

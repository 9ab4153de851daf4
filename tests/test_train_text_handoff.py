"""Filing a trained result into the library: complete entries, a card, an index that knows them (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.cards.card_file import read_card
from lutnav.sample_loras import LLMShape, lora_modules, lora_tensors
from catalog.index.library import Library
from catalog.files.safetensors_writer import write_safetensors
from trainers.errors import HandoffError
from trainers.handoff import clean_card, file_into_library

CARD = {"title": "med_qa", "description": "Answers medical questions.", "base_model_claim": "tiny/llama",
        "trigger_words": [], "training": {"steps": 40, "eval_loss": 1.25, "final_loss": None,
                                          "data": {"files": ["med.jsonl"], "truncated": 0}}}


def fake_adapter(folder: Path, rank: int = 8) -> Path:
    """A real-shaped PEFT folder as training writes it, plus a training_state/ that must stay behind."""
    folder.mkdir(parents=True)
    shape = LLMShape(hidden=64, intermediate=128, layers=2, kv_width=64)
    tensors = lora_tensors(lora_modules("llm", style="peft-llm", llm=shape), rank, None, "F32")
    write_safetensors(folder / "adapter_model.safetensors", {k: (d, s, None) for k, (d, s) in tensors.items()})
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
        "base_model_name_or_path": "tiny/llama",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}))
    (folder / "training_state").mkdir()
    (folder / "training_state" / "optimizer.bin").write_bytes(b"x" * 10)
    return folder


@pytest.fixture
def library(tmp_path) -> Path:
    root = tmp_path / "loras"
    root.mkdir()
    return root


def test_adapter_folder_is_filed_with_its_card_and_indexed(tmp_path, library):
    filed = file_into_library(library, fake_adapter(tmp_path / "out" / "checkpoint-40"), category="industry",
                              theme="medical", name="med_qa", card=CARD)
    assert filed.rel == "industry/medical/med_qa" and not filed.replaced
    assert sorted(p.name for p in filed.path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                            "lutnav.toml"]
    card, _ = read_card(filed.path / "lutnav.toml")
    assert card.description == "Answers medical questions." and card.training["eval_loss"] == 1.25
    assert "final_loss" not in card.training  # TOML has no null
    [entry] = Library(library).entries()
    assert (entry.format, entry.base_model, entry.rank, entry.alpha) == ("peft", "llm", 8, 16.0)
    assert not [p for p in (library / "industry" / "medical").iterdir() if p.name.startswith(".")]


def test_existing_entry_is_kept_unless_overwrite(tmp_path, library):
    first = fake_adapter(tmp_path / "a", rank=4)
    file_into_library(library, first, category="industry", theme="medical", name="med_qa", card=CARD)
    second = fake_adapter(tmp_path / "b", rank=16)
    with pytest.raises(HandoffError, match="already has an entry") as exc:
        file_into_library(library, second, category="industry", theme="medical", name="med_qa", card=CARD)
    assert "overwrite = true" in str(exc.value)
    assert Library(library).entries()[0].rank == 4
    filed = file_into_library(library, second, category="industry", theme="medical", name="med_qa",
                              card={**CARD, "description": "v2"}, overwrite=True)
    assert filed.replaced
    [entry] = Library(library).entries()
    assert entry.rank == 16 and read_card(filed.path / "lutnav.toml")[0].description == "v2"


def test_single_file_lora_gets_card_and_previews_beside_it(tmp_path, library):
    lora = tmp_path / "checkpoint-10" / "cats.safetensors"
    lora.parent.mkdir()
    tensors = lora_tensors(lora_modules("sd1", parts=("unet",)), 4, 4.0, "F16")
    write_safetensors(lora, {k: (d, s, None) for k, (d, s) in tensors.items()})
    preview = tmp_path / "sample.png"
    preview.write_bytes(b"\x89PNG\r\n\x1a\n")
    filed = file_into_library(library, lora, category="character", theme="cats", name="my_cat",
                              card={"title": "my_cat", "trigger_words": ["zzcat"]}, previews=[preview])
    assert filed.rel == "character/cats/my_cat.safetensors"
    names = sorted(p.name for p in (library / "character" / "cats").iterdir())
    assert names == ["my_cat.preview.png", "my_cat.safetensors", "my_cat.toml"]
    [entry] = Library(library).entries()
    assert entry.base_model == "sd1" and entry.trigger_words == ["zzcat"]


def test_clean_card_drops_nulls_everywhere():
    assert clean_card({"a": None, "b": [1, None], "c": {"d": None, "e": 2}}) == {"b": [1], "c": {"e": 2}}


def test_a_hub_id_missing_from_the_cache_fails_without_touching_the_network(monkeypatch, tmp_path):
    import socket

    from trainers.errors import ModelLoadError
    from trainers.local_models import locate

    attempts = []

    def no_network(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        locate("nobody/not-cached")
    except ModelLoadError as err:
        assert "not in the local Hugging Face cache" in str(err)
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("locate() found a model that was never cached")
    assert attempts == []
    assert locate(str(tmp_path)) == tmp_path

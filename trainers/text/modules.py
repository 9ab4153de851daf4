"""Which modules ``target_modules = "auto"`` adapts: attention and MLP projections per architecture.

Names follow the transformers implementations.  An architecture that is not
listed falls back to peft's ``all-linear`` (every linear layer but the output
head), which is the same set for most decoder models.
"""

from __future__ import annotations

import json
from pathlib import Path

_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

AUTO_TARGETS: dict[str, list[str]] = {
    **{t: _LLAMA_LIKE for t in (
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
        "olmo", "olmo2", "granite", "cohere", "deepseek_v2", "yi", "internlm2", "smollm3", "ministral")},
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "bloom": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "gpt_bigcode": ["c_attn", "c_proj", "c_fc"],
    "starcoder2": ["q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj"],
    "stablelm": _LLAMA_LIKE,
}


def auto_targets(model_type: str | None) -> list[str] | str:
    """Module names for an architecture, or ``"all-linear"`` when it is not known."""
    return list(AUTO_TARGETS.get(model_type or "", [])) or "all-linear"


def resolve_targets(setting: str | list[str], model_type: str | None) -> list[str] | str:
    if isinstance(setting, list):
        return list(setting)
    return auto_targets(model_type) if setting == "auto" else setting


def auto_targets_for_folder(model_path: str) -> list[str] | None:
    """The auto targets of a local model folder, read from its config.json (no torch needed)."""
    from catalog.files.durable import open_regular
    from catalog.errors import CatalogError

    config = Path(model_path) / "config.json"
    try:
        with open_regular(config) as fh:  # a FIFO in its place is not waited on
            model_type = json.loads(fh.read(1 << 20)).get("model_type")
    except (OSError, ValueError, AttributeError, CatalogError):
        return None
    found = auto_targets(model_type)
    return found if isinstance(found, list) else None

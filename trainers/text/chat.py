"""Trying an adapter: load base + adapter, build the prompt the way training did, generate.

The prompt uses the tokenizer's chat template when it has one and the Alpaca
layout otherwise — the same choice training made — so what ``lutnav chat``
shows is what the adapter learned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from trainers.errors import ModelLoadError
from trainers.text.tokenize import alpaca_prompt


def adapter_base(folder: str | Path) -> str:
    """The base model an adapter folder names (``base_model_name_or_path``)."""
    path = Path(folder) / "adapter_config.json"
    try:
        config = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ModelLoadError("not a PEFT adapter folder (no adapter_config.json)", path=folder,
                             hint="give the name of a PEFT adapter from `lutnav ls --format peft`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"adapter_config.json is unreadable ({err})", path=path) from None
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelLoadError("adapter_config.json names no base_model_name_or_path", path=path,
                             hint="pass --base MODEL_FOLDER")
    return base


def load_adapter_model(folder: str | Path, base: str | None = None, *, adapter_name: str = "default"):
    """``(model, tokenizer)``: the base model with the adapter loaded, in eval mode."""
    import torch
    from peft import PeftModel

    from trainers.text.model import load_base_model, load_tokenizer

    base = base or adapter_base(folder)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = load_base_model(base, dtype=dtype)
    model = PeftModel.from_pretrained(model, str(folder), adapter_name=adapter_name).to(device)
    model.eval()
    return model, load_tokenizer(base)


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation ending where the assistant should answer."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        user = [m["content"] for m in messages if m["role"] == "user"]
        text = (tokenizer.bos_token or "") + alpaca_prompt(user[-1] if user else "", "", system)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def generate(model, tokenizer, messages: list[dict[str, str]], *, max_new_tokens: int = 256,
             temperature: float = 0.0, on_text: Callable[[str], None] | None = None, seed: int | None = None) -> str:
    """The assistant's reply; ``on_text`` receives it piece by piece as it is generated."""
    import torch
    from transformers import TextStreamer

    ids = torch.tensor([prompt_ids(tokenizer, messages)], device=model.device)
    streamer = None
    if on_text is not None:
        class _Stream(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                on_text(text)

        streamer = _Stream(tokenizer, skip_prompt=True, skip_special_tokens=True)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {
        "do_sample": False}
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             streamer=streamer, **sampling)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

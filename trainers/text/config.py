"""Settings of the text-generation task (LoRA on causal language models)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.schema import declared
from trainers.config import CommonConfig

FORMATS = ("auto", "instruction", "chat", "text")


@dataclass(kw_only=True)
class TextConfig(CommonConfig):
    """A LoRA for a causal LM, trained on instruction, chat or plain-text data."""

    train_data: str = declared(doc="Training data: a .jsonl/.json/.csv/.txt file or a folder of them.", path=True)
    eval_data: str | None = declared(None, "Evaluation data (same formats); else eval_split of train_data.",
                                     path=True)
    eval_split: float = declared(0.05, "Share of train_data held out for eval loss when eval_data is unset.",
                                 minimum=0, maximum=0.5)
    format: str = declared("auto", "auto | instruction (Alpaca) | chat (messages / ShareGPT) | text.",
                           choices=FORMATS)
    max_seq_length: int = declared(2048, "Longer examples are truncated to this many tokens.", minimum=8)
    packing: bool = declared(False, "Pack short examples into full sequences (each still attends only to itself).")
    train_on_prompt: bool = declared(False, "Also train on prompt/system/user tokens (default: response only).")
    system_prompt: str | None = declared(None, "System message put before instruction rows rendered as chat.")
    target_modules: str | list[str] = declared(
        "auto", "auto (attention + MLP projections of the architecture), all-linear, or a list of module names.")
    quantization: str = declared("none", "none | 4bit (QLoRA) | 8bit — bitsandbytes, CUDA only.",
                                 choices=("none", "4bit", "8bit"))
    lora_dropout: float = declared(0.05, "Dropout on the LoRA input during training.", minimum=0,
                                   exclusive_maximum=1)
    learning_rate: float = declared(2e-4, "Peak learning rate.", exclusive_minimum=0)
    save_steps: int = declared(200, "Save a checkpoint every N optimizer steps (0: only at the end).", minimum=0)
    category: str = declared("industry", "Catalog category (first folder level of the library).")

    def problems(self) -> list[tuple[str, str]]:
        found = super().problems()
        if isinstance(self.target_modules, list) and not self.target_modules:
            found.append(("target_modules", "an empty list targets nothing; use \"auto\" or name modules"))
        if isinstance(self.target_modules, str) and self.target_modules not in ("auto", "all-linear"):
            found.append(("target_modules", f"{self.target_modules!r}: expected \"auto\", \"all-linear\" "
                          "or a list of module names"))
        return found

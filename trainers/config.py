"""The training config: settings every task shares, and loading a TOML file into a typed config.

A task (text, image) subclasses :class:`CommonConfig` with its own settings and
registers the class (:mod:`trainers.registry`).  :func:`load_config` reads the
file, picks the class from ``task_type`` and checks every key at once: an
unknown key gets its line and the nearest real key, a wrong value its line
and the expected type.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.files.textfile import loads_toml
from catalog.files.toml_lines import key_lines
from catalog.schema import check_table, declared, declared_fields, pick_choice
from trainers.errors import ConfigError, Problem
from trainers.textfile import read_utf8

OPTIMIZERS = ("AdamW", "AdamW8bit", "Adafactor", "Prodigy")
SCHEDULERS = ("constant", "linear", "cosine", "cosine_with_restarts")

#: Spellings from other trainers (kohya, lora-scripts, axolotl, HF Trainer) → our key, for "did you mean".
FOREIGN_KEYS = {
    "network_dim": "lora_rank", "network_alpha": "lora_alpha", "lora_r": "lora_rank", "r": "lora_rank",
    "rank": "lora_rank", "train_batch_size": "batch_size", "per_device_train_batch_size": "batch_size",
    "micro_batch_size": "batch_size", "max_train_epochs": "epochs", "num_train_epochs": "epochs",
    "num_epochs": "epochs", "max_train_steps": "max_steps", "optimizer_type": "optimizer",
    "optim": "optimizer", "lr_scheduler": "scheduler", "lr_scheduler_type": "scheduler",
    "lr_warmup_steps": "warmup_steps", "lr": "learning_rate", "output_name": "name",
    "pretrained_model_name_or_path": "base_model", "model_name_or_path": "base_model",
    "base_model_name_or_path": "base_model", "dataset": "train_data", "data_path": "train_data",
    "cutoff_len": "max_seq_length", "sequence_len": "max_seq_length", "lora_target": "target_modules",
    "lora_target_modules": "target_modules", "save_every_n_steps": "save_steps",
    "gradient_accumulation": "gradient_accumulation_steps", "resume_from_checkpoint": "resume",
    "logging_dir": "log_with", "report_to": "log_with",
}


@dataclass(kw_only=True)
class CommonConfig:
    """Settings shared by every task; the keys follow the lora-scripts workflow."""

    task_type: str = declared(doc="What to train: one of the registered tasks.")
    base_model: str = declared(doc="Model to adapt: a local folder, a file, or a hub id already in the local HF cache.")
    lora_rank: int = declared(16, "LoRA rank (inner dimension).", minimum=1, maximum=4096)
    lora_alpha: float | None = declared(
        None, "LoRA alpha; the update is scaled by alpha / rank. Defaults to the rank.",
        exclusive_minimum=0, aliases=("alpha",))
    lora_dropout: float = declared(0.0, "Dropout on the LoRA input during training.", minimum=0,
                                   exclusive_maximum=1)
    batch_size: int = declared(4, "Examples per micro-batch (per device).", minimum=1)
    gradient_accumulation_steps: int = declared(1, "Micro-batches per optimizer step.", minimum=1)
    epochs: int = declared(3, "Passes over the training data (ignored when max_steps is set).", minimum=1)
    max_steps: int | None = declared(None, "Stop after this many optimizer steps.", minimum=1)
    learning_rate: float = declared(1e-4, "Peak learning rate.", exclusive_minimum=0)
    optimizer: str = declared("AdamW", "AdamW | AdamW8bit (bitsandbytes, CUDA) | Adafactor | Prodigy (prodigyopt).",
                              choices=OPTIMIZERS)
    weight_decay: float = declared(0.0, "Decoupled weight decay.", minimum=0)
    max_grad_norm: float = declared(1.0, "Clip the gradient norm to this; 0 turns clipping off.", minimum=0)
    scheduler: str = declared("cosine", "Learning-rate schedule after warmup.", choices=SCHEDULERS)
    warmup_steps: int = declared(0, "Linear warmup steps (wins over warmup_ratio).", minimum=0)
    warmup_ratio: float = declared(0.0, "Warmup as a fraction of the total steps.", minimum=0, maximum=1)
    scheduler_cycles: int = declared(1, "Restarts for cosine_with_restarts.", minimum=1)
    mixed_precision: str = declared("no", "no | fp16 | bf16 (fp16 needs a GPU).", choices=("no", "fp16", "bf16"))
    gradient_checkpointing: bool = declared(False, "Recompute activations in backward to save memory.")
    seed: int = declared(42, "Seed for initialisation, data order and dropout.", minimum=0)
    output_dir: str | None = declared(None, "Checkpoints and logs; default: output/<name> beside the config.",
                                      path=True)
    save_steps: int = declared(500, "Save a checkpoint every N optimizer steps (0: only at the end).", minimum=0)
    save_every_n_epochs: int | None = declared(None, "Also save at the end of every N-th epoch.", minimum=1)
    keep_checkpoints: int = declared(0, "Keep only the newest N checkpoints (0: keep all).", minimum=0)
    log_with: str = declared("none", "Experiment log: none | tensorboard (in output_dir/logs).",
                             choices=("none", "tensorboard"))
    resume: str = declared("auto", "auto (newest checkpoint in output_dir) | none | a checkpoint folder.")
    name: str | None = declared(None, "Name of the catalog entry; default: the config file's name.")
    category: str = declared("style", "Catalog category (first folder level of the library).")
    theme: str = declared("general", "Catalog theme (second folder level of the library).")
    description: str | None = declared(None, "One line for the card: what the LoRA is for.")
    trigger_words: list[str] = declared([], "Words that activate the LoRA (written to the card).")
    overwrite: bool = declared(False, "Replace an existing library entry of the same name.")

    #: the file this config came from (not a setting)
    source: Path | None = dataclasses.field(default=None, repr=False, compare=False)

    def problems(self) -> list[tuple[str, str]]:
        """Rules across settings, as ``(key, message)``; subclasses add their own."""
        found = []
        if self.warmup_steps and self.warmup_ratio:
            found.append(("warmup_ratio", "set warmup_steps or warmup_ratio, not both"))
        if not re.fullmatch(r"[^/\\\x00]+", self.category) or self.category.startswith("."):
            found.append(("category", f"{self.category!r}: expected one folder name (no '/', no leading '.')"))
        if not re.fullmatch(r"[^/\\\x00]+", self.theme) or self.theme.startswith("."):
            found.append(("theme", f"{self.theme!r}: expected one folder name (no '/', no leading '.')"))
        if self.name is not None and (not re.fullmatch(r"[^/\\\x00]+", self.name) or self.name.startswith(".")):
            found.append(("name", f"{self.name!r}: expected a file name (no '/', no leading '.')"))
        return found

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha if self.lora_alpha is not None else self.lora_rank)

    def settings(self) -> dict[str, Any]:
        """The settings as plain values (for logs, cards and the resume fingerprint)."""
        out = {}
        for f in declared_fields(type(self)):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


# --- loading ------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CommonConfig:
    """Read, check and resolve a config file; raises :class:`ConfigError` listing every problem."""
    path = Path(path)
    problems: list[Problem] = []
    try:
        text = read_utf8(path, problems)
    except FileNotFoundError:
        raise ConfigError("cannot read the config", [Problem(str(path), None, "no such file")]) from None
    if text is None:
        raise ConfigError("cannot read the config", problems)
    return parse_config(text, path, overrides)


def parse_config(text: str, path: Path, overrides: dict[str, Any] | None = None) -> CommonConfig:
    from trainers.registry import get_task, task_types

    try:
        raw = loads_toml(text)
    except tomllib.TOMLDecodeError as err:
        line = _toml_error_line(str(err))
        raise ConfigError("the config is not valid TOML", [Problem(str(path), line, str(err))]) from None
    raw.update(overrides or {})
    lines = key_lines(text)
    where = str(path)

    task_type = raw.get("task_type")
    known = task_types()
    if task_type not in known:
        try:
            pick_choice(task_type if isinstance(task_type, str) else "", known)
        except ValueError as err:
            got = "missing" if task_type is None else f"= {task_type!r}"
            raise ConfigError("the config names no task", [
                Problem(where, lines.get("task_type"), f"`task_type` {got}: expected {err}")]) from None
    cls = get_task(task_type).config_class

    values, findings = check_table(cls, raw, text=text, noun="setting", spellings=FOREIGN_KEYS)
    problems = [Problem(where, f.line, f.message) for f in findings]
    if problems:
        raise ConfigError("the config has errors", problems)
    config = cls(**values, source=path.resolve())
    extra = [Problem(where, lines.get(key), message) for key, message in config.problems()]
    if extra:
        raise ConfigError("the config has errors", extra)
    _resolve(config, path.resolve().parent)
    return config


def _resolve(config: CommonConfig, folder: Path) -> None:
    """Defaults that depend on the file, and paths relative to its folder."""
    if config.name is None:
        config.name = config.source.stem if config.source else "lora"
    for f in declared_fields(type(config)):
        value = getattr(config, f.name)
        if f.metadata["path"] and isinstance(value, str):
            setattr(config, f.name, str((folder / Path(value).expanduser()).resolve()))
    if config.output_dir is None:
        config.output_dir = str(folder / "output" / config.name)
    local = folder / Path(config.base_model).expanduser()
    if local.exists():
        config.base_model = str(local.resolve())
    if config.resume not in ("auto", "none"):
        config.resume = str((folder / Path(config.resume).expanduser()).resolve())


def _toml_error_line(message: str) -> int | None:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None

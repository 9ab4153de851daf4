"""The text-generation task on the shared loop: a causal LM with a PEFT LoRA adapter."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

from trainers.errors import ModelLoadError, UnsupportedSetting
from trainers.plan import Plan
from trainers.text.config import TextConfig
from trainers.text.model import load_base_model, weight_dtype
from trainers.text.modules import resolve_targets
from trainers.text.tokenize import IGNORE, Encoded


class TextTask:
    """Implements :class:`trainers.loop.TrainTask` for causal language models."""

    unit = "tok"

    def __init__(self, config: TextConfig, plan: Plan, accelerator):
        from accelerate.utils import set_seed

        if not plan.payload:
            raise ModelLoadError(f"cannot train without the tokenizer of {config.base_model!r}",
                                 path=config.source)
        self.config, self.plan = config, plan
        self.tokenizer = plan.payload["tokenizer"]
        self.examples: list[Encoded] = plan.payload["train"]
        self.eval_items: list[Encoded] = plan.payload["eval"]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        set_seed(config.seed)  # LoRA initialisation is random
        self.model = self._build(accelerator)

    def _build(self, accelerator):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        c = self.config
        base = load_base_model(c.base_model, dtype=weight_dtype(c.mixed_precision, accelerator.device.type),
                               quantization=c.quantization, device=accelerator.device)
        base.config.use_cache = False
        if c.quantization != "none":
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=c.gradient_checkpointing,
                                                   gradient_checkpointing_kwargs={"use_reentrant": False})
        elif c.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        targets = resolve_targets(c.target_modules, getattr(base.config, "model_type", None))
        lora = LoraConfig(r=c.lora_rank, lora_alpha=c.alpha, lora_dropout=c.lora_dropout, target_modules=targets,
                          bias="none", task_type="CAUSAL_LM", base_model_name_or_path=c.base_model)
        try:
            with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to fix
                warnings.filterwarnings("ignore", category=FutureWarning)
                model = get_peft_model(base, lora)
        except ValueError as err:
            raise UnsupportedSetting(f"target_modules {targets!r} do not fit this model ({err})",
                                     path=c.source, hint="use target_modules = \"auto\" or name modules the "
                                     "model has (e.g. q_proj, v_proj)") from None
        model.peft_config["default"].base_model_name_or_path = c.base_model
        return model

    # --- the loop's interface ---------------------------------------------------------------

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": self.config.learning_rate}]

    def collate(self, items: list[Encoded]) -> dict[str, Any]:
        import torch

        width = max(len(item) for item in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        targets = torch.full((len(items), width), IGNORE, dtype=torch.long)
        packed = items[0].positions is not None
        extra = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item)
            ids[row, :n] = torch.tensor(item.input_ids)
            targets[row, : n - 1] = torch.tensor(item.labels[1:])  # the logit at t predicts token t+1
            if packed:  # padding becomes one more short "example" of its own
                extra[row, :n] = torch.tensor(item.positions)
                extra[row, n:] = torch.arange(width - n)
            else:
                extra[row, :n] = 1
        batch = {"input_ids": ids, "targets": targets}
        batch["position_ids" if packed else "attention_mask"] = extra
        return batch

    def count(self, batch: dict[str, Any]) -> int:
        return int((batch["targets"] != IGNORE).sum())

    def units(self, batch: dict[str, Any]) -> int:
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        return int((batch["input_ids"] != self.pad_id).sum())

    def loss(self, model, batch: dict[str, Any]):
        import torch.nn.functional as F

        inputs = {k: v for k, v in batch.items() if k != "targets"}
        logits = model(**inputs, use_cache=False).logits
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(),
                               ignore_index=IGNORE, reduction="sum")

    def evaluate(self, model) -> dict[str, float]:
        import torch
        from accelerate.utils import send_to_device

        if not self.eval_items:
            return {}
        device = next(p.device for p in model.parameters())
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(self.eval_items), self.config.batch_size):
                batch = send_to_device(self.collate(self.eval_items[i:i + self.config.batch_size]), device)
                total += float(self.loss(model, batch))
                count += self.count(batch)
        return {"eval_loss": total / max(count, 1)}

    def save(self, model, folder: Path, step: int) -> None:
        model.peft_config["default"].base_model_name_or_path = self.config.base_model
        model.save_pretrained(str(folder), safe_serialization=True)
        readme = folder / "README.md"  # peft's template card; lutnav writes its own card
        if readme.exists():
            os.unlink(readme)

    def oom_hints(self) -> list[str]:
        c = self.config
        hints = [f"max_seq_length (now {c.max_seq_length})"]
        if c.quantization == "none":
            hints.append("quantization = \"4bit\" (QLoRA)")
        return hints

    # --- after the loop ------------------------------------------------------------------------

    def artifact(self, checkpoint: Path) -> Path:
        """The checkpoint folder is itself a PEFT adapter folder (plus training_state/)."""
        return checkpoint

    def card(self, result) -> dict[str, Any]:
        c, data = self.config, self.plan.data
        base_name = Path(c.base_model).name if Path(c.base_model).exists() else c.base_model
        what = c.description or (f"Text LoRA for {base_name}, trained on {data.get('train_examples')} "
                                 f"{data.get('format')} examples.")
        training = {
            "task_type": c.task_type, "base_model": c.base_model, "steps": result.step,
            "epochs": round(self.plan.epochs * result.step / max(result.total, 1), 3),
            "rank": c.lora_rank, "alpha": c.alpha, "dropout": c.lora_dropout,
            "target_modules": list(self.model.peft_config["default"].target_modules or []),
            "learning_rate": c.learning_rate, "optimizer": c.optimizer, "scheduler": c.scheduler,
            "batch_size": c.batch_size, "gradient_accumulation_steps": c.gradient_accumulation_steps,
            "processes": self.plan.processes, "effective_batch": self.plan.effective_batch,
            "max_seq_length": c.max_seq_length, "packing": c.packing, "train_on_prompt": c.train_on_prompt,
            "quantization": c.quantization, "mixed_precision": c.mixed_precision, "seed": c.seed,
            "data": dict(data), "final_loss": result.losses[-1] if result.losses else None,
            "eval_loss": result.metrics.get("eval_loss"), "seconds": round(result.seconds, 1),
        }
        training["target_modules"].sort()
        return {"title": c.name, "description": what, "type": "text LoRA (PEFT)",
                "base_model_claim": c.base_model, "trigger_words": list(c.trigger_words),
                "training": training}

    def fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for item in self.examples:
            digest.update(len(item).to_bytes(4, "little"))
            digest.update(b"".join(t.to_bytes(4, "little", signed=True) for t in item.input_ids[:64]))
        return {"train_items": len(self.examples), "data": digest.hexdigest()[:16]}

"""Text LoRAs on causal language models (``task_type = "text-generation"``).

Importing this package registers the task; it loads no torch.  The data
check, the model and the training code import their libraries when called.
"""

from __future__ import annotations

from trainers.registry import Task, register
from trainers.text.config import TextConfig


def _plan(config):
    from trainers.text.planning import plan_text

    return plan_text(config)


def _create(config, plan, accelerator):
    from trainers.text.task import TextTask

    return TextTask(config, plan, accelerator)


register(Task(
    task_type="text-generation",
    config_class=TextConfig,
    summary="LoRA for a causal LM (transformers + peft): instruction, chat or plain-text data → PEFT adapter",
    plan=_plan,
    create=_create,
))

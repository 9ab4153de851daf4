"""Optimizers and learning-rate schedules, by the names a config uses.

The schedules are plain ``LambdaLR`` multipliers written here (warmup, then
constant / linear / cosine / cosine with hard restarts), so image and text
tasks get identical curves and a scheduler's state is just its step count.
"""

from __future__ import annotations

import importlib.util
import math
from typing import TYPE_CHECKING, Any

from trainers.errors import MissingDependency, UnsupportedSetting

if TYPE_CHECKING:
    import torch

    from trainers.config import CommonConfig


def make_optimizer(config: CommonConfig, groups: list[dict[str, Any]], device_type: str) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` over ``groups`` (each may carry its own lr)."""
    import torch

    name = config.optimizer
    lr, wd = config.learning_rate, config.weight_decay
    if name == "AdamW":
        # the fused kernel (CPU and CUDA) is the fastest AdamW and allocates no per-step temporaries
        fused = device_type in ("cuda", "cpu", "mps", "xpu")
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd, fused=fused or None)
    if name == "AdamW8bit":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependency("optimizer = \"AdamW8bit\" needs bitsandbytes", hint="pip install bitsandbytes, "
                                    "or use optimizer = \"AdamW\"")
        if device_type != "cuda":
            raise UnsupportedSetting("optimizer = \"AdamW8bit\" runs on CUDA GPUs only; this run is on "
                                     f"{device_type}", hint="use optimizer = \"AdamW\" or \"Adafactor\"")
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, lr=lr, weight_decay=wd)
    if name == "Adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, weight_decay=wd, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    if name == "Prodigy":
        if importlib.util.find_spec("prodigyopt") is None:
            raise MissingDependency("optimizer = \"Prodigy\" needs prodigyopt", hint="pip install prodigyopt")
        from prodigyopt import Prodigy

        return Prodigy(groups, lr=lr, weight_decay=wd)
    raise UnsupportedSetting(f"unknown optimizer {name!r}")


def lr_multiplier(step: int, *, kind: str, warmup: int, total: int, cycles: int = 1) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based: before the step runs)."""
    if warmup and step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0)))
    raise UnsupportedSetting(f"unknown scheduler {kind!r}")


def warmup_steps(config: CommonConfig, total: int) -> int:
    if config.warmup_steps:
        return min(config.warmup_steps, total)
    return int(math.ceil(config.warmup_ratio * total))


def make_scheduler(config: CommonConfig, optimizer: torch.optim.Optimizer, total: int):
    """A ``LambdaLR``; its saved state is the step count (the function itself is rebuilt from the config)."""
    from torch.optim.lr_scheduler import LambdaLR

    kind, warmup, cycles = config.scheduler, warmup_steps(config, total), config.scheduler_cycles
    return LambdaLR(optimizer, lambda step: lr_multiplier(step, kind=kind, warmup=warmup, total=total,
                                                          cycles=cycles))

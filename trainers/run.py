"""One training run from a checked plan: accelerator, task, loop, and what to file afterwards.

Front ends (the CLI, a future TUI screen, tests) call :func:`train` and
draw its :class:`~catalog.progress.Progress` as they draw any long work; filing into the library (:mod:`trainers.handoff`) is a
separate step so a run can also end in ``output_dir`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.progress import Work
from trainers.config import CommonConfig
from trainers.loop import TrainResult, run_loop
from trainers.plan import Plan
from trainers.registry import get_task


@dataclass
class Trained:
    result: TrainResult
    artifact: Path | None                 # the file or folder to file into the library
    card: dict[str, Any] = field(default_factory=dict)
    previews: list[Path] = field(default_factory=list)
    is_main_process: bool = True
    accelerator: Any = field(default=None, repr=False)

    def release(self) -> None:
        """End the run on every process: wait at a barrier (the main process files the result
        first), then close the process group.  Call it on every process, also after an error."""
        if self.accelerator is None:
            return
        self.accelerator.wait_for_everyone()
        self.accelerator.state.destroy_process_group()
        self.accelerator = None


SHARDING_HINT = ("launch without FSDP/DeepSpeed (a plain multi-GPU accelerate config, or torchrun: DDP, each "
                 "process holds the frozen base model); if the base model does not fit one GPU, set "
                 "quantization = \"4bit\" (QLoRA, text models)")


def make_accelerator(config: CommonConfig):
    """An ``Accelerator`` for the config (honours ``accelerate launch`` settings)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    from trainers.errors import UnsupportedSetting

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise UnsupportedSetting("mixed_precision = \"fp16\" needs a CUDA GPU; none is available",
                                 path=config.source, hint="use \"bf16\" or \"no\" on the CPU")
    from trainers.plan import launched_processes

    out = Path(config.output_dir)
    project = ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs"))
    # several processes without a GPU: accelerate joins them over gloo only when told it is on the CPU
    cpu = launched_processes() > 1 and not torch.cuda.is_available()
    try:
        accelerator = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision,
                                  gradient_accumulation_steps=config.gradient_accumulation_steps,
                                  log_with="tensorboard" if config.log_with == "tensorboard" else None,
                                  project_config=project)
    except RuntimeError as err:  # e.g. an FSDP launch on the CPU
        if "FSDP" not in str(err) and "DeepSpeed" not in str(err):
            raise
        raise UnsupportedSetting(f"accelerate cannot set up this launch ({str(err).splitlines()[0]})",
                                 path=config.source, hint=SHARDING_HINT) from None
    check_sharding(accelerator, config)
    return accelerator


def check_sharding(accelerator, config: CommonConfig) -> None:
    """Refuse accelerate setups that shard the weights (FSDP, DeepSpeed, Megatron).

    lutnav saves the adapter, the trainable tensors and the optimizer state
    from whole tensors on the main process; under sharding each process holds
    slices, and a checkpoint written from them would be wrong.  LoRA rarely
    needs sharding: with DDP each GPU holds the frozen base model and only the
    small adapter gradients travel.
    """
    from trainers.errors import UnsupportedSetting

    kind = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    if kind in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        raise UnsupportedSetting(
            f"this accelerate setup shards the model ({kind}); lutnav saves and resumes LoRA checkpoints from "
            "whole tensors and does not gather shards", path=config.source,
            hint=SHARDING_HINT)


def check(config: CommonConfig) -> Plan:
    """Validate the data and plan the run without loading the model."""
    return get_task(config.task_type).plan(config)


def train(config: CommonConfig, plan: Plan | None = None, *,
          cancel: Callable[[], bool] | None = None) -> Work[Trained]:
    """Train; yields the loop's events, returns :class:`Trained`.

    The task object must also offer ``artifact(checkpoint) -> Path`` and
    ``card(result) -> dict`` (what to file, and the card to file it with), and
    may offer ``previews(checkpoint) -> list[Path]`` (images filed beside it) and
    ``prepare() -> Work`` (work before the first step, shown as its own phase).
    """
    spec = get_task(config.task_type)
    plan = plan or spec.plan(config)
    accelerator = make_accelerator(config)
    task = spec.create(config, plan, accelerator)
    if hasattr(task, "prepare"):  # work before the first step, such as encoding latents
        yield from task.prepare()
    result = yield from run_loop(task, config, accelerator, cancel=cancel)
    artifact = previews = None
    if result.final is not None:
        artifact = task.artifact(result.final)
        previews = task.previews(result.final) if hasattr(task, "previews") else None
    return Trained(result, artifact, task.card(result), previews or [], accelerator.is_main_process, accelerator)

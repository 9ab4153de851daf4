"""The one training loop, shared by every task.

A task (:class:`TrainTask`) supplies the model with its adapter, the training
items and three functions (collate, loss, save); the loop does the rest with
HF accelerate: gradient accumulation, mixed precision, clipping, the
optimizer and schedule, checkpoints with a resumable state, eval at each
save, TensorBoard, Ctrl-C and out-of-memory handling.  The same config
therefore runs on the CPU, on one GPU, or under ``accelerate launch``.

:func:`run_loop` is a generator of the one progress protocol
(:class:`catalog.progress.Progress`): it yields :class:`StepEvent` (a step, its
loss and rate), :class:`SaveEvent` and plain notes (lines worth keeping, as the
``note``) and returns a :class:`TrainResult`.  The CLI draws them as a
progress bar, a test reads them as a list, and closing the generator stops
training the way a kill would (nothing saved).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from catalog.progress import Progress, Work
from trainers import checkpoint as ckpt
from trainers import train_state
from trainers.config import CommonConfig
from trainers.errors import TrainerError
from trainers.interrupt import catch_sigint, memory_hints, out_of_memory_error
from trainers.optim import make_optimizer, make_scheduler
from trainers.plan import epoch_batches, schedule  # noqa: F401  (epoch_batches: benches read the order)


class TrainTask(Protocol):
    """What a task hands the loop; see ``trainers/text/task.py`` for a full example.

    The loop puts ``model`` in train mode, and in eval mode around ``evaluate``.
    """

    unit: str                 # what ``units`` counts, for the rate shown: "tok", "img"
    model: Any                # torch.nn.Module holding the trainable adapter
    examples: Sequence[Any]   # training items; the loop shuffles their indices

    def param_groups(self) -> list[dict[str, Any]]: ...          # [{"params": [...], "lr": …}]
    def collate(self, items: list[Any]) -> dict[str, Any]: ...   # a batch of CPU tensors
    def count(self, batch: dict[str, Any]) -> int: ...           # loss normaliser (label tokens, images)
    def units(self, batch: dict[str, Any]) -> int: ...           # throughput units in the batch
    def loss(self, model: Any, batch: dict[str, Any]) -> Any: ...  # loss SUMMED over the batch
    def evaluate(self, model: Any) -> dict[str, float]: ...     # {} when there is no eval data
    def save(self, model: Any, folder: Path, step: int) -> None: ...  # the usable artifact, unwrapped model
    def oom_hints(self) -> list[str]: ...                        # its own settings to lower on OOM
    def fingerprint(self) -> dict[str, Any]: ...                 # data identity, checked on resume
    # optional: set_epoch(epoch) before each epoch's batches are collated (per-item random draws)


#: the phase of every training event: a log line reads "step 3/40  loss …"
PHASE = "step"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepEvent(Progress):
    """One optimizer step done (``done``, of ``total``); ``item`` says its loss, lr and rate."""

    epoch: int
    loss: float
    lr: float
    rate: float          # units per second since (re)start
    unit: str
    eta: float           # seconds left
    units: int = 0       # units processed since (re)start

    @property
    def step(self) -> int:
        return self.done


def step_event(step: int, total: int, *, epoch: int, loss: float, lr: float, rate: float, unit: str,
               eta: float, units: int) -> StepEvent:
    return StepEvent(step, total, f"loss {loss:.4f}  lr {lr:.2e}  {rate:,.0f} {unit}/s", PHASE,
                     epoch=epoch, loss=loss, lr=lr, rate=rate, unit=unit, eta=eta, units=units)


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveEvent(Progress):
    """A checkpoint written at step ``done``; the note says where, with the eval metrics."""

    path: Path
    metrics: dict[str, float]

    @property
    def step(self) -> int:
        return self.done


def save_event(step: int, total: int, path: Path, metrics: dict[str, float]) -> SaveEvent:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    return SaveEvent(step, total, phase=PHASE, note=f"saved {path}" + (f"  ({shown})" if shown else ""),
                     path=path, metrics=metrics)


def note_event(step: int, total: int, text: str) -> Progress:
    """A line for the user at step ``step`` (a resume, a stop): a plain Progress with a note."""
    return Progress(step, total, phase=PHASE, note=text)


@dataclass
class TrainResult:
    output_dir: Path
    final: Path | None            # newest checkpoint (the artifact to file)
    step: int
    total: int
    interrupted: bool = False
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    units: int = 0
    resumed_from: int = 0


#: settings that may change between a run and its resume without breaking it
#: (batch_size enters the fingerprint as the global batch, batch_size × processes)
RESUME_FREE = {"batch_size", "output_dir", "save_steps", "save_every_n_epochs", "keep_checkpoints", "log_with",
               "resume", "name", "category", "theme", "description", "trigger_words", "overwrite", "epochs",
               "max_steps",
               # what is sampled or how the result is saved never changes the weights
               "sample_prompts", "sample_steps", "sample_guidance_scale", "sample_negative_prompt",
               "strength_range", "save_precision"}


def run_loop(task: TrainTask, config: CommonConfig, accelerator, *,
             cancel: Callable[[], bool] | None = None) -> Work[TrainResult]:
    from accelerate.utils import send_to_device, set_seed

    out = Path(config.output_dir)
    accum = config.gradient_accumulation_steps
    sched = schedule(len(task.examples), batch_size=config.batch_size, accumulation=accum,
                     epochs=config.epochs, max_steps=config.max_steps, processes=accelerator.num_processes)
    if sched.total_steps == 0:
        raise TrainerError(f"{len(task.examples)} training items give no optimizer step with batch_size = "
                           f"{config.batch_size} and gradient_accumulation_steps = {accum}",
                           path=config.source, hint="add data or lower batch_size / gradient_accumulation_steps")
    total, spe = sched.total_steps, sched.steps_per_epoch

    optimizer = make_optimizer(config, task.param_groups(), accelerator.device.type)
    scheduler = make_scheduler(config, optimizer, total)
    model, optimizer = accelerator.prepare(task.model, optimizer)
    model.train()  # from_pretrained leaves models in eval mode: dropout would be off
    trainable = [p for p in model.parameters() if p.requires_grad]
    processes = accelerator.num_processes
    fingerprint = {**{k: v for k, v in config.settings().items() if k not in RESUME_FREE
                      and not _is_path_setting(config, k)},
                   **task.fingerprint(), "global_batch": config.batch_size * processes}

    set_seed(config.seed)
    step = 0
    if accelerator.is_main_process:
        ckpt.clean_staging(out)
    resume_dir = ckpt.find_resume(out, config.resume)
    if resume_dir is not None:
        state = ckpt.read_state(resume_dir)
        ckpt.check_processes(resume_dir, state, processes=processes, batch_size=config.batch_size)
        ckpt.check_fingerprint(resume_dir, state.get("fingerprint", {}), fingerprint)
        train_state.load(resume_dir / ckpt.STATE_DIR, state, accelerator=accelerator, model=model,
                         optimizer=optimizer, scheduler=scheduler)
        step = int(state["step"])
        yield note_event(step, total, f"resuming from {resume_dir} (step {step} of {total})")
        if state.get("processes", processes) != processes:
            yield note_event(step, total, f"the checkpoint ran on {state['processes']} process(es), this run on {processes}: the "
                            "global batch is the same, so data order and schedule continue exactly (random "
                            "draws such as dropout masks come from other generators)")
    result = TrainResult(out, resume_dir, step, total, resumed_from=step)
    if config.log_with == "tensorboard":
        accelerator.init_trackers(config.name or "lutnav", config=_scalars(config.settings()))

    started, done_units, last_saved = time.perf_counter(), 0, step if resume_dir else -1
    with catch_sigint(launched=processes > 1) as interrupted:
        while step < total:
            epoch, first = divmod(step, spe)
            if hasattr(task, "set_epoch"):
                task.set_epoch(epoch)
            batches = epoch_batches(len(task.examples), batch_size=config.batch_size, seed=config.seed,
                                    epoch=epoch, rank=accelerator.process_index,
                                    processes=accelerator.num_processes)
            batches = batches[first * accum:sched.micro_batches_per_epoch]
            for group_start in range(0, len(batches), accum):
                collated = [task.collate([task.examples[i] for i in b])
                            for b in batches[group_start:group_start + accum]]
                # the loss is normalised by the count over the global batch (all processes), and DDP
                # averages gradients over processes: hence × processes
                denominator = _global_sum(accelerator, [sum(task.count(b) for b in collated)])[0]
                denominator = max(1.0, denominator)
                scale = accum * processes / denominator
                loss_sum, units = 0.0, 0  # loss_sum becomes a tensor: one device sync per step
                try:
                    for batch in collated:
                        units += task.units(batch)
                        batch = send_to_device(batch, accelerator.device)
                        with accelerator.accumulate(model):
                            loss = task.loss(model, batch)
                            accelerator.backward(loss * scale)
                            if accelerator.sync_gradients and config.max_grad_norm > 0:
                                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                            optimizer.step()
                            optimizer.zero_grad(set_to_none=True)
                        loss_sum = loss_sum + loss.detach()
                except Exception as exc:
                    oom = out_of_memory_error(exc, memory_hints(config, task.oom_hints()), config)
                    if oom is None:
                        raise
                    raise oom from None
                lr = scheduler.get_last_lr()[0]  # the rate this step used
                scheduler.step()
                step += 1
                loss_sum, units = _global_sum(accelerator, [loss_sum, units])
                done_units += int(units)
                result.losses.append(loss_sum / denominator)
                elapsed = time.perf_counter() - started
                per_step = elapsed / (step - result.resumed_from)
                yield step_event(step, total, epoch=epoch, loss=result.losses[-1], lr=lr,
                                 rate=done_units / max(elapsed, 1e-9), unit=task.unit,
                                 eta=per_step * (total - step), units=done_units)
                if config.log_with == "tensorboard":
                    accelerator.log({"train/loss": result.losses[-1], "train/lr": lr}, step=step)
                end_of_epoch = group_start + accum >= len(batches)
                stop = _agreed(accelerator, interrupted() or (cancel is not None and cancel()))
                if stop or _due(config, step, total, epoch if end_of_epoch else None):
                    save = yield from _save(task, model, optimizer, scheduler, accelerator, config, step, total,
                                            epoch, fingerprint)
                    result.final, result.metrics, last_saved = save.path, save.metrics, step
                if stop:
                    result.interrupted = True
                    yield note_event(step, total, f"stopped at step {step}; saved {result.final} — run again to resume")
                    break
                if step >= total:
                    break
            if result.interrupted:
                break
    if last_saved != step:
        save = yield from _save(task, model, optimizer, scheduler, accelerator, config, step, total,
                                max(step - 1, 0) // spe, fingerprint)
        result.final, result.metrics = save.path, save.metrics
    for tracker in accelerator.trackers:  # not end_training(): that ends the process group too
        tracker.finish()
    result.step, result.units = step, done_units
    result.seconds = time.perf_counter() - started
    return result


def _global_sum(accelerator, values: list) -> list[float]:
    """``values`` (numbers or 0-d tensors) summed over every process, in one exchange."""
    if accelerator.num_processes == 1:
        return [float(v) for v in values]
    import torch

    flat = torch.stack([torch.as_tensor(v, dtype=torch.float64).detach().cpu().reshape(()) for v in values])
    return [float(v) for v in accelerator.reduce(flat.to(accelerator.device), reduction="sum").cpu()]


def _agreed(accelerator, stop: bool) -> bool:
    """Every process stops when any one was asked to (else the others would wait forever at the save)."""
    if accelerator.num_processes == 1:
        return stop
    import torch

    flag = torch.tensor([1.0 if stop else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def _due(config: CommonConfig, step: int, total: int, finished_epoch: int | None) -> bool:
    if step >= total:
        return True
    if config.save_steps and step % config.save_steps == 0:
        return True
    n = config.save_every_n_epochs
    return bool(n and finished_epoch is not None and (finished_epoch + 1) % n == 0)


def _save(task: TrainTask, model, optimizer, scheduler, accelerator, config: CommonConfig, step: int, total: int,
          epoch: int, fingerprint: dict[str, Any]) -> Generator[Progress, None, SaveEvent]:
    """Eval, then write the checkpoint atomically; eval first so its loss goes into the state."""
    out = Path(config.output_dir)
    metrics = {}
    if accelerator.is_main_process:  # once, on the plain model (the others wait below)
        model.eval()
        metrics = task.evaluate(accelerator.unwrap_model(model))
        model.train()
    if config.log_with == "tensorboard" and metrics:
        accelerator.log({f"eval/{k.removeprefix('eval_')}": v for k, v in metrics.items()}, step=step)
    staging, final = ckpt.staging_dir(out, step), ckpt.checkpoint_dir(out, step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.remove(staging)
        staging.mkdir(parents=True)
        task.save(accelerator.unwrap_model(model), staging, step)
    accelerator.wait_for_everyone()
    shared = train_state.save(staging / ckpt.STATE_DIR, accelerator=accelerator, model=model, optimizer=optimizer,
                              scheduler=scheduler)
    accelerator.wait_for_everyone()  # every process's generators are on disk before the manifest
    if accelerator.is_main_process:
        ckpt.write_state(staging, {"step": step, "epoch": epoch, "metrics": metrics,
                                   "fingerprint": fingerprint, "seed": config.seed, **shared})
        ckpt.publish(staging, final)
        ckpt.prune(out, config.keep_checkpoints)
    accelerator.wait_for_everyone()
    event = save_event(step, total, final, metrics)
    yield event
    return event


def _is_path_setting(config: CommonConfig, key: str) -> bool:
    """Data locations may move between runs; the task's fingerprint covers their content."""
    from catalog.schema import declared_fields

    return any(f.name == key and f.metadata["path"] for f in declared_fields(type(config)))


def _scalars(settings: dict[str, Any]) -> dict[str, Any]:
    """TensorBoard hparams take scalars only."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in settings.items() if v is not None}

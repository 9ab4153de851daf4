"""What a training run will do, worked out before any model is loaded.

``lutnav train --check`` prints a :class:`Plan`; the real run trains from the
same plan, so the step counts shown are the step counts run.  The step
arithmetic lives here once and the loop calls it too.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any


def launched_processes() -> int:
    """How many processes run this training: launchers (``accelerate launch``, ``torchrun``) say so
    in ``WORLD_SIZE``.  Read from the environment so ``--check`` knows it without importing torch."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's rank among :func:`launched_processes` (0 is the main process)."""
    try:
        return max(0, int(os.environ.get("RANK", "0")))
    except ValueError:
        return 0


@dataclass
class Schedule:
    """How examples become optimizer steps."""

    micro_batches_per_epoch: int   # per process, already a multiple of the accumulation
    steps_per_epoch: int
    total_steps: int
    dropped_per_epoch: int         # micro-batches that do not fill a last accumulation group


def schedule(examples: int, *, batch_size: int, accumulation: int, epochs: int,
             max_steps: int | None, processes: int = 1) -> Schedule:
    """Steps for ``examples`` items, counted in global batches (``batch_size × processes`` items,
    one share per process; see :func:`epoch_batches`).  A last incomplete accumulation group of
    an epoch is skipped (data order is reshuffled every epoch, so every example is still seen)."""
    per_process = len(_global_batches(list(range(examples)), batch_size * processes, processes))
    steps_per_epoch = per_process // accumulation
    used = steps_per_epoch * accumulation
    total = max_steps if max_steps is not None else steps_per_epoch * epochs
    if steps_per_epoch == 0:
        total = 0
    return Schedule(used, steps_per_epoch, total, per_process - used)


def epoch_batches(n: int, *, batch_size: int, seed: int, epoch: int, rank: int = 0,
                  processes: int = 1) -> list[list[int]]:
    """This process's micro-batches of one epoch, as indices into the ``n`` items.

    The seeded shuffle is cut into global batches of ``batch_size × processes``
    items and each is split evenly among the processes, so every item is seen
    once per epoch whatever the process count, and N processes at
    ``batch_size = B`` train on exactly the batches one process at ``N·B``
    does.  A last global batch too small to give every process an item is left
    out (it has fewer than ``processes`` items; one process never drops any).
    """
    order = list(range(n))
    random.Random(f"lutnav:{seed}:{epoch}").shuffle(order)
    mine = []
    for part in _global_batches(order, batch_size * processes, processes):
        share, extra = divmod(len(part), processes)
        start = rank * share + min(rank, extra)
        mine.append(part[start:start + share + (rank < extra)])
    return mine


def _global_batches(order: list[int], size: int, processes: int) -> list[list[int]]:
    parts = [order[i:i + size] for i in range(0, len(order), size)]
    return parts[:-1] if parts and len(parts[-1]) < processes else parts


def effective_batch(batch_size: int, accumulation: int, processes: int) -> tuple[int, str]:
    """The global batch one optimizer step sees, and how it is made (for the plan)."""
    parts = [f"batch_size {batch_size}"]
    if processes > 1:
        parts.append(f"{processes} processes")
    if accumulation > 1:
        parts.append(f"{accumulation} accumulation steps")
    total = batch_size * processes * accumulation
    return total, f"{total}" + (f" ({' × '.join(parts)})" if len(parts) > 1 else "")


@dataclass
class Plan:
    """The checked data and the numbers of the run; ``facts`` are task-specific lines."""

    task_type: str
    examples: int
    eval_examples: int
    schedule: Schedule
    effective_batch: int
    facts: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    #: summary for the card (files, counts, format…)
    data: dict[str, Any] = field(default_factory=dict)
    #: prepared data the task hands from the check to the run (never printed)
    payload: Any = field(default=None, repr=False)
    #: training processes (``accelerate launch`` / ``torchrun``); the schedule counts global batches
    processes: int = 1
    batch_size: int = 0
    accumulation: int = 1

    @property
    def epochs(self) -> float:
        spe = self.schedule.steps_per_epoch
        return self.schedule.total_steps / spe if spe else 0.0

    def lines(self) -> list[str]:
        """Human-readable plan, as ``--check`` prints it."""
        s = self.schedule
        out = [f"task            {self.task_type}"]
        out += [f"{label:<15} {value}" for label, value in self.facts]
        out += [
            f"examples        {self.examples} train, {self.eval_examples} eval",
            f"effective batch {self._batch_text()}",
            f"steps           {s.total_steps} ({s.steps_per_epoch} per epoch, {self.epochs:.2f} epochs)",
        ]
        if s.dropped_per_epoch:
            out.append(f"                {s.dropped_per_epoch} micro-batch(es) per epoch do not fill an "
                       "accumulation group and are skipped")
        if self.processes > 1:
            out.append(f"processes       {self.processes} (data split among them; only the main process "
                       "saves, samples, logs and files the result)")
        out += [f"writes          {w}" for w in self.writes]
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def _batch_text(self) -> str:
        if not self.batch_size:
            return str(self.effective_batch)
        return effective_batch(self.batch_size, self.accumulation, self.processes)[1]

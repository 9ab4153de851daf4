"""What a training run will do, worked out before any model is loaded.

``lutnav train --check`` prints a :class:`Plan`; the real run trains from the
same plan, so the step counts shown are the step counts run.  The step
arithmetic lives here once and the loop calls it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Schedule:
    """How examples become optimizer steps."""

    micro_batches_per_epoch: int   # per process, already a multiple of the accumulation
    steps_per_epoch: int
    total_steps: int
    dropped_per_epoch: int         # micro-batches that do not fill a last accumulation group


def schedule(examples: int, *, batch_size: int, accumulation: int, epochs: int,
             max_steps: int | None, processes: int = 1) -> Schedule:
    """Steps for ``examples`` items: batches are dealt round-robin to processes, and a
    last incomplete accumulation group of an epoch is skipped (data order is reshuffled
    every epoch, so every example is still seen)."""
    batches = math.ceil(examples / batch_size) if examples else 0
    per_process = batches // processes
    steps_per_epoch = per_process // accumulation
    used = steps_per_epoch * accumulation
    total = max_steps if max_steps is not None else steps_per_epoch * epochs
    if steps_per_epoch == 0:
        total = 0
    return Schedule(used, steps_per_epoch, total, per_process - used)


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
            f"effective batch {self.effective_batch}",
            f"steps           {s.total_steps} ({s.steps_per_epoch} per epoch, {self.epochs:.2f} epochs)",
        ]
        if s.dropped_per_epoch:
            out.append(f"                {s.dropped_per_epoch} micro-batch(es) per epoch do not fill an "
                       "accumulation group and are skipped")
        out += [f"writes          {w}" for w in self.writes]
        out += [f"warning: {w}" for w in self.warnings]
        return out

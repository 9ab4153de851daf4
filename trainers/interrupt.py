"""Ctrl-C and out-of-memory: the two ways a run ends early that a user should see explained.

The first Ctrl-C asks the loop to save a checkpoint and stop after the
current step; a second one stops at once (the last checkpoint stays intact).
Under a launcher (``accelerate launch``, ``torchrun``) each process gets
Ctrl-C twice — from the terminal and forwarded by the launcher — so there a
second one does not stop at once; the launcher itself ends the processes if
the save takes too long for it.
An out-of-memory error becomes one message naming the settings to lower.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from trainers.errors import OutOfMemory

if TYPE_CHECKING:
    from trainers.config import CommonConfig


@contextmanager
def catch_sigint(*, launched: bool = False) -> Iterator[Callable[[], bool]]:
    """Yield a function telling whether Ctrl-C was pressed (only the main thread can catch it).

    ``launched``: one of several processes started by a launcher (see above)."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed.is_set
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed.is_set():
            if launched:
                return
            raise KeyboardInterrupt
        pressed.set()
        import sys

        if launched:
            from trainers.plan import launched_rank

            if launched_rank() != 0:
                return
        print("\nCtrl-C: saving a checkpoint after this step (press again to stop at once)",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def memory_hints(config: CommonConfig, task_hints: list[str]) -> list[str]:
    """What to lower after running out of memory: the batch first, then the task's own settings
    (resolution, sequence length…), then the switches every task has."""
    hints = [f"batch_size (now {config.batch_size}; raise gradient_accumulation_steps to keep the effective batch)",
             *task_hints]
    if not config.gradient_checkpointing:
        hints.append("gradient_checkpointing = true")
    if config.mixed_precision == "no":
        hints.append("mixed_precision = \"bf16\" (or \"fp16\")")
    return hints


def out_of_memory_error(exc: BaseException, hints: list[str], config: CommonConfig) -> OutOfMemory | None:
    """An :class:`OutOfMemory` for a GPU or host allocation failure, else ``None``."""
    import torch

    gpu = isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)
    host = isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or (
        "DefaultCPUAllocator" in str(exc))
    if not (gpu or host):
        return None
    where = "GPU" if gpu else "host (CPU)"
    advice = "; ".join(hints) if hints else "lower batch_size"
    return OutOfMemory(f"out of {where} memory at batch_size = {config.batch_size}", path=config.source,
                       hint=f"try: {advice} — the last checkpoint is intact and resume = \"auto\" continues from it")

"""Training tasks, registered by ``task_type`` on the one loop.

A task is a package (``trainers/text``, ``trainers/image``) whose ``__init__``
calls :func:`register` with a :class:`Task`.  Importing that package must stay
cheap (no torch): its config class is needed to read a config file and to
build the JSON Schema, and ``--check`` runs without the model.  ``plan`` and
``create`` import the heavy libraries inside themselves.

Adding a task touches its own folder plus one line in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainers.errors import TrainerError

if TYPE_CHECKING:
    from trainers.plan import Plan

#: task_type → module that registers it when imported
BUILTIN: dict[str, str] = {
    "image-generation": "trainers.image",
    "text-generation": "trainers.text",
}


@dataclass(frozen=True)
class Task:
    """One kind of training.

    ``plan(config) -> Plan`` checks the data (every problem at once, as
    ``DatasetError``) and counts steps without loading the model.
    ``create(config, plan, accelerator) -> TrainTask`` loads the model with its
    adapter and the data; the result follows :class:`trainers.loop.TrainTask`
    and also offers ``artifact(checkpoint) -> Path``, ``card(result) -> dict``
    and optionally ``previews(checkpoint) -> list[Path]`` for the hand-off.
    """

    task_type: str
    #: a subclass of :class:`trainers.config.CommonConfig`; not imported here,
    #: because ``trainers.config`` looks tasks up in this registry
    config_class: type
    summary: str
    plan: Callable[[Any], Plan]
    create: Callable[[Any, Plan, Any], Any]


_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    _TASKS[task.task_type] = task
    return task


def _load_builtins() -> None:
    for task_type, module in BUILTIN.items():
        if task_type in _TASKS:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the task exists but something it needs is missing
                raise


def task_types() -> list[str]:
    """Every task available in this installation, sorted."""
    _load_builtins()
    return sorted(_TASKS)


def get_task(task_type: str) -> Task:
    _load_builtins()
    try:
        return _TASKS[task_type]
    except KeyError:
        raise TrainerError(f"no trainer for task_type {task_type!r}",
                           hint=f"use one of {', '.join(sorted(_TASKS))}") from None

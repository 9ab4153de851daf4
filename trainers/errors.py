"""One error family for training.

Every error says where (file, and line or key), what was expected and what to
do, so the CLI can print ``str(err)`` and exit non-zero.  Dataset and config
checks collect every problem first and raise once: fixing a 10,000-line file
one complaint per run is no way to spend an afternoon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One finding of a check: where it is and what is wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class TrainerError(Exception):
    """Base of every error the trainers raise on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        if hint is not None:
            self.hint = hint
        where = f"{self.path}:{line}" if self.path and line else self.path
        text = f"{where}: {message}" if where else message
        if self.hint:
            text = f"{text} — {self.hint}"
        super().__init__(text)


class ProblemsError(TrainerError):
    """Several problems found by one check, reported together."""

    #: how many problems the message lists before "… and N more"
    SHOWN = 25

    def __init__(self, what: str, problems: list[Problem], *, hint: str | None = None):
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[: self.SHOWN]]
        if len(self.problems) > self.SHOWN:
            lines.append(f"… and {len(self.problems) - self.SHOWN} more")
        count = len(self.problems)
        body = "\n  ".join(lines)
        super().__init__(f"{what}: {count} problem{'s' * (count != 1)}\n  {body}", hint=hint)


class ConfigError(ProblemsError, ValueError):
    hint = "fix the config (`lutnav train CFG --check` re-checks it without training)"


class DatasetError(ProblemsError, ValueError):
    hint = "fix the data files (`lutnav train CFG --check` re-checks them without training)"


class ModelLoadError(TrainerError, FileNotFoundError):
    hint = "give base_model as a local model folder, or download it first (`hf download REPO`)"


class MissingDependency(TrainerError, ImportError):
    hint = "install the training extras: pip install 'lutnav[train]'"


class UnsupportedSetting(TrainerError, ValueError):
    """A valid setting that this machine or this model cannot honour."""


class ResumeError(TrainerError, ValueError):
    hint = "set resume = \"none\" to start over, or point resume at a matching checkpoint folder"


class OutOfMemory(TrainerError, MemoryError):
    """Training ran out of (GPU or host) memory; the message says what to lower."""


class HandoffError(TrainerError):
    hint = "change `name` (or `theme`) in the config, or set overwrite = true to replace the entry"

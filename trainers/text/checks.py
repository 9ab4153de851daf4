"""Every check of a text training set, run before any model is loaded.

:func:`check_data` is pure Python (no tokenizer): bad JSON, missing fields,
empty responses, roles out of order — every problem in one
:class:`DatasetError`, each with file and line; duplicates are warnings.
:func:`trainers.text.planning.plan_text` adds the tokenizer on top.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from trainers.errors import DatasetError, Problem
from trainers.text.config import TextConfig
from trainers.text.formats import Example, convert, detect
from trainers.text.dataset import data_files, read_rows


@dataclass
class DataReport:
    format: str
    reason: str
    train: list[Example]
    eval: list[Example]
    files: list[str]
    warnings: list[str] = field(default_factory=list)


def check_data(config: TextConfig) -> DataReport:
    """Read and check ``train_data`` (and ``eval_data``); raise once with every problem."""
    rows, problems = read_rows(config.train_data)
    fmt, reason = config.format, "set in the config"
    if fmt == "auto":
        fmt, reason = detect(rows)
        if fmt is None:
            problems.append(Problem(config.train_data, None, f"cannot tell the format: {reason}; set format = "
                                    "\"instruction\", \"chat\" or \"text\""))
    train = _convert(rows, fmt, problems) if fmt else []
    held: list[Example] = []
    if config.eval_data:
        eval_rows, eval_problems = read_rows(config.eval_data)
        problems += eval_problems
        held = _convert(eval_rows, fmt, problems) if fmt else []
    if fmt and not train and not problems:
        problems.append(Problem(config.train_data, None, "no training examples"))
    if problems:
        raise DatasetError("the training data has errors", problems)
    if not config.eval_data:
        train, held = split_eval(train, config.eval_split, config.seed)
    warnings = duplicate_warnings(train + held)
    files = [str(p) for p in data_files(config.train_data)]
    return DataReport(fmt, reason, train, held, files, warnings)


def _convert(rows, fmt: str, problems: list[Problem]) -> list[Example]:
    examples = []
    for row in rows:
        example, found = convert(row, fmt)
        problems += found
        if example is not None:
            examples.append(example)
    return examples


def split_eval(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded hold-out; at least one example once there are 10, none below."""
    n = round(len(examples) * share) if share else 0
    if share and n == 0 and len(examples) >= 10:
        n = 1
    if n == 0:
        return examples, []
    order = list(range(len(examples)))
    random.Random(f"lutnav-eval:{seed}").shuffle(order)
    held = set(order[:n])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def duplicate_warnings(examples: list[Example], shown: int = 3) -> list[str]:
    seen: dict[str, Example] = {}
    repeats: list[tuple[Example, Example]] = []
    for e in examples:
        key = json.dumps([e.kind, e.parts], ensure_ascii=False)
        if key in seen:
            repeats.append((e, seen[key]))
        else:
            seen[key] = e
    if not repeats:
        return []
    listed = ", ".join(f"{Path(a.path).name}:{a.line} repeats line {b.line}" for a, b in repeats[:shown])
    more = f" and {len(repeats) - shown} more" if len(repeats) > shown else ""
    return [f"{len(repeats)} duplicate example(s): {listed}{more}"]

"""The three data formats, how ``auto`` tells them apart, and the checks on each row.

- instruction (Alpaca): ``{"instruction", "input", "output"}`` (also ``prompt`` /
  ``response`` / ``completion`` spellings);
- chat: ``{"messages": [{"role", "content"}, …]}`` or ShareGPT
  ``{"conversations": [{"from", "value"}, …]}``;
- text: ``{"text"}`` rows or the lines of a ``.txt`` file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from trainers.errors import Problem
from trainers.text.dataset import Row

INSTRUCTION_KEYS = ("instruction", "prompt", "question")
INPUT_KEYS = ("input", "context")
OUTPUT_KEYS = ("output", "response", "completion", "answer")
CHAT_KEYS = ("messages", "conversations")
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "model": "assistant", "bot": "assistant"}


@dataclass(frozen=True)
class Example:
    """One training example, normalised.

    ``parts``: text → ``(text,)``; instruction → ``(instruction, input, output)``;
    chat → ``((role, content), …)`` with roles system/user/assistant.
    """

    path: str
    line: int
    kind: str
    parts: tuple


def _first(data: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in data), None)


def row_format(data: dict[str, Any]) -> str | None:
    if _first(data, CHAT_KEYS):
        return "chat"
    if _first(data, INSTRUCTION_KEYS) and _first(data, OUTPUT_KEYS):
        return "instruction"
    if "text" in data:
        return "text"
    return None


def detect(rows: list[Row], sample: int = 50) -> tuple[str | None, str]:
    """The format most of the first rows have, with the reason shown to the user."""
    votes = Counter(f for f in (row_format(r.data) for r in rows[:sample]) if f)
    if not votes:
        keys = sorted({k for r in rows[:sample] for k in r.data})[:8]
        return None, f"the first rows have keys {keys}, none of which names a format"
    fmt, count = votes.most_common(1)[0]
    why = {"chat": "rows have `messages`/`conversations`", "instruction": "rows have instruction/output fields",
           "text": "rows have `text`"}[fmt]
    return fmt, f"auto: {count} of the first {min(len(rows), sample)} {why}"


def convert(row: Row, fmt: str) -> tuple[Example | None, list[Problem]]:
    """The row as an :class:`Example` of ``fmt``, or the problems that prevent it."""
    return {"chat": _chat, "instruction": _instruction, "text": _text}[fmt](row)


def _problem(row: Row, message: str) -> Problem:
    return Problem(row.path, row.line, message)


def _text(row: Row):
    value = row.data.get("text")
    if value is None:
        return None, [_problem(row, "missing field `text`")]
    if not isinstance(value, str):
        return None, [_problem(row, f"`text` must be a string, got {type(value).__name__}")]
    if not value.strip():
        return None, [_problem(row, "empty `text`")]
    return Example(row.path, row.line, "text", (value,)), []


def _instruction(row: Row):
    data, problems = row.data, []
    ikey, okey = _first(data, INSTRUCTION_KEYS), _first(data, OUTPUT_KEYS)
    if ikey is None:
        problems.append(_problem(row, "missing field `instruction`"))
    if okey is None:
        problems.append(_problem(row, "missing field `output`"))
    values = []
    for key in (ikey, _first(data, INPUT_KEYS), okey):
        value = data.get(key, "") if key else ""
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(_problem(row, f"`{key}` must be a string, got {type(value).__name__}"))
            value = ""
        values.append(value)
    if okey is not None and not problems and not values[2].strip():
        problems.append(_problem(row, "empty response (`" + okey + "`)"))
    if ikey is not None and not problems and not values[0].strip():
        problems.append(_problem(row, "empty instruction (`" + ikey + "`)"))
    if problems:
        return None, problems
    return Example(row.path, row.line, "instruction", tuple(values)), []


def _chat(row: Row):
    key = _first(row.data, CHAT_KEYS)
    turns = row.data.get(key) if key else None
    if not isinstance(turns, list) or not turns:
        return None, [_problem(row, "expected `messages` (or `conversations`) to be a non-empty list")]
    messages, problems = [], []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append(_problem(row, f"message {i + 1} is not an object"))
            continue
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if not isinstance(role, str) or role.lower() not in ROLES:
            problems.append(_problem(row, f"message {i + 1}: role {role!r} is not one of system/user/assistant "
                                     "(or ShareGPT human/gpt)"))
            continue
        if not isinstance(content, str):
            problems.append(_problem(row, f"message {i + 1}: content must be a string"))
            continue
        messages.append((ROLES[role.lower()], content))
    if problems:
        return None, problems
    problems = _order_problems(row, messages)
    if problems:
        return None, problems
    return Example(row.path, row.line, "chat", tuple(messages)), []


def _order_problems(row: Row, messages: list[tuple[str, str]]) -> list[Problem]:
    """system? (user assistant)+ — anything else is a row the masking cannot trust."""
    roles = [r for r, _ in messages]
    body = roles[1:] if roles[0] == "system" else roles
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(body))]
    if "system" in body or body != expected or not body or body[-1] != "assistant":
        shown = " → ".join(roles)
        return [_problem(row, f"roles out of order ({shown}); expected an optional system message, then "
                         "user and assistant taking turns, ending with assistant")]
    empty = [i + 1 for i, (r, c) in enumerate(messages) if r == "assistant" and not c.strip()]
    if empty:
        return [_problem(row, f"empty response (assistant message {empty[0]})")]
    return []

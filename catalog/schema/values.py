"""Values against declarations: type conversion, bounds, choices, and the words of the messages.

Every check raises ``ValueError`` with what was expected ("an integer", "one
of 'a', 'b'"); :mod:`catalog.schema.check` puts the key, the value and the
line in front.  The same helpers phrase a bad value and a near miss
everywhere, so every file lutnav reads complains in one voice.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Iterable
from typing import Any

from catalog.schema.declare import options

#: How close a misspelling must be to a real name for a "did you mean" hint.
CUTOFF = 0.6


def describe(hint: Any) -> str:
    """What a value of this type looks like, for "expected …" messages."""
    words = []
    for opt in options(hint):
        origin = typing.get_origin(opt)
        if opt is type(None):
            continue
        if origin is list:
            words.append(f"a list of {_plain(typing.get_args(opt)[0])}s")
        elif origin is tuple:
            words.append(f"a list of {len(typing.get_args(opt))} {_plain(typing.get_args(opt)[0])}s")
        elif origin is dict or dataclasses.is_dataclass(opt):
            words.append("a table of key = value pairs")
        else:
            words.append(f"{_article(_plain(opt))} {_plain(opt)}")
    return " or ".join(words)


def _plain(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean (true/false)"}.get(tp, str(tp))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _scalar(tp: Any, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ValueError


def convert(hint: Any, value: Any) -> Any:
    """Check ``value`` against a plain hint; raise ``ValueError(what was expected)`` when it does not fit.

    Tables (``dict``) pass through as they are; nested records are checked by
    :mod:`catalog.schema.check`, not here.
    """
    for opt in options(hint):
        origin = typing.get_origin(opt)
        try:
            if opt is type(None):
                continue
            if origin is list:
                (item,) = typing.get_args(opt)
                if isinstance(value, list):
                    return [_scalar(item, v) for v in value]
            elif origin is tuple:
                items = typing.get_args(opt)
                if isinstance(value, list) and len(value) == len(items):
                    return tuple(_scalar(t, v) for t, v in zip(items, value))
            elif origin is dict or opt is dict:
                if isinstance(value, dict):
                    return value
            else:
                return _scalar(opt, value)
        except ValueError:
            continue
    raise ValueError(describe(hint))


def check_bounds(meta: typing.Mapping[str, Any], value: Any) -> Any:
    """Choices (case-insensitive, returned in canonical spelling), patterns, lengths and ranges."""
    if meta["choices"] and isinstance(value, str):
        return pick_choice(value, meta["choices"])
    if meta["min_items"] is not None and isinstance(value, list) and len(value) < meta["min_items"]:
        raise ValueError(f"at least {meta['min_items']} item{'s' * (meta['min_items'] != 1)}")
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if not isinstance(text, str):
            continue
        if meta["min_length"] is not None and len(text) < meta["min_length"]:
            raise ValueError("a non-empty string" if meta["min_length"] == 1
                             else f"a string of at least {meta['min_length']} characters")
        if meta["pattern"] and not re.search(meta["pattern"][0], text):
            item = f", not {text!r}" if isinstance(value, list) else ""
            raise ValueError(f"{meta['pattern'][1]}{item}")
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for v in numbers:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if meta["minimum"] is not None and v < meta["minimum"]:
            raise ValueError(f"a value >= {meta['minimum']}")
        if meta["maximum"] is not None and v > meta["maximum"]:
            raise ValueError(f"a value <= {meta['maximum']}")
        if meta["exclusive_minimum"] is not None and v <= meta["exclusive_minimum"]:
            raise ValueError(f"a value > {meta['exclusive_minimum']}")
        if meta["exclusive_maximum"] is not None and v >= meta["exclusive_maximum"]:
            raise ValueError(f"a value < {meta['exclusive_maximum']}")
        if meta["multiple_of"] is not None and v % meta["multiple_of"]:
            raise ValueError(f"a multiple of {meta['multiple_of']}")
    return value


def pick_choice(value: str, choices: Iterable[str]) -> str:
    """The canonical spelling of ``value`` among ``choices``, or ``ValueError`` listing them."""
    choices = list(choices)
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    near = nearest(value, choices)
    hint = f" — did you mean {near!r}?" if near else ""
    raise ValueError(f"one of {', '.join(repr(c) for c in choices)}{hint}")


def nearest(word: str, names: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The name closest to a misspelt ``word`` (case and ``-``/``_``/space ignored), if any is close."""
    names = list(names)
    norm = normalise(word)
    by_norm = {normalise(n): n for n in names}
    if norm in by_norm:
        return by_norm[norm]
    close = difflib.get_close_matches(norm, list(by_norm), n=1, cutoff=cutoff)
    return by_norm[close[0]] if close else None


def normalise(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def show_value(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a bad value for a one-line message (booleans as TOML writes them)."""
    text = str(value).lower() if isinstance(value, bool) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""Decoding the user's text files in the catalog: UTF-8, with or without a byte-order mark.

Windows Notepad and spreadsheet exports put a BOM in front of UTF-8; every
sidecar, README and card a person saved is read through :func:`decode_utf8`, so
one rule holds for all of them.
"""

from __future__ import annotations

import codecs
import tomllib
from typing import Any

UTF8_BOM = codecs.BOM_UTF8


def decode_utf8(data: bytes) -> str:
    """The text of ``data`` without any BOM; ``UnicodeDecodeError`` when it is not UTF-8."""
    return data.decode("utf-8-sig")


def has_bom(data: bytes) -> bool:
    return data.startswith(UTF8_BOM)


def loads_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``, where values nested too deeply for its recursive parser (``a =
    [[[[…`` a few thousand deep, which any file or argument can hold) are a
    ``TOMLDecodeError`` like any other bad TOML, not a ``RecursionError`` that would end a
    whole scan."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("values are nested too deeply") from None

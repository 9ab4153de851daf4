"""Decoding the user's text files in the catalog: UTF-8, with or without a byte-order mark.

Windows Notepad and spreadsheet exports put a BOM in front of UTF-8; every
sidecar, README and card a person saved is read through :func:`decode_utf8`, so
one rule holds for all of them.
"""

from __future__ import annotations

import codecs

UTF8_BOM = codecs.BOM_UTF8


def decode_utf8(data: bytes) -> str:
    """The text of ``data`` without any BOM; ``UnicodeDecodeError`` when it is not UTF-8."""
    return data.decode("utf-8-sig")


def has_bom(data: bytes) -> bool:
    return data.startswith(UTF8_BOM)

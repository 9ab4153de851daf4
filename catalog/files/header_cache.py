"""Validated tensor tables, reused across files whose tables are byte-identical.

A library holds many LoRAs from the same trainer at the same rank: their
headers differ only in ``__metadata__``, while the tensor part (names, dtypes,
shapes, offsets) is the same bytes. Parsing and validating ~3,000 SDXL entries
costs milliseconds; comparing the bytes costs microseconds. So a scan splits
each header into its metadata object and the rest, validates the metadata on
its own, and takes the tensor table from the cache when the rest was seen
before (with the same data-section size). Any header that does not split
cleanly goes through the full reader, so the cache never changes an answer.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

from catalog.errors import SafetensorsError
from catalog.files.header import TensorTable, parse_header_bytes

_META_OPEN = b'{"__metadata__":{'
_META_KEY = b'"__metadata__"'


class HeaderCache:
    """A small LRU of validated tensor tables, keyed by their exact header bytes."""

    def __init__(self, size: int = 96, max_bytes: int = 48 * 1024 * 1024):
        self.size = size
        self.max_bytes = max_bytes
        self._tables: OrderedDict[tuple[int, int, int], tuple[bytes, TensorTable]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop every table (a long-lived process calls this after each scan)."""
        self._tables.clear()
        self._bytes = 0

    def lookup(self, raw: bytes, data_size: int, path: Path):
        """(the (table, metadata) of ``raw`` when its tensor part is cached, or None; a key
        for ``store``; the split of ``raw``). The header is split once: a miss hands the
        split and its key on instead of splitting the same bytes again."""
        parts = split_metadata(raw)
        if parts is None:
            self.misses += 1
            return None, None, None
        meta, rest = parts
        # keyed by a CRC of the bytes (4 GB/s, where hashing them as a dict key runs at
        # about 1); a hit is confirmed by comparing the bytes themselves
        key = (data_size, len(rest), zlib.crc32(rest))
        found = self._tables.get(key)
        if found is None or found[0] != rest:
            self.misses += 1
            return None, (key, rest), parts
        table = found[1]
        self._tables.move_to_end(key)
        metadata = {}
        if meta:  # the same rules as in a full header, on the metadata alone
            try:
                metadata = parse_header_bytes(b'{"__metadata__":' + meta + b"}", 0, path)[1]
            except SafetensorsError:  # a split inside a string, or bad metadata: the full
                self.misses += 1      # reader gives the authoritative answer
                return None, None, parts
        self.hits += 1
        return (table, metadata), None, parts

    def store(self, key: object, table: TensorTable) -> None:
        """Keep ``table`` under a key from ``lookup`` (None: the header did not split)."""
        if key is None:
            return
        (crc_key, rest) = key
        if crc_key in self._tables:
            return
        self._tables[crc_key] = (rest, table)
        self._bytes += len(rest)
        while len(self._tables) > self.size or self._bytes > self.max_bytes:
            _, (old, _) = self._tables.popitem(last=False)
            self._bytes -= len(old)


def split_metadata(raw: bytes) -> tuple[bytes, bytes] | None:
    """``raw`` as (metadata object, everything after it), or None when unsure.

    Trailing space padding (which depends on the metadata's length) is dropped
    from the key. Only the reference writer's spelling is split: ``{"__metadata__":{...},"``.
    The first ``},"`` ends the flat, string-valued metadata object unless a
    string value itself ends in ``},``; then the metadata part is cut inside a
    string, is not valid JSON, and ``lookup`` falls back to the full reader.
    """
    stop = len(raw)
    while stop and raw[stop - 1] == 0x20:  # writers pad to 8 bytes with spaces (valid JSON)
        stop -= 1
    if not raw.startswith(_META_OPEN):
        return (b"", raw[:stop]) if _META_KEY not in raw else None
    end = raw.find(b'},"', len(_META_OPEN))
    if end < 0 or raw.find(_META_KEY, end) >= 0:
        return None
    return raw[len(_META_OPEN) - 1:end + 1], raw[end + 2:stop]

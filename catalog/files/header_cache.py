"""Validated tensor tables, reused across files whose tables are byte-identical.

A library holds many LoRAs from the same trainer at the same rank: their
headers differ only in ``__metadata__``, while the tensor part (names, dtypes,
shapes, offsets) is the same bytes. Parsing and validating ~3,000 SDXL entries
costs milliseconds; comparing the bytes costs microseconds. So a scan splits
each header into its metadata object and the rest (``metadata_span``), validates
the metadata on its own, and takes the tensor table from the cache when the rest
was seen before (with the same data-section size). Any header that does not split
cleanly goes through the full reader, so the cache never changes an answer.

Why a hit is safe: a rest is stored only after its whole header was found valid.
A rest that followed a leading metadata object therefore holds no other metadata
key (the reference refuses a second one), so any header with the same rest is valid
exactly when its own metadata object is; a rest with no leading metadata is the
whole header, from its ``{``, and only the same bytes match it.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import orjson

from catalog.errors import SafetensorsError
from catalog.files.header import parse_header_bytes
from catalog.files.header_table import TensorTable

#: the key hashes only this many bytes at the end of the tensor part (its last tensors,
#: whose offsets reach the data size): a CRC of the whole part would cost a varied
#: library, where every file misses, ~40 µs a file; a hit is confirmed byte for byte
_KEY_TAIL = 4096


class HeaderCache:
    """A small LRU of validated tensor tables, keyed by their exact header bytes."""

    def __init__(self, size: int = 96, max_bytes: int = 48 * 1024 * 1024):
        self.size = size
        self.max_bytes = max_bytes
        #: key -> (the tensor part's bytes, its table)
        self._tables: OrderedDict[tuple[int, int, int], tuple[bytes, TensorTable]] = OrderedDict()
        self._bytes = 0
        #: keys of tensor parts seen once and not kept: in a library where no two files
        #: share a table, keeping each one (thousands of objects) would only cost memory
        #: traffic, about half a parse per file, so a table is kept from its second sighting
        self._seen: OrderedDict[tuple[int, int, int], None] = OrderedDict()
        self.seen_size = 4096
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop every table (a long-lived process calls this after each scan)."""
        self._tables.clear()
        self._seen.clear()
        self._bytes = 0

    def lookup(self, raw: bytes | bytearray, span: tuple[int, int, int, int], data_size: int,
               path: Path) -> tuple[TensorTable, dict[str, str]] | None:
        """The (table, metadata) of ``raw`` when its tensor part is cached, else None.
        ``span`` is ``metadata_span(raw)``."""
        meta_start, meta_end, rest_start, stop = span
        key = _key(raw, rest_start, stop, data_size)
        found = self._tables.get(key)
        # the key holds the length, so this compares the whole tensor part, without copying it
        if found is None or not raw.startswith(found[0], rest_start):
            self.misses += 1
            return None
        table = found[1]
        metadata = {}
        if meta_end:  # the same rules as in a full header, on the metadata alone
            meta = raw[meta_start:meta_end]
            try:
                metadata = parse_header_bytes(b'{"__metadata__":' + meta + b"}", 0, path)[1]
            except SafetensorsError:  # a split inside a string, or bad metadata: the full
                self.misses += 1      # reader gives the authoritative answer
                return None
        self._tables.move_to_end(key)
        self.hits += 1
        return table, metadata

    def store(self, raw: bytes | bytearray, span: tuple[int, int, int, int], data_size: int,
              table: TensorTable, metadata: dict[str, str]) -> None:
        """Keep the table of a header just found valid, once its tensor part shows up a
        second time (only then is the tensor part copied, to compare later headers with)."""
        meta_start, meta_end, rest_start, stop = span
        if not meta_end and metadata:  # a metadata object after the tensors: the split missed it
            return
        key = _key(raw, rest_start, stop, data_size)
        if key in self._seen and meta_end and not _split_right(raw, meta_start, meta_end, metadata):
            return
        if key not in self._seen:  # first sighting: remember the key only
            self._seen[key] = None
            if len(self._seen) > self.seen_size:
                self._seen.popitem(last=False)
            return
        old = self._tables.pop(key, None)
        if old is not None:
            self._bytes -= len(old[0])
        rest = bytes(memoryview(raw)[rest_start:stop])
        self._tables[key] = (rest, table)
        self._bytes += len(rest)
        while len(self._tables) > self.size or self._bytes > self.max_bytes:
            _, (old_rest, _) = self._tables.popitem(last=False)
            self._bytes -= len(old_rest)


def _split_right(raw: bytes | bytearray, meta_start: int, meta_end: int, metadata: dict[str, str]) -> bool:
    """Whether the split cut the metadata object where it ends: the first ``},"`` may lie
    further on (a space before the comma), and then the part after the cut must not stand
    for the tensor part of other files. The cut part then is the object itself exactly when
    it parses, alone, to the file's metadata."""
    try:
        return orjson.loads(memoryview(raw)[meta_start:meta_end]) == metadata
    except orjson.JSONDecodeError:
        return False


def _key(raw: bytes | bytearray, rest_start: int, stop: int, data_size: int) -> tuple[int, int, int]:
    return data_size, stop - rest_start, zlib.crc32(memoryview(raw)[max(rest_start, stop - _KEY_TAIL):stop])

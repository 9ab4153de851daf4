"""The one safetensors header reader (bounded, validating, never loads tensors).

A file is valid here exactly when the ``safetensors`` library would open it:
every loader goes through that library, so a file it refuses is broken for the
user whatever else we could read from it. Scanning must stay fast on headers of
~3,000 tensors, so the common case is checked with whole-list operations and
only a file that fails them is walked entry by entry, which both names the
first bad entry and accepts the rare legal spellings the fast path skips.
"""

from __future__ import annotations

import gc
import os
import stat
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Protocol

import orjson

from catalog.errors import HeaderJSONError, HeaderTooLarge, SafetensorsError, TruncatedFile
from catalog.files.header_table import (  # noqa: F401  (the table types are re-exported for readers)
    DTYPE_BITS,
    DTYPE_SIZES,
    ENTRY_FIELDS,
    MAX_HEADER_BYTES,
    TensorInfo,
    TensorTable,
    metadata_span,
    plain_table,
)

_get_dtype, _get_shape, _get_offsets = map(itemgetter, ENTRY_FIELDS)


class TableCache(Protocol):
    """What ``read_header`` asks of a cache of validated tables (``header_cache.HeaderCache``)."""

    def lookup(self, raw: bytearray, span: tuple[int, int, int, int], data_size: int,
               path: Path) -> tuple[TensorTable, dict[str, str]] | None: ...

    def store(self, raw: bytearray, span: tuple[int, int, int, int], data_size: int,
              table: TensorTable, metadata: dict[str, str]) -> None: ...


@dataclass(slots=True)
class Header:
    path: Path
    file_size: int
    header_len: int  # the 8-byte little-endian length that opens the file
    tensors: TensorTable
    metadata: dict[str, str] = field(default_factory=dict)
    #: cheap identity of the header bytes (with the size, it recognises a moved file)
    fingerprint: str = ""
    #: the file, still open, when the reader was asked to keep it so (``read_scalars`` uses
    #: it instead of opening the file again); ``close()`` or a ``with`` block closes it
    fd: int | None = field(default=None, compare=False, repr=False)

    @property
    def data_offset(self) -> int:
        """Absolute file offset where the data section starts."""
        return 8 + self.header_len

    @property
    def data_size(self) -> int:
        return self.file_size - 8 - self.header_len

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Header:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_header(path: str | Path, cache: TableCache | None = None, *, keep_open: bool = False) -> Header:
    """Read and validate the header of one safetensors file, touching no tensor data.

    Raises a ``SafetensorsError`` subclass naming the file and the first problem
    exactly when ``safetensors.safe_open`` would refuse the file; ``OSError``
    passes through (the file could not be read at all). A ``HeaderCache`` lets a
    scan skip re-validating tensor tables it has already seen byte for byte.
    ``keep_open``: the header holds the open file (see ``Header.fd``), which the
    caller closes, so reading scalars afterwards costs no second open.
    """
    path = Path(path)
    # O_NONBLOCK: a FIFO put in the walk's way after it looked opens without blocking,
    # and is refused below (regular files ignore the flag)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        header = _read_open(fd, path, cache)
    except BaseException:
        os.close(fd)
        raise
    if keep_open:
        header.fd = fd
    else:
        os.close(fd)
    return header


def _read_open(fd: int, path: Path, cache: TableCache | None) -> Header:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise SafetensorsError("not a regular file (a FIFO, socket or device); not read", path=path)
    file_size = st.st_size
    prefix = os.read(fd, 8)
    if len(prefix) < 8:
        raise TruncatedFile(
            f"{len(prefix)} bytes long; a safetensors file opens with an 8-byte header length",
            path=path,
        )
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > MAX_HEADER_BYTES:
        raise HeaderTooLarge(
            f"header length field says {header_len} bytes; safetensors refuses headers over "
            f"{MAX_HEADER_BYTES}", path=path)
    if 8 + header_len > file_size:
        raise TruncatedFile(
            f"header length field says {header_len} bytes but only {file_size - 8} follow it",
            path=path)
    raw = _read_exact(fd, header_len, path)
    data_size = file_size - 8 - header_len
    fingerprint = _fingerprint(raw)
    span = metadata_span(raw)
    if cache is not None and span is not None:
        hit = cache.lookup(raw, span, data_size, path)
        if hit is not None:
            return Header(path=path, file_size=file_size, header_len=header_len,
                          tensors=hit[0], metadata=hit[1], fingerprint=fingerprint)
    # a parse makes thousands of containers, none in a cycle; letting the collector
    # walk them mid-parse costs a third of the parse
    collecting = gc.isenabled()
    gc.disable()
    try:
        table, metadata = parse_header_bytes(raw, data_size, path, span)
    finally:
        if collecting:
            gc.enable()
    if cache is not None and span is not None:
        cache.store(raw, span, data_size, table, metadata)
    return Header(path=path, file_size=file_size, header_len=header_len, tensors=table, metadata=metadata,
                  fingerprint=fingerprint)


def _fingerprint(raw: bytes | bytearray) -> str:
    """Length + CRC of the first 64 KiB: hashing whole SDXL headers would cost a
    20k-file scan seconds, and with the file size this is enough to match a move."""
    return f"{len(raw):x}-{zlib.crc32(memoryview(raw)[:65536]):08x}"


def parse_header_bytes(raw: bytes | bytearray, data_size: int, path: Path,
                       span: tuple[int, int, int, int] | None = None) -> tuple[TensorTable, dict[str, str]]:
    """(table, metadata) of valid header bytes; raises as ``read_header`` does.

    The typed decoder takes the canonical spelling; whatever it is unsure of is
    parsed generically and checked in whole-list operations, and whatever those
    refuse is walked entry by entry. ``span`` is ``metadata_span(raw)`` if known.
    """
    typed = _typed_decoder()
    if typed is not None:
        found = typed(raw, data_size, span)
        if found is not None:
            return found
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise HeaderJSONError(
            f"header is not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}", path=path
        ) from None
    parts = _fast_parts(doc, raw, data_size)
    if parts is None:  # broken, or legal in a rare way: the careful walk tells which
        from catalog.files.header_check import check_layout, walk_entries

        parts = walk_entries(raw, path)
        check_layout(parts[0], data_size, path)
    return parts


_TYPED: list = []


def _typed_decoder():
    """``header_typed.typed_parts``, or None where msgspec is not installed."""
    if not _TYPED:
        try:
            from catalog.files.header_typed import typed_parts
        except ImportError:
            typed_parts = None
        _TYPED.append(typed_parts)
    return _TYPED[0]


_READV = getattr(os, "readv", None)  # not on Windows


def _read_exact(fd: int, count: int, path: Path) -> bytearray:
    """``count`` bytes into a buffer the typed decoder may patch in place (see ``header_typed``)."""
    data = bytearray(count)
    view = memoryview(data)
    done = 0
    while done < count:  # short reads happen on pipes and network file systems
        if _READV is not None:
            got = _READV(fd, [view[done:]])
        else:
            chunk = os.read(fd, count - done)
            got = len(chunk)
            view[done:done + got] = chunk
        if not got:
            raise TruncatedFile(f"file ended inside the {count}-byte header", path=path)
        done += got
    return data


def _fast_parts(doc: object, raw: bytes, data_size: int) -> tuple[TensorTable, dict[str, str]] | None:
    """A well-formed header checked in whole-list operations; None means 'walk it'.

    Returns only for a valid file. None does not mean broken: it also covers the
    rare legal spellings (entries written as lists, unknown fields, repeated names,
    escapes, sub-byte dtypes, zero-size tensors) that the careful walk accepts.
    """
    if type(doc) is not dict or not _spelled_plainly(doc, raw):
        return None
    metadata = doc.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict or (metadata and set(map(type, metadata.values())) != {str}):
        return None
    names, entries = list(doc), list(doc.values())
    if not entries:
        return (TensorTable([], [], [], [], []), metadata) if data_size == 0 else None
    try:
        if set(map(len, entries)) != {3}:  # an unknown field, or not an object at all
            return None
        dtypes = list(map(_get_dtype, entries))
        shapes = list(map(_get_shape, entries))
        offsets = list(map(_get_offsets, entries))
        kinds = set(dtypes)
        if set(map(len, offsets)) != {2} or not kinds <= DTYPE_SIZES.keys():
            return None
    except (KeyError, TypeError):  # a field missing, a list entry, a dtype that is not a string
        return None
    # Shapes and offsets must be lists of whole numbers: serialised again they may hold
    # only digits, commas and brackets, one pair per list (no sign, point, quote, null).
    # A shape that is a bare number, or nests, fails math.prod below.
    text = orjson.dumps((shapes, offsets))
    if text.translate(None, b"0123456789,[]") or text.count(b"[") != 2 * len(entries) + 3:
        return None
    try:
        table = plain_table(names, dtypes, shapes, offsets, data_size)
    except TypeError:  # a shape that is a bare number, or nests
        return None
    return None if table is None else (table, metadata)


def _spelled_plainly(doc: dict, raw: bytes) -> bool:
    """Whether the parsed dict shows everything the text says.

    A dict hides repeated keys (serde refuses a repeated field, and checks every
    copy of a repeated name) and reads '-0' as 0 (serde: a float, so no size).
    Text that is exactly what the reference writer would emit for ``doc`` hides
    nothing; other text is checked by counting: every key costs one ':' outside a
    string and a '-' outside a string can only be a minus sign.
    """
    if raw.startswith(orjson.dumps(doc)):
        return True
    if b"\\u00" in raw:  # an escaped ':' or '-' would spoil the counts
        return False
    strings = list(doc)
    metadata = doc.get("__metadata__")
    key_count = len(doc)
    if type(metadata) is dict:
        strings += metadata
        strings += [value for value in metadata.values() if type(value) is str]
        key_count += len(metadata)
    for entry in doc.values():
        if type(entry) is dict and entry is not metadata:
            key_count += len(entry)
            strings += [value for value in entry.values() if type(value) is str]
            strings += entry
    joined = "".join(strings)
    return raw.count(b":") == key_count + joined.count(":") and raw.count(b"-") == joined.count("-")


_SCALAR_FORMATS = {
    "F16": "<e", "BF16": "<f", "F32": "<f", "F64": "<d", "I64": "<q", "I32": "<i", "I16": "<h",
    "I8": "<b", "U8": "<B", "U16": "<H", "U32": "<I", "U64": "<Q", "BOOL": "<?",
}
_SCALAR_GAP = 64  # scalars closer than this share one read


def read_scalars(header: Header, names: Iterable[str]) -> dict[str, float]:
    """Values of single-element tensors (kohya's per-module ``.alpha``), read in place.

    Names that are missing, not single-element, or of a dtype with no plain number
    format (FP8, F4, C64) are left out. One open and a few bytes per tensor;
    neighbouring scalars share a read (through ``header.fd`` when the header holds its file open).
    """
    table = header.tensors
    wanted = []
    for name in names:
        index = table.position(name)
        if index is not None:
            start, end, dtype = table.starts[index], table.ends[index], table.dtypes[index]
            if dtype in _SCALAR_FORMATS and end - start == DTYPE_SIZES[dtype] > 0:
                wanted.append((start, end, name, dtype))
    if not wanted:
        return {}
    wanted.sort()
    values: dict[str, float] = {}
    fd = header.fd
    own = fd is None  # a header read with ``keep_open`` lends its file
    if own:
        fd = os.open(header.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        first = 0
        for stop in range(1, len(wanted) + 1):
            if stop < len(wanted) and wanted[stop][0] - wanted[stop - 1][1] <= _SCALAR_GAP:
                continue
            group, first = wanted[first:stop], stop
            base, span = group[0][0], group[-1][1] - group[0][0]
            chunk = _read_at(fd, header.data_offset + base, span)
            if len(chunk) < span:
                raise TruncatedFile(f"tensor {group[-1][2]!r} lies past the end of the file; "
                                    f"it changed since it was scanned", path=header.path)
            for start, end, name, dtype in group:
                if dtype == "BF16":  # the top half of an F32
                    value = struct.unpack("<f", b"\x00\x00" + chunk[start - base:end - base])[0]
                else:
                    value = struct.unpack_from(_SCALAR_FORMATS[dtype], chunk, start - base)[0]
                values[name] = float(value)
    finally:
        if own:
            os.close(fd)
    return values


def _read_at(fd: int, offset: int, count: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, count)

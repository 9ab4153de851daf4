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
import math
import os
import stat
import struct
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter, mul, sub
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from catalog.errors import HeaderJSONError, HeaderTooLarge, SafetensorsError, TruncatedFile

if TYPE_CHECKING:
    from catalog.files.header_cache import HeaderCache

#: the reference library refuses headers over 100 MB (decimal, not MiB)
MAX_HEADER_BYTES = 100_000_000

#: bits per element of every dtype the safetensors library knows, in its own order
#: (increasing alignment, which its writer uses to lay tensors out)
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8,
    "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

#: bytes per element of the dtypes whose elements fill whole bytes (all but F4/F6)
DTYPE_SIZES: dict[str, int] = {name: bits // 8 for name, bits in DTYPE_BITS.items() if bits % 8 == 0}

_U64_MAX = 2**64 - 1
_ENTRY_FIELDS = ("dtype", "shape", "data_offsets")
_get_dtype, _get_shape, _get_offsets = map(itemgetter, _ENTRY_FIELDS)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # offset inside the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# A frozen dataclass's __init__ costs ~0.7 µs and an SDXL LoRA has 3,000 tensors, so
# records for a whole table are filled through the slot descriptors, in C.
_new_record = object.__new__
_slot_setters = tuple(getattr(TensorInfo, name).__set__ for name in ("dtype", "shape", "start", "end"))


class TensorTable(Mapping[str, TensorInfo]):
    """Name -> TensorInfo, kept as parallel columns in file order.

    Reading a header builds no per-tensor objects: bulk consumers read the columns
    (``names``, ``dtypes``, ``shapes``, ``starts``, ``ends``); ``items()`` and
    ``values()`` build every record at once, ``table[name]`` builds one.
    """

    __slots__ = ("names", "dtypes", "starts", "ends", "_shapes", "_index", "_records")

    def __init__(self, names: list[str], dtypes: list[str], shapes: list, starts: list[int],
                 ends: list[int]):
        self.names, self.dtypes, self.starts, self.ends = names, dtypes, starts, ends
        self._shapes = shapes  # lists as parsed until someone asks for them
        self._index: dict[str, int] | None = None
        self._records: dict[str, TensorInfo] | None = None

    @classmethod
    def from_records(cls, records: Mapping[str, TensorInfo]) -> TensorTable:
        """A table from ready-made records (tests, converters)."""
        infos = list(records.values())
        return cls(list(records), [info.dtype for info in infos], [tuple(info.shape) for info in infos],
                   [info.start for info in infos], [info.end for info in infos])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        if self._shapes and type(self._shapes[0]) is not tuple:
            self._shapes = list(map(tuple, self._shapes))
        return self._shapes

    def position(self, name: str) -> int | None:
        """Index of ``name`` in the columns, or None."""
        if self._index is None:
            self._index = dict(zip(self.names, range(len(self.names))))
        return self._index.get(name)

    def __getitem__(self, name: str) -> TensorInfo:
        if self._records is not None:
            return self._records[name]
        index = self.position(name)
        if index is None:
            raise KeyError(name)
        return TensorInfo(self.dtypes[index], self.shapes[index], self.starts[index], self.ends[index])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.position(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def items(self):
        return self._all().items()

    def values(self):
        return self._all().values()

    def _all(self) -> dict[str, TensorInfo]:
        if self._records is None:
            records = list(map(_new_record, repeat(TensorInfo, len(self.names))))
            for setter, column in zip(_slot_setters, (self.dtypes, self.shapes, self.starts, self.ends)):
                deque(map(setter, records, column), maxlen=0)
            self._records = dict(zip(self.names, records))
        return self._records

    def __repr__(self) -> str:
        return f"TensorTable({len(self.names)} tensors)"


@dataclass(slots=True)
class Header:
    path: Path
    file_size: int
    header_len: int  # the 8-byte little-endian length that opens the file
    tensors: TensorTable
    metadata: dict[str, str] = field(default_factory=dict)
    #: cheap identity of the header bytes (with the size, it recognises a moved file)
    fingerprint: str = ""

    @property
    def data_offset(self) -> int:
        """Absolute file offset where the data section starts."""
        return 8 + self.header_len

    @property
    def data_size(self) -> int:
        return self.file_size - 8 - self.header_len


def read_header(path: str | Path, cache: "HeaderCache | None" = None) -> Header:
    """Read and validate the header of one safetensors file, touching no tensor data.

    Raises a ``SafetensorsError`` subclass naming the file and the first problem
    exactly when ``safetensors.safe_open`` would refuse the file; ``OSError``
    passes through (the file could not be read at all). A ``HeaderCache`` lets a
    scan skip re-validating tensor tables it has already seen byte for byte.
    """
    path = Path(path)
    # O_NONBLOCK: a FIFO put in the walk's way after it looked opens without blocking,
    # and is refused below (regular files ignore the flag)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
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
    finally:
        os.close(fd)
    data_size = file_size - 8 - header_len
    key = parts = None
    if cache is not None:
        hit, key, parts = cache.lookup(raw, data_size, path)
        if hit is not None:
            return Header(path=path, file_size=file_size, header_len=header_len,
                          tensors=hit[0], metadata=hit[1], fingerprint=_fingerprint(raw))
    # orjson builds ~20,000 containers for an SDXL header, none in a cycle; letting
    # the collector walk them mid-parse costs a third of the parse.
    collecting = gc.isenabled()
    gc.disable()
    try:
        table, metadata = parse_header_bytes(raw, data_size, path, parts)
    finally:
        if collecting:
            gc.enable()
    if cache is not None:
        cache.store(key, table)
    return Header(path=path, file_size=file_size, header_len=header_len, tensors=table, metadata=metadata,
                  fingerprint=_fingerprint(raw))


def _fingerprint(raw: bytes) -> str:
    """Length + CRC of the first 64 KiB: hashing whole SDXL headers would cost a
    20k-file scan seconds, and with the file size this is enough to match a move."""
    return f"{len(raw):x}-{zlib.crc32(memoryview(raw)[:65536]):08x}"


def parse_header_bytes(raw: bytes, data_size: int, path: Path,
                       split: tuple[bytes, bytes] | None = None) -> tuple[TensorTable, dict[str, str]]:
    """(table, metadata) of valid header bytes; raises as ``read_header`` does.

    The typed decoder takes the canonical spelling; whatever it is unsure of is
    parsed generically and checked in whole-list operations, and whatever those
    refuse is walked entry by entry. ``split`` is ``split_metadata(raw)`` if known.
    """
    typed = _typed_decoder()
    if typed is not None:
        found = typed(raw, data_size, split)
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


def _read_exact(fd: int, count: int, path: Path) -> bytes:
    data = os.read(fd, count)
    while len(data) < count:  # short reads happen on pipes and network file systems
        more = os.read(fd, count - len(data))
        if not more:
            raise TruncatedFile(f"file ended inside the {count}-byte header", path=path)
        data += more
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
    bounds = list(chain.from_iterable(offsets))
    try:
        table = plain_table(names, dtypes, kinds, shapes, bounds[0::2], bounds[1::2], data_size)
    except TypeError:  # a shape that is a bare number, or nests
        return None
    return None if table is None else (table, metadata)


def plain_table(names: list[str], dtypes: list[str], kinds: set[str], shapes: list, starts: list[int],
                ends: list[int], data_size: int) -> TensorTable | None:
    """The table, when every tensor's byte span matches its dtype and shape and the spans tile
    the data exactly; None sends the header to the careful walk. Shared by both fast decoders."""
    counts = list(map(math.prod, shapes))
    if 0 in counts:  # zero-size: the reference may still overflow on the other dims
        return None
    if len(kinds) == 1:
        size = DTYPE_SIZES[next(iter(kinds))]
        nbytes = counts if size == 1 else list(map(size.__mul__, counts))
    else:
        nbytes = list(map(mul, counts, map(DTYPE_SIZES.__getitem__, dtypes)))
    if list(map(sub, ends, starts)) != nbytes or not _tiled(starts, ends, data_size):
        return None
    return TensorTable(names, dtypes, shapes, starts, ends)


def _tiled(starts: list[int], ends: list[int], data_size: int) -> bool:
    """Whether the tensors, in offset order, cover the data section end to end."""
    if starts[0] != 0 or starts[1:] != ends[:-1]:  # not tiled in file order: try offset order
        ordered = sorted(zip(starts, ends))
        starts = [pair[0] for pair in ordered]
        ends = [pair[1] for pair in ordered]
        if starts[0] != 0 or starts[1:] != ends[:-1]:
            return False
    return ends[-1] == data_size


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
    neighbouring scalars share a read.
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
        os.close(fd)
    return values


def _read_at(fd: int, offset: int, count: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, count, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, count)

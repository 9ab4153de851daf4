"""What every header module shares: the dtype facts, the tensor table, the layout check
of a table, and where a header's metadata object lies in its bytes.

The reader (``header``), the typed decoder (``header_typed``), the careful check
(``header_check``) and the table cache (``header_cache``) all build on this module,
which imports none of them, so none of them has to import another one's internals.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import mul, sub

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

U64_MAX = 2**64 - 1
ENTRY_FIELDS = ("dtype", "shape", "data_offsets")


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


def plain_table(names: list[str], dtypes: list[str], shapes: list, offsets: Iterable,
                data_size: int, *, dims_positive: bool = False) -> TensorTable | None:
    """The table, when every tensor's byte span matches its dtype and shape and the spans
    tile the data exactly; None sends the header to the careful walk. Shared by both fast
    decoders: ``offsets`` holds each tensor's ``[start, end]``, and ``dims_positive`` says
    the decoder already refused zero (and negative) dimensions.

    The usual file is laid out in its header's order, so the expected offsets are the
    running sum of the tensor sizes and one comparison checks both the sizes and the
    tiling; other orders are checked span by span and then sorted.
    """
    first = dtypes[0]
    if dtypes.count(first) == len(dtypes):
        size = DTYPE_SIZES.get(first)
        if size is None:
            return None
        counts = map(math.prod, shapes)
        nbytes = list(counts if size == 1 else map(size.__mul__, counts))
    elif DTYPE_SIZES.keys() >= set(dtypes):
        nbytes = list(map(mul, map(math.prod, shapes), map(DTYPE_SIZES.__getitem__, dtypes)))
    else:
        return None
    if not dims_positive and 0 in nbytes:  # zero-size: the reference may still overflow on the other dims
        return None
    flat = list(chain.from_iterable(offsets))
    ends = list(accumulate(nbytes))
    if ends[-1] == data_size and flat[1::2] == ends:
        starts = [0, *ends]
        starts.pop()
        if flat[0::2] == starts:
            return TensorTable(names, dtypes, shapes, starts, ends)
    starts, ends = flat[0::2], flat[1::2]
    if len(starts) != len(nbytes) or list(map(sub, ends, starts)) != nbytes or not _tiled(starts, ends, data_size):
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


_META_OPEN = b'{"__metadata__":{'


def metadata_span(raw: bytes | bytearray) -> tuple[int, int, int, int] | None:
    """Where the parts of a header lie: ``(meta_start, meta_end, rest_start, stop)``.

    ``raw[meta_start:meta_end]`` is the metadata object (empty when the header does
    not open with one) and ``raw[rest_start:stop]`` the tensor entries after it (the
    whole header, from its ``{``, when there is no leading metadata); trailing space
    padding, which writers add up to 8 bytes, is left out. Only the reference
    writer's spelling is split: ``{"__metadata__":{...},"``. The first ``},"`` ends
    the flat, string-valued metadata object unless a string value itself ends in
    ``},``; then the metadata part is cut inside a string and is not valid JSON,
    which its decoder notices. None: the header cannot be split this way.

    Only positions are returned, so splitting copies none of the ~175 KB.
    """
    stop = len(raw)
    while stop and raw[stop - 1] == 0x20:
        stop -= 1
    if not raw.startswith(_META_OPEN):
        return 0, 0, 0, stop
    end = raw.find(b'},"', len(_META_OPEN))
    if end < 0:
        return None
    return len(_META_OPEN) - 1, end + 1, end + 2, stop

"""Writing small safetensors files without numpy or torch.

The demo library, the benchmarks and the tests need real LoRA files; making them
here keeps ``catalog`` free of the heavy stack. The layout follows the reference
writer byte for byte (tensors ordered by dtype alignment, largest first, then by
name; header padded with spaces to a multiple of 8), so a file written here is
the one ``safetensors.numpy.save_file`` would write (up to the order of several
metadata keys, which the reference leaves to a hash map).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from catalog.files.header import DTYPE_BITS
from catalog.files.durable import atomic_write

TensorSpec = tuple[str, Sequence[int], "bytes | None"]

#: the reference writer's order: position in its dtype enum (increasing alignment)
_DTYPE_RANK = {name: rank for rank, name in enumerate(DTYPE_BITS)}
_ZERO_CHUNK = bytes(1 << 20)


def encode_floats(values: Sequence[float], dtype: str) -> bytes:
    """Little-endian bytes of ``values`` as F16, BF16, F32 or F64.

    BF16 rounds to nearest even, as torch does, so alphas and weights written here
    read back exactly like ones a trainer saved.
    """
    count = len(values)
    if dtype == "F16":
        return struct.pack(f"<{count}e", *values)
    if dtype == "F32":
        return struct.pack(f"<{count}f", *values)
    if dtype == "F64":
        return struct.pack(f"<{count}d", *values)
    if dtype == "BF16":
        words = struct.unpack(f"<{count}I", struct.pack(f"<{count}f", *values))
        return struct.pack(f"<{count}H", *map(_bf16_from_f32_bits, words))
    raise ValueError(f"encode_floats writes F16, BF16, F32 or F64, not {dtype!r}")


def _bf16_from_f32_bits(word: int) -> int:
    if (word & 0x7F800000) == 0x7F800000 and word & 0x007FFFFF:  # NaN stays a quiet NaN
        return (word >> 16) | 0x0040
    return (word + 0x7FFF + ((word >> 16) & 1)) >> 16


def tensor_nbytes(dtype: str, shape: Sequence[int]) -> int:
    """Bytes a tensor of ``dtype`` and ``shape`` takes in the data section."""
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise ValueError(f"{dtype} tensor of shape {list(shape)} does not end on a byte boundary")
    return bits // 8


def write_safetensors(
    path: str | Path,
    tensors: Mapping[str, TensorSpec],
    metadata: Mapping[str, str] | None = None,
    *,
    sparse: bool = False,
    fsync: bool = True,
) -> None:
    """Write ``tensors`` (name -> (dtype, shape, data)) as one safetensors file.

    ``data`` is the raw little-endian bytes and must have exactly the tensor's
    size; ``None`` means zeros, and with ``sparse=True`` those zeros are left as a
    hole so a benchmark can lay out thousands of realistically sized files that
    take no disk. The file appears atomically (temp file, fsync, rename); pass
    ``fsync=False`` only for throw-away benchmark trees.
    """
    path = Path(path)
    layout, data_size = _layout(tensors)
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = _checked_metadata(metadata)
    for name, dtype, shape, start, end, _ in layout:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}
    text = orjson.dumps(header)
    text += b" " * (-len(text) % 8)
    data_offset = 8 + len(text)

    with atomic_write(path, fsync=fsync) as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for _name, _dtype, _shape, start, end, data in layout:
            if data is not None:
                out.seek(data_offset + start)
                out.write(data)
            elif not sparse:
                out.seek(data_offset + start)
                _write_zeros(out, end - start)
        out.truncate(data_offset + data_size)  # holes for sparse tensors at the end


def _layout(tensors: Mapping[str, TensorSpec]):
    """Offsets in the reference writer's order, after checking every spec."""
    rows = []
    for name, spec in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensor name {name!r} is not allowed")
        dtype, shape, data = spec
        if dtype not in DTYPE_BITS:
            raise ValueError(f"tensor {name!r}: dtype {dtype!r} is not a safetensors dtype")
        shape = list(shape)
        if not all(type(dim) is int and dim >= 0 for dim in shape):
            raise ValueError(f"tensor {name!r}: shape {shape} must hold non-negative ints")
        nbytes = tensor_nbytes(dtype, shape)
        if data is not None and len(data) != nbytes:
            raise ValueError(
                f"tensor {name!r}: {dtype} {shape} needs {nbytes} bytes, got {len(data)}"
            )
        rows.append((name, dtype, shape, nbytes, data))
    rows.sort(key=lambda row: (-_DTYPE_RANK[row[1]], row[0]))
    layout, offset = [], 0
    for name, dtype, shape, nbytes, data in rows:
        layout.append((name, dtype, shape, offset, offset + nbytes, data))
        offset += nbytes
    return layout, offset


def _checked_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata must map strings to strings; {key!r}: {value!r} does not")
    return dict(metadata)


def _write_zeros(out, count: int) -> None:
    while count > 0:
        step = min(count, len(_ZERO_CHUNK))
        out.write(_ZERO_CHUNK[:step] if step < len(_ZERO_CHUNK) else _ZERO_CHUNK)
        count -= step

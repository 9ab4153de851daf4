"""The careful header check: the reference rules one entry at a time, in its order.

Only headers that fail the fast whole-list check in ``catalog.files.header`` come here:
broken ones (this names the first bad entry, as the reference would) and the rare
legal spellings the fast path does not take (list entries, unknown fields,
repeated names, escapes, sub-byte dtypes, zero-size tensors).
"""

from __future__ import annotations

import json
import math
from operator import itemgetter
from pathlib import Path

from catalog.errors import HeaderEntryError, HeaderJSONError, SafetensorsError, TruncatedFile
from catalog.files.header_table import DTYPE_BITS, ENTRY_FIELDS, U64_MAX, TensorTable

# --- the careful walk: the reference rules one entry at a time, in its order ---------

_MAX_DEPTH = 127  # serde_json's nesting limit, counting the header object itself


class _Pairs(list):
    """A JSON object as its (key, value) pairs, repeated keys kept."""


class _OutOfRange(ValueError):
    pass


def _parse_int(text: str) -> int | float:
    # serde reads '-0' and integers outside i64/u64 as floats, which no size accepts
    if text == "-0":
        return -0.0
    if len(text) <= 20:
        value = int(text)
        if -(2**63) <= value <= U64_MAX:
            return value
    return _parse_float(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _OutOfRange(text[:40])
    return value


def walk_entries(raw: bytes, path: Path) -> tuple[TensorTable, dict[str, str]]:
    """Parse again keeping what a dict hides, then check each entry as serde reads it."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_Pairs,
                         parse_int=_parse_int, parse_float=_parse_float)
    except _OutOfRange as err:
        raise HeaderJSONError(f"header holds the number {err} which is out of range", path=path) from None
    except RecursionError:
        raise HeaderJSONError(f"header JSON nests deeper than {_MAX_DEPTH} levels", path=path) from None
    if type(doc) is not _Pairs:
        raise HeaderEntryError(f"header must be a JSON object of tensors, found {_kind(doc)}", path=path)
    metadata: dict[str, str] = {}
    seen_metadata = False
    entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for key, value in doc:
        if key == "__metadata__":
            if seen_metadata:
                raise HeaderEntryError("'__metadata__' appears twice in the header", path=path)
            seen_metadata = True
            metadata = _walk_metadata(value, path)
        else:  # a repeated name: serde checks every copy and keeps the last
            entries[key] = _walk_entry(key, value, path)
    records = list(entries.values())
    columns = [list(map(itemgetter(field_index), records)) for field_index in range(4)]
    return TensorTable(list(entries), *columns), metadata


def _walk_metadata(value: object, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not _Pairs:
        raise HeaderEntryError(f"'__metadata__' must map strings to strings, found {_kind(value)}", path=path)
    for key, item in value:
        if type(item) is not str:
            raise HeaderEntryError(
                f"'__metadata__' key {key!r}: values must be strings, found {_kind(item)}", path=path)
    return dict(value)


def _walk_entry(name: str, value: object, path: Path) -> tuple[str, tuple[int, ...], int, int]:
    where = f"tensor {_show(name)}"
    if type(value) is _Pairs:
        fields: dict[str, object] = {}
        for key, item in value:
            if key in ENTRY_FIELDS:
                if key in fields:
                    raise HeaderEntryError(f"{where}: field {key!r} appears twice", path=path)
                fields[key] = item
            elif _depth(item) > _MAX_DEPTH - 2:  # unknown fields are skipped, but parsed
                raise HeaderJSONError(f"{where}: field {_show(key)} nests deeper than "
                                      f"{_MAX_DEPTH} levels", path=path)
        missing = [key for key in ENTRY_FIELDS if key not in fields]
        if missing:
            raise HeaderEntryError(f"{where}: missing {', '.join(missing)}", path=path)
        dtype, shape, offsets = (fields[key] for key in ENTRY_FIELDS)
    elif type(value) is list:  # serde also reads a struct written as a 3-item list
        if len(value) != 3:
            raise HeaderEntryError(f"{where}: expected an object with dtype, shape and "
                                   f"data_offsets, found a list of {len(value)} items", path=path)
        dtype, shape, offsets = value
    else:
        raise HeaderEntryError(f"{where}: expected an object with dtype, shape and data_offsets, "
                               f"found {_kind(value)}", path=path)
    if type(dtype) is _Pairs and len(dtype) == 1 and dtype[0][1] is None:
        dtype = dtype[0][0]  # an enum may also be written {"F16": null}
    if type(dtype) is not str:
        raise HeaderEntryError(f"{where}: dtype must be a string such as 'F16', found {_kind(dtype)}",
                               path=path)
    if dtype not in DTYPE_BITS:
        raise HeaderEntryError(f"{where}: dtype {_show(dtype)} is not a safetensors dtype", path=path)
    shape = _walk_sizes(where, "shape", shape, path)
    offsets = _walk_sizes(where, "data_offsets", offsets, path)
    if len(offsets) != 2:
        raise HeaderEntryError(f"{where}: data_offsets must be [start, end], found "
                               f"{len(offsets)} numbers", path=path)
    return dtype, tuple(shape), offsets[0], offsets[1]


def _walk_sizes(where: str, field_name: str, value: object, path: Path) -> list[int]:
    if type(value) is not list:
        raise HeaderEntryError(f"{where}: {field_name} must be a list of whole numbers, "
                               f"found {_kind(value)}", path=path)
    for item in value:
        if type(item) is not int or not 0 <= item <= U64_MAX:
            raise HeaderEntryError(f"{where}: {field_name} {_show(value)} holds {_show(item)}; "
                                   f"expected whole numbers from 0 to 2**64-1", path=path)
    return value


def check_layout(table: TensorTable, data_size: int, path: Path) -> None:
    """The reference's layout rules in its order (tensors sorted by offsets)."""
    starts, ends = table.starts, table.ends
    position, previous = 0, None
    for index in sorted(range(len(starts)), key=lambda i: (starts[i], ends[i])):
        name, dtype, shape = table.names[index], table.dtypes[index], table.shapes[index]
        start, end = starts[index], ends[index]
        where = f"tensor {_show(name)}: data_offsets [{start}, {end}]"
        if end < start:
            raise HeaderEntryError(f"{where} end before they start", path=path)
        if start != position:
            if previous is None:
                problem = "do not start at byte 0 of the data section, where the first tensor must"
            else:
                problem = "leave a gap after" if start > position else "overlap"
                problem += f" tensor {_show(previous)}, which ends at byte {position}"
            raise HeaderEntryError(f"{where} {problem}", path=path)
        count = 1
        for dim in shape:
            count *= dim
            if count > U64_MAX:
                break
        bits = count * DTYPE_BITS[dtype]
        if bits > U64_MAX:
            raise HeaderEntryError(f"{where}: shape {list(shape)} is too large to count in 64 bits",
                                   path=path)
        if bits % 8:
            raise HeaderEntryError(f"{where}: {count} {dtype} elements fill {bits} bits, "
                                   f"not a whole number of bytes", path=path)
        if end - start != bits // 8:
            raise HeaderEntryError(f"{where} hold {end - start} bytes but {dtype} {list(shape)} "
                                   f"takes {bits // 8}", path=path)
        position, previous = end, name
    if position > data_size:
        raise TruncatedFile(f"the tensors need {position} bytes of data but the file holds "
                            f"{data_size}: it was cut short (interrupted download or copy?)", path=path)
    if position < data_size:
        raise SafetensorsError(f"{data_size - position} bytes follow the last tensor; safetensors "
                               f"requires the data to end where the last tensor ends", path=path)


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (0 for a scalar), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if type(node) is _Pairs:
            stack.extend((item, level + 1) for _, item in node)
        elif type(node) is list:
            stack.extend((item, level + 1) for item in node)
        else:
            continue
        deepest = max(deepest, level)
        if deepest > _MAX_DEPTH:
            break
    return deepest


def _kind(value: object) -> str:
    if type(value) is _Pairs or type(value) is dict:
        return "an object"
    if type(value) is list:
        return "a list"
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        return f"the string {_show(value)}"
    return f"the number {value!r}"


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: struct formats of the dtypes a scalar can be read from (BF16 is the top half of an F32)

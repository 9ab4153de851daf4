"""The scan's header decoder: the canonical spelling decoded straight into typed columns.

Nearly every safetensors header is written by the reference writer (or one that
spells JSON the same way): ``{"__metadata__":{...},"name":{"dtype":..,"shape":[..],
"data_offsets":[a,b]},...}`` with no spaces, no escapes in names and no repeated
keys. For those, a typed decoder (msgspec ``Struct`` entries, dimensions of at least
1, unknown fields refused) builds one small object per tensor and checks the field
types while it parses, where a generic parser builds a dict and two lists per tensor
that Python code must then check again; shapes come out as tuples, as the table
keeps them. It is about twice as fast on a 3,000-tensor SDXL header, which is most
of a cold scan's work.

It only ever says "valid, and this is the table" or "not sure": anything else (a
decode error, a name with an escape or a dash, a field named twice) goes to the
generic reader in ``catalog.files.header``, which decides as the reference library does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec.structs import astuple

from catalog.files.header_table import DTYPE_SIZES, TensorTable, metadata_span, plain_table

#: a zero dimension is refused here: the careful walk knows how the reference counts it
_Dim = Annotated[int, msgspec.Meta(ge=1)]


#: the whole-byte dtypes, decoded to one shared string each: the table's dtype column then
#: compares by identity (is the file all one dtype?) instead of by text; sub-byte dtypes
#: go to the generic reader
_Dtype = Literal[tuple(DTYPE_SIZES)]


class _Entry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    dtype: _Dtype
    shape: tuple[_Dim, ...]
    # no bound needed: offsets that tile the data from 0 to its size lie inside it
    data_offsets: tuple[int, int]


_decode_tensors = msgspec.json.Decoder(dict[str, _Entry]).decode
_decode_metadata = msgspec.json.Decoder(dict[str, str]).decode
_encode = msgspec.json.Encoder().encode
_OPEN, _COMMA = ord("{"), ord(",")


def typed_parts(raw: bytes | bytearray, data_size: int, span: tuple[int, int, int, int] | None = None
                ) -> tuple[TensorTable, dict[str, str]] | None:
    """(table, metadata) of a valid header in the canonical spelling; None when unsure.

    ``span`` is ``metadata_span(raw)`` when the caller already has it.
    """
    if span is None:
        span = metadata_span(raw)
        if span is None:
            return None
    meta_start, meta_end, rest_start, stop = span
    view = memoryview(raw)
    try:
        if meta_end:
            if raw.find(b"\\u", meta_start, meta_end) >= 0:  # \u escapes (lone surrogates among them)
                return None
            metadata = _decode_metadata(view[meta_start:meta_end])
            entries_by_name = _decode_rest(raw, view, rest_start, stop)
        else:
            metadata = {}
            entries_by_name = _decode_tensors(view[rest_start:stop])
    except msgspec.DecodeError:  # ValidationError included
        return None
    count = len(entries_by_name)
    # a second metadata key (the first one is split off) is the reference's to judge
    if not count or "__metadata__" in entries_by_name:
        return None
    # A Struct keeps the last of a repeated field, which the reference refuses (a dict
    # keeps the last of a repeated name, as the reference does, after checking each
    # copy as a tensor, as the decoder does). Every key costs one ':' outside the
    # strings, so text holding exactly 4 per tensor (name, dtype, shape, data_offsets)
    # repeats no field, when no escape can hide a quote; a '-' could be a '-0' the
    # decoder read as 0. Other text must re-encode to exactly its own bytes.
    if raw.find(b"\\", rest_start, stop) >= 0 or raw.find(b"-", rest_start, stop) >= 0:
        encoded = _encode(entries_by_name)
        if raw[rest_start:stop] != (encoded[1:] if meta_end else encoded):
            return None
    elif raw.count(b":", rest_start, stop) != 4 * count:
        return None
    # one C-level pass takes the fields of every entry out, another turns them into columns
    dtypes, shapes, offsets = zip(*map(astuple, entries_by_name.values()))
    table = plain_table(list(entries_by_name), list(dtypes), list(shapes), offsets, data_size,
                        dims_positive=True)
    return None if table is None else (table, metadata)


def _decode_rest(raw: bytes | bytearray, view: memoryview, rest_start: int, stop: int) -> dict[str, _Entry]:
    """The tensor entries after the metadata object, decoded as one JSON object.

    The ``,`` just before them becomes the object's ``{`` for the decode and is put
    back after it, so the ~175 KB are not copied; bytes that cannot be patched are.
    """
    opening = rest_start - 1
    if type(raw) is not bytearray:
        return _decode_tensors(b"{" + view[rest_start:stop])
    raw[opening] = _OPEN
    try:
        return _decode_tensors(view[opening:stop])
    finally:
        raw[opening] = _COMMA

"""The header reader: agrees with the safetensors library on every file, names what is wrong."""

from __future__ import annotations

import json
import os
import random
import struct

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from catalog.errors import (
    HeaderEntryError,
    HeaderJSONError,
    HeaderTooLarge,
    SafetensorsError,
    TruncatedFile,
)
from catalog.files.header import DTYPE_BITS, TensorInfo, TensorTable, read_header, read_scalars
from catalog.files.safetensors_writer import encode_floats, write_safetensors

F32 = '"dtype":"F32","shape":[1],"data_offsets":[0,4]'


def raw_file(header: str | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """A file from header text and data, with the length field optionally forced."""
    text = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def library_view(path):
    """What the safetensors library makes of a file: None when it refuses it."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            keys = sorted(handle.keys())
            view = {key: (handle.get_slice(key).get_dtype(), list(handle.get_slice(key).get_shape()))
                    for key in keys}
            return view, handle.metadata() or {}
    except Exception:  # the library's error type is not part of its API
        return None


def assert_agrees(path, content: bytes, label: str) -> None:
    path.write_bytes(content)
    expected = library_view(path)
    try:
        header = read_header(path)
    except SafetensorsError as err:
        assert expected is None, f"{label}: refused a file safetensors opens: {err}"
        assert str(path) in str(err), f"{label}: message does not name the file: {err}"
        return
    assert expected is not None, f"{label}: accepted a file safetensors refuses"
    view, metadata = expected
    ours = {name: (info.dtype, list(info.shape)) for name, info in header.tensors.items()}
    assert ours == view, label
    assert header.metadata == metadata, label


# --- valid files to start from --------------------------------------------------------------


def numpy_file() -> bytes:
    arrays = {
        "w.lora_down.weight": np.arange(12, dtype=np.float16).reshape(3, 4),
        "w.lora_up.weight": np.ones((4, 3), dtype=np.float32),
        "w.alpha": np.array(2, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 5), dtype=np.uint8),
    }
    return safetensors.numpy.save({name: arrays[name] for name in arrays},
                                  metadata={"ss_network_dim": "3", "note": 'quote " colon: dash-0'})


def writer_file(tmp_path, *, metadata: bool = True) -> bytes:
    path = tmp_path / "writer-source.safetensors"
    tensors = {
        "lora_te_x.lora_down.weight": ("BF16", [2, 3], encode_floats([0.5] * 6, "BF16")),
        "lora_te_x.lora_up.weight": ("F16", [3, 2], encode_floats([0.25] * 6, "F16")),
        "lora_te_x.alpha": ("F32", [], encode_floats([1.0], "F32")),
    }
    meta = {"ss_tag_frequency": json.dumps({"a": {"tag-0, x:1": 3}}), "modelspec.date": "2024-01-05"}
    write_safetensors(path, tensors, meta if metadata else None)
    return path.read_bytes()


def larger_file(tmp_path) -> bytes:
    """A kohya-shaped file with a few hundred tensors, for sampled truncations."""
    path = tmp_path / "larger-source.safetensors"
    tensors = {}
    for index in range(80):
        module = f"lora_unet_up_blocks_{index % 4}_attentions_{index % 3}_proj_{index}"
        tensors[f"{module}.lora_down.weight"] = ("F16", [2, 4 + index % 5], None)
        tensors[f"{module}.lora_up.weight"] = ("F16", [4 + index % 7, 2], None)
        tensors[f"{module}.alpha"] = ("F16", [], encode_floats([1.0], "F16"))
    write_safetensors(path, tensors, {"ss_network_dim": "2", "ss_output_name": "larger-0"})
    return path.read_bytes()


def split(content: bytes) -> tuple[bytes, bytes]:
    (length,) = struct.unpack("<Q", content[:8])
    return content[8:8 + length], content[8 + length:]


# --- mutations ---------------------------------------------------------------------------


def truncations(content: bytes, rng: random.Random, every: bool):
    lengths = range(len(content)) if every else rng.sample(range(len(content)), 60)
    for length in lengths:
        yield f"truncated to {length}", content[:length]


def byte_flips(content: bytes, rng: random.Random, count: int):
    header, _ = split(content)
    interesting = b'-0"\\:,[]{} 1e.9tnu\x00\xff'
    for index in range(count):
        position = 8 + rng.randrange(len(header))
        value = rng.choice(interesting) if index % 2 else rng.randrange(256)
        mutated = bytearray(content)
        mutated[position] = value
        yield f"byte {position} set to {value:#04x}", bytes(mutated)


def length_field(content: bytes):
    header, data = split(content)
    for delta in (-9, -8, -1, 1, 7, 8, len(data), len(data) + 1):
        yield f"length field {delta:+}", raw_file(header, data, len(header) + delta)
    for length in (0, 100_000_000, 100_000_001, 2**63, 2**64 - 1):
        yield f"length field {length}", raw_file(header, data, length)


def rewrites(content: bytes):
    """Each rule broken (or legally bent) on purpose, through the parsed header."""
    header, data = split(content)
    doc = json.loads(header)
    names = [name for name in doc if name != "__metadata__"]
    first = min(names, key=lambda name: doc[name]["data_offsets"])
    last = max(names, key=lambda name: doc[name]["data_offsets"])

    def variant(label, change, extra=b""):
        copy = json.loads(header)
        change(copy)
        return label, raw_file(json.dumps(copy, separators=(",", ":")), data + extra)

    def set_field(name, key, value):
        return lambda d: d[name].__setitem__(key, value)

    yield variant("compact rewrite, unchanged", lambda d: None)
    yield "indented rewrite", raw_file(json.dumps(doc, indent=2), data)
    yield "escaped keys", raw_file(json.dumps(doc).replace('"dtype"', '"\\u0064type"'), data)
    yield "trailing spaces", raw_file(header + b"    \n\t", data)
    yield "leading spaces", raw_file(b"  " + header, data)
    yield "trailing NUL", raw_file(header + b"\x00", data)
    yield "BOM", raw_file(b"\xef\xbb\xbf" + header, data)
    yield variant("bad dtype", set_field(first, "dtype", "F17"))
    yield variant("lower-case dtype", set_field(first, "dtype", "f32"))
    yield variant("dtype as number", set_field(first, "dtype", 32))
    yield variant("dtype as enum map", set_field(first, "dtype", {doc[first]["dtype"]: None}))
    yield variant("dtype as bad enum map", set_field(first, "dtype", {doc[first]["dtype"]: 1}))
    yield variant("negative dim", set_field(last, "shape", [-1] + doc[last]["shape"]))
    yield variant("float dim", set_field(last, "shape", [float(d) for d in doc[last]["shape"]] or [1.0]))
    yield variant("bool dim", set_field(last, "shape", [True] + doc[last]["shape"]))
    yield variant("nested dim", set_field(last, "shape", [doc[last]["shape"]]))
    yield variant("shape as string", set_field(last, "shape", "3x4"))
    yield variant("bare-number shape beside a nested one", lambda d: (
        d[first].__setitem__("shape", 4), d[last].__setitem__("shape", [d[last]["shape"]])))
    yield variant("extra dim of 1", set_field(last, "shape", doc[last]["shape"] + [1]))
    yield variant("wrong byte count", set_field(last, "shape", doc[last]["shape"] + [2]))
    yield variant("zero dim", set_field(last, "shape", [0] + doc[last]["shape"]))
    yield variant("overflowing dims then zero",
                  set_field(last, "shape", [2**40, 2**40, 0]))
    yield variant("zero then huge dims", set_field(last, "shape", [0, 2**40, 2**40]))
    yield variant("dims past u64", set_field(last, "shape", [2**64, 0]))
    start, end = doc[last]["data_offsets"]
    yield variant("gap before last", set_field(last, "data_offsets", [start + 1, end + 1]), b"\x00")
    yield variant("overlap", set_field(last, "data_offsets", [start - 1, end - 1]))
    yield variant("end before start", set_field(last, "data_offsets", [end, start]))
    yield variant("offsets past the end", set_field(last, "data_offsets", [start + 8, end + 8]))
    yield variant("three offsets", set_field(last, "data_offsets", [start, end, end]))
    yield variant("one offset", set_field(last, "data_offsets", [start]))
    yield variant("first not at 0", set_field(first, "data_offsets", [1, doc[first]["data_offsets"][1]]))
    yield variant("extra trailing bytes", lambda d: None, b"\x00" * 8)
    yield "data one byte short", raw_file(header, data[:-1])
    yield variant("missing field", lambda d: d[first].pop("shape"))
    yield variant("unknown field", set_field(first, "zz", [1, {"a": None}]))
    yield variant("entry as list", lambda d: d.__setitem__(
        first, [d[first]["dtype"], d[first]["shape"], d[first]["data_offsets"]]))
    yield variant("entry as short list", lambda d: d.__setitem__(first, [d[first]["dtype"]]))
    yield variant("entry as string", lambda d: d.__setitem__(first, "x"))
    yield variant("entry null", lambda d: d.__setitem__(first, None))
    yield variant("metadata value not a string", lambda d: d.__setitem__("__metadata__", {"k": 1}))
    yield variant("metadata null", lambda d: d.__setitem__("__metadata__", None))
    yield variant("metadata list", lambda d: d.__setitem__("__metadata__", ["k"]))
    yield variant("metadata nested", lambda d: d.__setitem__("__metadata__", {"k": {"a": "b"}}))
    yield variant("reordered entries", lambda d: d.update(reversed(list(d.items()))))
    for depth in (124, 125, 126, 127):
        nested = "[" * depth + "]" * depth
        text = header.decode().replace(f'"{first}":{{', f'"{first}":{{"zz":{nested},', 1)
        yield f"unknown field nested {depth} deep", raw_file(text, data)
    body = header.decode().rstrip()
    entry = json.dumps(doc[first], separators=(",", ":"))
    yield "repeated name, same entry", raw_file(body[:-1] + f',"{first}":{entry}}}', data)
    yield "repeated name, earlier copy broken", raw_file('{"%s":"x",' % first + body[1:], data)
    yield "repeated field", raw_file(body.replace('"dtype":', '"dtype":"F32","dtype":', 1), data)
    yield "repeated metadata", raw_file(body[:-1] + ',"__metadata__":{}}', data)
    size = len(data)
    yield "metadata written as a tensor after the tensors", raw_file(
        body[:-1] + ',"__metadata__":{"dtype":"U8","shape":[2],"data_offsets":[%d,%d]}}' % (size, size + 2),
        data + b"\x00\x00")
    yield variant("two negative dims that multiply back", set_field(last, "shape", [-1, -1] + doc[last]["shape"]))
    yield "repeated metadata key", raw_file(body.replace('"__metadata__":{', '"__metadata__":{"k":"1","k":"2",'), data)
    yield "repeated metadata key, earlier bad", raw_file(
        body.replace('"__metadata__":{', '"__metadata__":{"k":1,"k":"2",'), data)
    yield "negative zero offset", raw_file(body.replace('"data_offsets":[0,', '"data_offsets":[-0,', 1), data)
    yield "number out of range", raw_file(body.replace('"dtype":', '"zz":1e400,"dtype":', 1), data)
    yield "big number in unknown field", raw_file(body.replace('"dtype":', '"zz":1e300,"dtype":', 1), data)
    yield "top-level list", raw_file("[]", data)
    yield "empty object", raw_file("{}")
    yield "empty object with data", raw_file("{}", b"\x00")
    yield "empty header", raw_file("")
    yield "invalid UTF-8", raw_file(body.replace('"__metadata__"', '"__m\xffetadata__"').encode("latin-1"), data)
    yield "empty file", b""
    yield "7-byte file", b"\x00" * 7


def exotic_dtypes():
    """Dtypes the fast path leaves to the careful one."""
    yield "F4 even", raw_file('{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', b"\x00" * 2)
    yield "F4 odd", raw_file('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\x00" * 2)
    yield "F6 four", raw_file('{"a":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}', b"\x00" * 3)
    yield "C64", raw_file('{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', b"\x00" * 8)
    yield "F8_E8M0", raw_file('{"a":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[0,2]}}', b"\x00" * 2)
    yield "two empties at one offset", raw_file(
        '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
        '"b":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"c":{%s}}' % F32, b"\x00" * 4)


def test_reader_agrees_with_the_library_on_mutated_files(tmp_path):
    rng = random.Random(20240105)
    sources = {"numpy": numpy_file(), "writer": writer_file(tmp_path),
               "no metadata": writer_file(tmp_path, metadata=False), "larger": larger_file(tmp_path)}
    target = tmp_path / "mutant.safetensors"
    checked = 0
    for source, content in sources.items():
        assert_agrees(target, content, f"{source}: unmutated")
        mutants = [
            *truncations(content, rng, every=source == "no metadata"),
            *byte_flips(content, rng, 300),
            *length_field(content),
            *rewrites(content),
        ]
        for label, mutated in mutants:
            assert_agrees(target, mutated, f"{source}: {label}")
            checked += 1
    for label, content in exotic_dtypes():
        assert_agrees(target, content, label)
    assert checked > 1500


# --- what a user sees -------------------------------------------------------------------


def test_a_valid_file_reads_with_its_metadata_and_offsets(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(numpy_file())
    header = read_header(path)
    assert header.metadata["note"] == 'quote " colon: dash-0'
    info = header.tensors["w.lora_down.weight"]
    assert info == TensorInfo("F16", (3, 4), info.start, info.start + 24)
    assert info.numel == 12
    assert header.data_offset + header.data_size == path.stat().st_size
    assert set(header.tensors) == {"w.lora_down.weight", "w.lora_up.weight", "w.alpha", "mask", "empty"}
    assert "nope" not in header.tensors and len(header.tensors) == 5
    table = header.tensors
    index = table.position("w.alpha")
    assert (table.dtypes[index], table.shapes[index]) == ("I64", ())
    assert dict(table.items())["mask"].shape == (2,)
    assert sorted(info.dtype for info in table.values()) == ["BOOL", "F16", "F32", "I64", "U8"]
    with pytest.raises(KeyError):
        table["nope"]
    assert TensorTable.from_records(dict(table.items())) == table


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (b"", TruncatedFile, "0 bytes long"),
        (b"\x01" * 7, TruncatedFile, "7 bytes long"),
        (raw_file("{}", length=50), TruncatedFile, "says 50 bytes"),
        (raw_file("{}", length=100_000_001), HeaderTooLarge, "100000000"),
        (raw_file('{"a":'), HeaderJSONError, "line 1, column 6"),
        (raw_file('{"x.lora_down.weight":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}', b"0000"),
         HeaderEntryError, "tensor 'x.lora_down.weight': dtype 'F17' is not a safetensors dtype"),
        (raw_file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,4]}}', b"0000"),
         HeaderEntryError, "tensor 'a': shape [-2] holds -2"),
        (raw_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', b"0000"),
         HeaderEntryError, "hold 4 bytes but F32 [2] takes 8"),
        (raw_file('{"a":{%s},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}' % F32, b"0" * 12),
         HeaderEntryError, "tensor 'b': data_offsets [8, 12] leave a gap after tensor 'a'"),
        (raw_file('{"a":{%s},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}' % F32, b"0" * 6),
         HeaderEntryError, "overlap tensor 'a'"),
        (raw_file('{"a":{%s}}' % F32, b"00"), TruncatedFile, "need 4 bytes of data but the file holds 2"),
        (raw_file('{"a":{%s}}' % F32, b"000000"), SafetensorsError, "2 bytes follow the last tensor"),
        (raw_file('{"__metadata__":{"k":7},"a":{%s}}' % F32, b"0000"),
         HeaderEntryError, "'__metadata__' key 'k': values must be strings, found the number 7"),
        (raw_file('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"0000"),
         HeaderEntryError, "field 'dtype' appears twice"),
    ],
)
def test_each_broken_file_gets_a_typed_error_naming_file_and_problem(tmp_path, content, error, words):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(error) as caught:
        read_header(path)
    assert str(path) in str(caught.value)
    assert words in str(caught.value)


def test_dtype_table_matches_the_library(tmp_path):
    path = tmp_path / "one.safetensors"
    for dtype, bits in DTYPE_BITS.items():
        count = 8  # whole bytes for every width
        nbytes = count * bits // 8
        path.write_bytes(raw_file('{"t":{"dtype":"%s","shape":[%d],"data_offsets":[0,%d]}}'
                                  % (dtype, count, nbytes), b"\x00" * nbytes))
        assert library_view(path) is not None, dtype
        assert read_header(path).tensors["t"].dtype == dtype


def test_read_scalars_reads_alphas_of_every_number_dtype(tmp_path):
    path = tmp_path / "alphas.safetensors"
    tensors = {
        "f16.alpha": ("F16", [], encode_floats([8.0], "F16")),
        "bf16.alpha": ("BF16", [], encode_floats([4.0], "BF16")),
        "f32.alpha": ("F32", [1], encode_floats([0.75], "F32")),
        "f64.alpha": ("F64", [], encode_floats([16.5], "F64")),
        "i64.alpha": ("I64", [], struct.pack("<q", 32)),
        "i8.alpha": ("I8", [1, 1], struct.pack("<b", -3)),
        "u8.alpha": ("U8", [], b"\x07"),
        "fp8.alpha": ("F8_E4M3", [], b"\x38"),
        "w.lora_down.weight": ("F16", [2, 2], encode_floats([1.0] * 4, "F16")),
    }
    write_safetensors(path, tensors)
    header = read_header(path)
    values = read_scalars(header, [*tensors, "missing.alpha"])
    assert values == {"f16.alpha": 8.0, "bf16.alpha": 4.0, "f32.alpha": 0.75, "f64.alpha": 16.5,
                      "i64.alpha": 32.0, "i8.alpha": -3.0, "u8.alpha": 7.0}
    with safe_open(str(path), framework="numpy") as handle:
        for name, value in values.items():
            if name != "bf16.alpha":  # numpy has no bfloat16
                assert float(handle.get_tensor(name).reshape(-1)[0]) == value


def test_a_header_kept_open_reads_scalars_from_the_same_file_and_closes_it(tmp_path):
    """The scan reads alphas through the descriptor its header read opened: a file renamed
    away meanwhile still gives its values, and the descriptor is closed when done."""
    path = tmp_path / "open.safetensors"
    write_safetensors(path, {"a.alpha": ("F32", [], encode_floats([2.0], "F32")),
                             "b.alpha": ("F16", [], encode_floats([3.0], "F16"))})
    with read_header(path, keep_open=True) as header:
        fd = header.fd
        assert fd is not None
        path.rename(tmp_path / "moved.safetensors")
        assert read_scalars(header, ["a.alpha", "b.alpha"]) == {"a.alpha": 2.0, "b.alpha": 3.0}
    assert header.fd is None
    with pytest.raises(OSError):
        os.fstat(fd)
    assert read_header(tmp_path / "moved.safetensors").fd is None  # closed unless asked to keep it


def test_read_scalars_notices_a_file_cut_after_the_scan(tmp_path):
    path = tmp_path / "cut.safetensors"
    write_safetensors(path, {"a.alpha": ("F32", [], encode_floats([2.0], "F32"))})
    header = read_header(path)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(TruncatedFile) as caught:
        read_scalars(header, ["a.alpha"])
    assert str(path) in str(caught.value)


def test_reader_without_readv_reads_the_same(tmp_path, monkeypatch):
    """Where ``os.readv`` is missing (Windows) the header is read with plain reads."""
    import catalog.files.header as header_module

    path = tmp_path / "plain.safetensors"
    write_safetensors(path, {"a.alpha": ("F32", [], encode_floats([2.0], "F32"))}, {"k": "v"})
    expected = read_header(path)
    monkeypatch.setattr(header_module, "_READV", None)
    found = read_header(path)
    assert (dict(found.tensors), found.metadata, found.fingerprint) == \
        (dict(expected.tensors), expected.metadata, expected.fingerprint)

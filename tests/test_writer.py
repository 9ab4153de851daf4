"""The numpy-free writer: files the safetensors library reads back as written."""

from __future__ import annotations

import os
import stat
import struct

import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from catalog.files.header import read_header, read_scalars
from catalog.files.safetensors_writer import encode_floats, tensor_nbytes, write_safetensors


def kohya_like() -> dict:
    return {
        "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight":
            ("F16", [4, 8], encode_floats([i / 16 for i in range(32)], "F16")),
        "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight":
            ("BF16", [8, 4], encode_floats([-i / 8 for i in range(32)], "BF16")),
        "lora_unet_mid_block_attentions_0_proj_in.alpha": ("F32", [], encode_floats([2.5], "F32")),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": ("I64", [], struct.pack("<q", 4)),
        "flags": ("BOOL", [3], b"\x01\x00\x01"),
    }


def test_round_trip_through_the_library_and_our_reader(tmp_path):
    path = tmp_path / "lora.safetensors"
    tensors = kohya_like()
    metadata = {"ss_network_dim": "4", "ss_tag_frequency": '{"a": {"ink, wash": 2}}', "note": "ünïcode ✓"}
    write_safetensors(path, tensors, metadata)

    with safe_open(str(path), framework="numpy") as handle:
        assert sorted(handle.keys()) == sorted(tensors)
        assert handle.metadata() == metadata
        for name, (dtype, shape, data) in tensors.items():
            piece = handle.get_slice(name)
            assert (piece.get_dtype(), piece.get_shape()) == (dtype, shape)
            if dtype != "BF16":  # numpy has no bfloat16
                assert handle.get_tensor(name).tobytes() == data

    header = read_header(path)
    assert header.metadata == metadata
    assert {name: (info.dtype, list(info.shape)) for name, info in header.tensors.items()} == {
        name: (dtype, shape) for name, (dtype, shape, _) in tensors.items()}
    with open(path, "rb") as handle:
        for name, (_, _, data) in tensors.items():
            info = header.tensors[name]
            handle.seek(header.data_offset + info.start)
            assert handle.read(info.end - info.start) == data
    alphas = read_scalars(header, [name for name in tensors if name.endswith(".alpha")])
    assert alphas == {"lora_unet_mid_block_attentions_0_proj_in.alpha": 2.5,
                      "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": 4.0}


def test_layout_is_byte_identical_to_the_reference_writer(tmp_path):
    arrays = {
        "b.weight": np.arange(6, dtype=np.float16).reshape(2, 3),
        "a.weight": np.arange(4, dtype=np.float32),
        "a.alpha": np.array(3, dtype=np.int64),
        "z.mask": np.array([1, 0, 1], dtype=np.uint8),
        "empty": np.zeros((0, 2), dtype=np.float32),
    }
    dtypes = {np.float16: "F16", np.float32: "F32", np.int64: "I64", np.uint8: "U8"}
    ours = {name: (dtypes[array.dtype.type], list(array.shape), array.tobytes()) for name, array in arrays.items()}
    for metadata in (None, {"format": "pt"}):
        path = tmp_path / "ours.safetensors"
        write_safetensors(path, ours, metadata)
        assert path.read_bytes() == safetensors.numpy.save(arrays, metadata=metadata)


def test_sparse_file_takes_no_disk_and_reads_as_zeros(tmp_path):
    path = tmp_path / "big.safetensors"
    shape = [1024, 8192]  # 16 MiB of F16
    write_safetensors(path, {"w": ("F16", shape, None), "a": ("F16", [], encode_floats([1.0], "F16"))},
                      sparse=True, fsync=False)
    header = read_header(path)
    assert header.data_size == tensor_nbytes("F16", shape) + 2
    assert path.stat().st_size == header.data_offset + header.data_size
    if hasattr(os.stat_result, "st_blocks"):
        assert path.stat().st_blocks * 512 < 1024 * 1024
    with safe_open(str(path), framework="numpy") as handle:
        assert not handle.get_slice("w")[:2, :16].any()
        assert float(handle.get_tensor("a")) == 1.0


def test_dense_zeros_when_data_is_omitted(tmp_path):
    path = tmp_path / "zeros.safetensors"
    write_safetensors(path, {"w": ("F32", [3, 5], None)})
    with safe_open(str(path), framework="numpy") as handle:
        assert handle.get_tensor("w").tolist() == [[0.0] * 5] * 3


@pytest.mark.parametrize(
    ("tensors", "metadata", "words"),
    [
        ({"w": ("F16", [2, 2], b"\x00" * 7)}, None, "needs 8 bytes, got 7"),
        ({"w": ("F17", [1], b"\x00")}, None, "not a safetensors dtype"),
        ({"w": ("F16", [-1], None)}, None, "non-negative"),
        ({"w": ("F16", [1.5], None)}, None, "non-negative"),
        ({"w": ("F4", [3], None)}, None, "byte boundary"),
        ({"__metadata__": ("F16", [1], None)}, None, "not allowed"),
        ({"w": ("F16", [1], None)}, {"dim": 4}, "strings to strings"),
        ({"w": ("U8", [2], [1, 2])}, None, "bytes-like"),  # fails while writing
    ],
)
def test_bad_specs_are_refused_and_the_old_file_survives(tmp_path, tensors, metadata, words):
    path = tmp_path / "keep.safetensors"
    write_safetensors(path, {"old": ("U8", [1], b"\x07")})
    before = path.read_bytes()
    with pytest.raises((ValueError, TypeError), match=words):
        write_safetensors(path, tensors, metadata)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.safetensors"]  # no temp file left behind


def test_rewrite_replaces_the_file_with_normal_permissions(tmp_path):
    path = tmp_path / "x.safetensors"
    write_safetensors(path, {"a": ("U8", [1], b"\x01")})
    write_safetensors(path, {"b": ("U8", [2], b"\x02\x03")})
    assert list(read_header(path).tensors) == ["b"]
    assert os.listdir(tmp_path) == ["x.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_encode_floats_matches_numpy_and_rounds_bf16_to_nearest_even():
    values = [0.0, -1.5, 3.140625, 65504.0, 1e-3, -2.5e-8]
    assert encode_floats(values, "F16") == np.array(values, dtype=np.float16).tobytes()
    assert encode_floats(values, "F32") == np.array(values, dtype=np.float32).tobytes()
    assert encode_floats(values, "F64") == np.array(values, dtype=np.float64).tobytes()
    # bf16 keeps the top 16 bits of an f32, rounding the dropped half to nearest, ties to even
    halves = {
        1.0: 0x3F80,
        1 + 2**-8: 0x3F80,  # a tie, rounds down to the even neighbour
        1 + 3 * 2**-8: 0x3F82,  # a tie, rounds up to the even neighbour
        1 + 2**-8 + 2**-16: 0x3F81,  # past the tie
        -2.0: 0xC000,
    }
    encoded = encode_floats(list(halves), "BF16")
    assert list(struct.unpack(f"<{len(halves)}H", encoded)) == list(halves.values())
    nan = struct.unpack("<H", encode_floats([float("nan")], "BF16"))[0]
    assert nan & 0x7F80 == 0x7F80 and nan & 0x007F
    with pytest.raises(ValueError):
        encode_floats([1.0], "I8")


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path):
    from catalog.files.durable import atomic_write

    path = tmp_path / "card.toml"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write(b"half of the ne")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.toml"]  # no temp file left


def test_atomic_write_replaces_at_once_with_the_mode_asked_for(tmp_path):
    from catalog.files.durable import atomic_write

    path = tmp_path / ("x" * 250 + ".toml")  # a 255-byte name still gets a temp name
    with atomic_write(path, mode=0o640) as fh:
        fh.write(b"new")
        assert not path.exists()  # nothing visible until the block ends
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640
    refused = tmp_path / "refused.toml"
    with pytest.raises(ValueError), atomic_write(refused, before_replace=_refuse) as fh:
        fh.write(b"data")
    assert not refused.exists() and len(list(tmp_path.iterdir())) == 1


def _refuse():
    raise ValueError("changed on disk meanwhile")

"""The scan's header cache must never change an answer, only skip repeated work."""

from __future__ import annotations

import pytest

from catalog.errors import SafetensorsError
from catalog.files.header import read_header
from catalog.files.header_cache import HeaderCache, split_metadata
from catalog.files.safetensors_writer import write_safetensors

TENSORS = {"lora_unet_x.lora_down.weight": ("F16", [4, 768], None),
           "lora_unet_x.lora_up.weight": ("F16", [320, 4], None),
           "lora_unet_x.alpha": ("F16", [], None)}


def _write(path, metadata):
    write_safetensors(path, TENSORS, metadata, fsync=False)
    return path


@pytest.mark.parametrize("metadata", [
    {"ss_output_name": "b"},
    {"tricky": "ends with },"},
    {"tricky": '},"x": and quotes "}'},
    {},
    None,
])
def test_cached_reads_equal_full_reads(tmp_path, metadata):
    cache = HeaderCache()
    first = read_header(_write(tmp_path / "a.safetensors", {"ss_output_name": "a"}), cache)
    second_path = _write(tmp_path / "b.safetensors", metadata)
    cached = read_header(second_path, cache)
    full = read_header(second_path)
    assert cached.metadata == full.metadata == (metadata or {})
    assert dict(cached.tensors) == dict(full.tensors) == dict(first.tensors)


def test_a_cached_table_does_not_hide_bad_metadata(tmp_path):
    cache = HeaderCache()
    read_header(_write(tmp_path / "a.safetensors", {"k": "v"}), cache)
    good = (tmp_path / "a.safetensors").read_bytes()
    bad = good.replace(b'{"k":"v"}', b'{"k":5  }')  # same length, a non-string value
    assert len(bad) == len(good)
    (tmp_path / "bad.safetensors").write_bytes(bad)
    with pytest.raises(SafetensorsError):
        read_header(tmp_path / "bad.safetensors", cache)
    with pytest.raises(SafetensorsError):
        read_header(tmp_path / "bad.safetensors")


def test_repeated_tables_hit_the_cache(tmp_path):
    cache = HeaderCache()
    for i in range(5):
        read_header(_write(tmp_path / f"{i}.safetensors", {"ss_output_name": str(i)}), cache)
    assert (cache.misses, cache.hits) == (1, 4)


def test_split_refuses_spellings_it_cannot_be_sure_of():
    assert split_metadata(b'{"x":{},"__metadata__":{"a":"b"}}') is None
    assert split_metadata(b' {"__metadata__":{"a":"b"},"x":{}}') is None
    meta, rest = split_metadata(b'{"__metadata__":{"a":"b"},"x":{}}')
    assert (meta, rest) == (b'{"a":"b"}', b'"x":{}}')

"""The scan's header cache must never change an answer, only skip repeated work."""

from __future__ import annotations

import pytest

from catalog.errors import SafetensorsError
from catalog.files.header import read_header
from catalog.files.header_cache import HeaderCache
from catalog.files.header_table import metadata_span
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
    first_path = _write(tmp_path / "a.safetensors", {"ss_output_name": "a"})
    read_header(first_path, cache)
    first = read_header(first_path, cache)  # the second sighting keeps the table
    second_path = _write(tmp_path / "b.safetensors", metadata)
    cached = read_header(second_path, cache)
    full = read_header(second_path)
    assert cached.metadata == full.metadata == (metadata or {})
    assert dict(cached.tensors) == dict(full.tensors) == dict(first.tensors)


def test_a_cached_table_does_not_hide_bad_metadata(tmp_path):
    cache = HeaderCache()
    for _ in range(2):  # the second sighting keeps the table
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
    # the first file is read in full, the second is read in full and kept, the rest hit
    assert (cache.misses, cache.hits) == (2, 3)


def test_split_names_the_metadata_and_the_tensor_part():
    raw = b'{"__metadata__":{"a":"b"},"x":{}}   '
    meta_start, meta_end, rest_start, stop = metadata_span(raw)
    assert (raw[meta_start:meta_end], raw[rest_start:stop]) == (b'{"a":"b"}', b'"x":{}}')
    assert metadata_span(b'{"__metadata__":{"a":"b"}') is None
    # no leading metadata: the tensor part is the whole header, from its brace
    assert metadata_span(b'{"x":{},"__metadata__":{"a":"b"}}  ') == (0, 0, 0, 33)


def test_metadata_after_the_tensors_is_never_taken_from_the_cache(tmp_path):
    """Only the leading metadata object is split off; one written after the tensors must
    be read from each file, not assumed empty because the tensor bytes were seen before."""
    plain = _write(tmp_path / "a.safetensors", None)
    content = plain.read_bytes()
    header_len = int.from_bytes(content[:8], "little")
    text = content[8:8 + header_len].rstrip(b" ")
    assert not text.startswith(b'{"__metadata__"')
    moved = text[:-1] + b',"__metadata__":{"k":"v"}}'
    target = tmp_path / "b.safetensors"
    target.write_bytes(len(moved).to_bytes(8, "little") + moved + content[8 + header_len:])
    cache = HeaderCache()
    for _ in range(3):
        assert read_header(target, cache).metadata == {"k": "v"}
    assert cache.hits == 0


def test_a_split_in_the_wrong_place_is_never_cached(tmp_path):
    """A space before the comma that ends the metadata makes the split cut after the first
    tensor instead; that file is valid, but its tensor part must not vouch for a file whose
    header holds only the tensors after the cut."""
    content = _write(tmp_path / "a.safetensors", {"k": "v"}).read_bytes()
    header_len = int.from_bytes(content[:8], "little")
    text, data = content[8:8 + header_len].rstrip(b" "), content[8 + header_len:]
    first = text.index(b'},"', len(b'{"__metadata__":{')) + 1
    spaced = text[:first] + b" " + text[first:]
    cut = text.index(b'},"', first) + 2  # where the split lands in the spaced header
    short = text[:first + 1] + text[cut:]  # the metadata, then only the tensors after the cut

    def write(name, header):
        path = tmp_path / name
        path.write_bytes(len(header).to_bytes(8, "little") + header + data)
        return path

    cache = HeaderCache()
    for _ in range(3):
        assert len(read_header(write("spaced.safetensors", spaced), cache).tensors) == 3
    with pytest.raises(SafetensorsError):
        read_header(write("short.safetensors", short))
    with pytest.raises(SafetensorsError):
        read_header(write("short.safetensors", short), cache)

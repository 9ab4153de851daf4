"""The scan's typed header decoder: it accepts only what the reference library opens,
and reads exactly what the generic reader reads."""

from __future__ import annotations

import random

import pytest

from catalog.errors import SafetensorsError
from catalog.files.header import _fast_parts, parse_header_bytes, read_header
from catalog.files.header_cache import HeaderCache
from catalog.files.header_check import check_layout, walk_entries
from lutnav.sample_loras import lora_modules, lora_tensors
from catalog.files.safetensors_writer import write_safetensors
from tests.test_header import (
    byte_flips,
    larger_file,
    length_field,
    library_view,
    numpy_file,
    rewrites,
    split,
    truncations,
    writer_file,
)

typed = pytest.importorskip("catalog.files.header_typed")


def generic(raw: bytes, data_size: int, path):
    """What the reader made of the bytes before the typed decoder existed."""
    import orjson

    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    parts = _fast_parts(doc, raw, data_size)
    if parts is None:
        try:
            parts = walk_entries(raw, path)
            check_layout(parts[0], data_size, path)
        except SafetensorsError:
            return None
    return parts


def lora_file(tmp_path) -> bytes:
    """An SD1.5 kohya LoRA with sd-scripts-like metadata, names with dashes added."""
    modules = lora_modules("sd1", parts=("unet",))[:40]
    spec = {k: (dt, shape, None) for k, (dt, shape) in lora_tensors(modules, 8, 4.0, "BF16").items()}
    spec["lora-extra.alpha"] = ("F32", [], None)
    path = tmp_path / "lora-source.safetensors"
    write_safetensors(path, spec, {"ss_output_name": "x", "ss_tag_frequency": '{"1_x": {"a, b": 2}}',
                                   "note": 'quote " and },"'})
    return path.read_bytes()


def test_typed_decoder_agrees_with_the_library_and_the_generic_reader(tmp_path):
    rng = random.Random(1505)
    target = tmp_path / "mutant.safetensors"
    sources = {"numpy": numpy_file(), "writer": writer_file(tmp_path), "larger": larger_file(tmp_path),
               "lora": lora_file(tmp_path)}
    accepted = checked = 0
    for source, content in sources.items():
        for label, mutated in [("unmutated", content), *truncations(content, rng, every=False),
                               *byte_flips(content, rng, 400), *length_field(content), *rewrites(content)]:
            target.write_bytes(mutated)
            checked += 1
            try:
                header = read_header(target)
            except SafetensorsError:
                header = None
            view = library_view(target)
            assert (header is None) == (view is None), f"{source}: {label}: verdict differs from safe_open"
            if len(mutated) < 8:
                continue
            raw, data = split(mutated)
            if len(raw) != int.from_bytes(mutated[:8], "little"):
                continue
            found = typed.typed_parts(raw, len(data))
            if found is None:
                continue
            accepted += 1
            assert view is not None, f"{source}: {label}: typed decoder took a file safetensors refuses"
            expected = generic(raw, len(data), target)
            assert expected is not None, f"{source}: {label}"
            assert list(found[0].items()) == list(expected[0].items()), f"{source}: {label}"
            assert list(found[1].items()) == list(expected[1].items()), f"{source}: {label}"
    assert checked > 1500 and accepted > 40


@pytest.mark.parametrize("edit", [
    lambda t: t.replace(b'"dtype":', b'"dtype":"F32","dtype":', 1),  # a field named twice
    lambda t: t.replace(b'"shape":[', b'"shape":[-0,', 1),  # -0 is a float to the reference
    lambda t: t.replace(b'"shape":[8,', b'"shape":[8.0,', 1),
    lambda t: t.replace(b'.weight"', b'.w\\u0065ight"', 1),  # legal, but the generic reader decides
])
def test_spellings_the_typed_decoder_leaves_to_the_generic_reader(tmp_path, edit):
    raw, data = split(lora_file(tmp_path))
    assert typed.typed_parts(raw, len(data)) is not None
    assert typed.typed_parts(edit(raw), len(data)) is None


def test_a_repeated_name_is_left_to_the_generic_reader(tmp_path):
    raw, data = split(lora_file(tmp_path))
    text = raw.rstrip()
    first = text.index(b',"') + 1
    entry = text[first:text.index(b"}", first) + 1]
    assert typed.typed_parts(text[:-1] + b"," + entry + b"}", len(data)) is None


def test_cached_and_typed_reads_give_the_same_headers(tmp_path):
    cache = HeaderCache()
    for i in range(4):
        path = tmp_path / f"{i}.safetensors"
        raw = lora_file(tmp_path)
        path.write_bytes(raw)
        cached, plain = read_header(path, cache), read_header(path)
        assert list(cached.tensors.items()) == list(plain.tensors.items())
        assert cached.metadata == plain.metadata
        assert parse_header_bytes(split(raw)[0], len(split(raw)[1]), path)[1] == plain.metadata
    assert cache.hits == 2  # the table is kept from its second sighting

"""File names are whatever a file was called: ``new\\nline``, an escape sequence, a bidi
override.  Every verb prints them as escapes, so no line is split, recoloured or reversed,
and an error stays one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from catalog.index.library import Library
from lutnav.cli import cli
from lutnav.output import shown
from tests.mixlib import SD1_PICK, pick, write_lora

NAMES = {"newline": "new\nline", "escape": "\x1b[31mred", "bidi": "ab\u202ecd", "return": "c\rr"}
RAW = ("\x1b", "\r", "\u202e")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("names") / "loras"
    for i, name in enumerate(NAMES.values()):
        write_lora(root / f"style/t/{name}.safetensors", pick("sd1", SD1_PICK), seed=i)
        write_lora(root / f"style/t/{name}.v2.safetensors", pick("sd1", SD1_PICK), seed=i)  # same tensors: dupes
    Library(root).scan_all()
    return root


def lines(result) -> list[str]:
    assert "Traceback" not in result.output
    for raw in RAW:
        assert raw not in result.output, repr(result.output)
    return result.output.splitlines()


def test_shown_escapes_what_a_terminal_would_act_on_and_keeps_the_rest():
    assert shown("new\nline") == "new\\nline" and shown("ab\u202ecd") == "ab\\u202ecd"
    assert shown("\x1b[31mred") == "\\x1b[31mred" and shown("墨水 ink") == "墨水 ink"


@pytest.mark.parametrize("key", NAMES)
def test_listing_verbs_print_each_entry_on_one_line(library, key):
    rel = f"style/t/{NAMES[key]}.safetensors"
    for args in (["ls"], ["search", "style"], ["dupes"], ["show", rel], ["hash", rel]):
        out = lines(CliRunner().invoke(cli, ["--library", str(library), *args]))
        assert any(shown(rel) in line for line in out), (args, out)


@pytest.mark.parametrize("key", NAMES)
def test_writers_report_the_name_on_one_line(library, tmp_path, key):
    rel = f"style/t/{NAMES[key]}.safetensors"
    card = CliRunner().invoke(cli, ["--library", str(library), "card", rel, "--set", "strength=0.5"])
    assert card.exit_code == 0 and lines(card)[-1] == f"wrote {shown(rel[:-len('.safetensors')])}.toml: strength"
    export = CliRunner().invoke(cli, ["--library", str(library), "export", rel, "--zip", str(tmp_path / "x.zip")])
    assert export.exit_code == 0 and len(lines(export)) == 1
    convert = CliRunner().invoke(cli, ["--library", str(library), "convert", rel, "--to", "diffusers",
                                       "--out", str(tmp_path / "c.safetensors")])
    assert convert.exit_code == 0, convert.output
    lines(convert)


@pytest.mark.parametrize("key", NAMES)
def test_an_error_naming_the_file_is_one_line(library, key):
    folder = library / "style" / "t"
    result = CliRunner().invoke(cli, ["--library", str(library), "pull", str(folder / f"{NAMES[key]}.safetensors")])
    assert result.exit_code == 1
    out = lines(result)
    assert len(out) == 1 and out[0].startswith("Error: ") and shown(NAMES[key]) in out[0]

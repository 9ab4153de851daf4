"""TOML nested thousands deep (``a = [[[[…``) in any file lutnav parses — a card, the library
config, a mix recipe, a training config — or in a ``--set`` value: the parsers recurse once
per level, so this was a ``RecursionError`` that ended a whole scan.  Now it is bad TOML like
any other: one line, and the scan goes on with the other files."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from catalog.index.library import Library
from lutnav.cli import cli
from tests.mixlib import SD1_PICK, pick, write_lora

DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "loras"
    write_lora(root / "style/ink/ink.safetensors", pick("sd1", SD1_PICK), seed=1)
    write_lora(root / "style/ink/wash.safetensors", pick("sd1", SD1_PICK), seed=2)
    (root / "style/ink/wash.toml").write_text('strength = 0.4\n')
    return root


def one_line(result) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output[-400:]
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_deeply_nested_card_is_a_warning_and_the_scan_goes_on(library):
    (library / "style/ink/ink.toml").write_text(f"notes = {DEEP}\n")
    summary = Library(library).scan_all()
    assert summary.total == 2
    wash = Library(library).get("wash")
    assert wash.strength == 0.4
    line = one_line(CliRunner().invoke(cli, ["--library", str(library), "card", "ink", "--set", "strength=0.5"]))
    assert "ink.toml: not valid TOML: values are nested too deeply" in line


def test_a_deeply_nested_set_value_is_one_line(library):
    Library(library).scan_all()
    line = one_line(CliRunner().invoke(cli, ["--library", str(library), "card", "ink", "--set",
                                             "training=" + "{a=" * 5000 + "1" + "}" * 5000]))
    assert line.startswith("Error: `training` =")


def test_a_deeply_nested_library_config_is_one_line(library):
    (library / ".lutnav").mkdir()
    (library / ".lutnav/config.toml").write_text(f"x = {DEEP}\n")
    line = one_line(CliRunner().invoke(cli, ["--library", str(library), "mix", "ink:0.5", "wash:0.4"]))
    assert "config is not valid TOML (values are nested too deeply)" in line


def test_a_deeply_nested_recipe_or_training_config_is_one_line(library, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text(f"task_type = {DEEP}\n")
    line = one_line(CliRunner().invoke(cli, ["--library", str(library), "mix", "--recipe", str(deep)]))
    assert "not valid TOML: values are nested too deeply" in line
    result = CliRunner().invoke(cli, ["--library", str(library), "train", str(deep), "--check"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "values are nested too deeply" in result.output

"""Commands come from an explicit list of modules; a missing one is an error, not a gap."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from lutnav import cli as cli_module


@pytest.mark.parametrize("name", cli_module.COMMAND_MODULES)
def test_every_listed_module_registers_its_commands(name):
    module = importlib.import_module(name)
    assert module.COMMANDS, f"{name} lists no commands"
    for command in module.COMMANDS:
        assert cli_module.cli.commands.get(command.name) is command, f"{name}: {command.name}"


def test_every_command_module_is_listed():
    folder = Path(cli_module.__file__).parent
    found = {f"lutnav.{p.stem}" for p in folder.glob("*_cli.py")}
    assert found == set(cli_module.COMMAND_MODULES)


def test_a_missing_command_module_fails_loudly():
    with pytest.raises(ModuleNotFoundError, match="lutnav.no_such_cli"):
        cli_module.register_commands(["lutnav.no_such_cli"])


def test_the_default_command_is_registered():
    assert "tui" in cli_module.cli.commands


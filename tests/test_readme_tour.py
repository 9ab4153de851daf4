"""The README is a contract: every command of its tour runs, as written, on a fresh demo.

The lines are read from README.md itself, in order, from the "A short tour"
heading to "The library on disk"; only lines marked ``# network`` are skipped.
Each runs in-process (one torch import for all of them) from a folder that holds
``loras/``, with ``~`` as a temporary home where a WebUI and a ComfyUI are
installed, as the README assumes.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from lutnav.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_lines() -> list[str]:
    text = README.read_text("utf-8")
    tour = text[text.index("## A short tour"):text.index("### The library on disk")]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", tour, flags=re.S):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip().startswith("lutnav")]
    return lines


def test_the_tour_shows_every_verb_and_skips_little():
    lines = tour_lines()
    words = {w for ln in lines for w in shlex.split(ln, comments=True)}
    assert {"ls", "search", "show", "card", "hash", "dupes", "prompt", "mix", "convert", "check", "preview",
            "grid", "pull", "export", "outdated", "link", "chat"} <= words
    assert ["lutnav"] in [shlex.split(ln, comments=True) for ln in lines]  # the TUI
    assert sum("# network" in ln for ln in lines) <= 4


def _argv(line: str, home: Path) -> list[str]:
    words = shlex.split(line, comments=True)
    assert words[0] == "lutnav", line
    return [str(home) + w[1:] if w.startswith("~") else w for w in words[1:]]


def _headless_tui(lib) -> None:
    """The TUI as `lutnav` opens it, driven without a terminal: it shows the library, q quits."""
    from lutnav.tui.app import create_app

    async def main() -> None:
        app = create_app(lib)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause(0.1)
            table = app.query_one("EntryTable")
            assert table.total == len(lib.entries())
            assert "ink_wash_v2" in [table.pager.row(i).name for i in range(table.total)]
            await pilot.press("q")

    asyncio.run(main())


@pytest.mark.slow
def test_every_tour_line_runs_on_a_fresh_demo(tmp_path, monkeypatch):
    home = tmp_path
    (home / "stable-diffusion-webui" / "models" / "Lora").mkdir(parents=True)
    (home / "stable-diffusion-webui" / "webui.py").write_text("")
    (home / "ComfyUI" / "models").mkdir(parents=True)
    (home / "ComfyUI" / "main.py").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    monkeypatch.setattr("lutnav.tui.app.run_app", _headless_tui)
    runner = CliRunner()

    demo = runner.invoke(cli, ["demo"])
    assert demo.exit_code == 0, demo.output
    assert "noise" in demo.output

    ran = []
    for line in tour_lines():
        if "# network" in line:
            continue
        result = runner.invoke(cli, _argv(line, home))
        detail = f"\n$ {line}\n{result.output}"
        if result.exc_info and not isinstance(result.exception, SystemExit):
            import traceback

            detail += "".join(traceback.format_exception(*result.exc_info))
        assert result.exit_code == 0, detail
        assert "Traceback" not in result.output, detail
        ran.append((line, result.output))

    out = dict(ran)
    assert "<lora:ink_wash_v2:0.7> <lora:zzcat:0.8>" in out[next(ln for ln in out if " prompt " in ln)]
    assert "ink_wash_v2" in out[next(ln for ln in out if "search 风景" in ln)]  # via 自然风景
    pulled_again = out[next(ln for ln in out if ln.startswith("lutnav pull ink.zip"))]
    assert "already there: style/ink_wash/ink_wash_v2.safetensors" in pulled_again
    assert (home / "loras/industry/blends/med_legal/adapter_config.json").is_file()
    assert (home / "shared/style/ink_wash/ink_wash_v2.safetensors").is_file()
    assert (home / "stable-diffusion-webui/models/Lora/lutnav").is_symlink()
    assert len(ran) >= 30

"""The TUI as a real process: no heavy imports, and the real `lutnav` in a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_tui_support import demo_lib, demo_template  # noqa: F401  (fixtures)

HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate")

DRIVE_APP = """
import asyncio, json, sys
from catalog.index.library import Library
import lutnav.cli  # the path `lutnav` takes: every command module registered
from lutnav.tui.app import create_app

async def main():
    app = create_app(Library(sys.argv[1]))
    notes = []
    shown = app.notify
    app.notify = lambda message, **kw: (notes.append(str(message)), shown(message, **kw))
    async with app.run_test(size=(100, 30)) as pilot:
        for keys in (["down", "down", "space"], ["slash", "i", "n", "k"], ["escape", "e"],
                     ["escape", "question_mark"], ["escape", "p"], ["c"]):
            await pilot.press(*keys)
            await app.workers.wait_for_complete()
            await pilot.pause(0.1)
    print(json.dumps({"heavy": [m for m in %r if m in sys.modules], "notes": notes}))

asyncio.run(main())
"""


@pytest.mark.slow  # a fresh interpreter plus a headless app: a few seconds
def test_the_tui_never_imports_torch(demo_lib):
    """Browse, search, basket, card form, help and a preview request: no heavy module loaded."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", DRIVE_APP % (HEAVY,), str(demo_lib.root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    # with no [models] configured the preview says what to set, before any heavy import
    assert any("preview failed" in n and "[models]" in n for n in report["notes"]), report["notes"]


def _lutnav_command() -> list[str]:
    script = Path(sys.executable).parent / "lutnav"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from lutnav.cli import main; main()"]


class Tmux:
    """One private tmux server (its own socket), so the test touches no one else's sessions."""

    def __init__(self, socket: Path):
        self.base = ["tmux", "-S", str(socket)]

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "lutnav")

    def wait_for(self, predicate, what: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{self.screen()}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None,
                    reason="tmux is not installed (apt-get install tmux); CI installs it")
def test_real_lutnav_in_tmux_searches_as_you_type(demo_lib, tmp_path):
    tmux = Tmux(tmp_path / "tmux.sock")
    env = {"LUTNAV_LIBRARY": str(demo_lib.root), "NO_COLOR": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = " ".join(f"{k}={shlex_quote(v)}" for k, v in env.items())
    command = f"env {command} " + " ".join(shlex_quote(a) for a in _lutnav_command())
    tmux("new-session", "-d", "-s", "lutnav", "-x", "100", "-y", "30", command)
    try:
        first = tmux.wait_for(lambda s: "zzcat" in s and "ink_wash_v2" in s and "quit" in s,
                              "the table and the footer")
        footer = [line for line in first.splitlines() if line.strip()][-1]
        assert "cute_anime_girl" in first and "search" in footer and "quit" in footer
        for attempt in range(3):  # a busy CI machine may drop keys sent while the app settles
            tmux("send-keys", "-t", "lutnav", "/")
            tmux("send-keys", "-t", "lutnav", "-l", "zz_girl")
            try:
                tmux.wait_for(lambda s: "zz_girl" in s, "the typed search", seconds=10)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        found = tmux.wait_for(lambda s: "zz_girl" in s and "zzcat" not in s, "the search result")
        assert "cute_anime_girl" in found and "ink_wash_v2" not in found
        tmux("send-keys", "-t", "lutnav", "Escape")
        time.sleep(1.0)  # a lone ESC followed at once by q would read as alt+q
        tmux("send-keys", "-t", "lutnav", "q")
        deadline = time.monotonic() + 20
        while "lutnav" in tmux("list-sessions") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "lutnav" not in tmux("list-sessions"), "q did not quit"
    finally:
        tmux("kill-server")


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)

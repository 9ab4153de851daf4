"""Libraries and folders this user cannot write: browsing works, writers say so in one line.

Run as root (where permission bits do not bind) the commands run as ``nobody``
through ``setpriv``; otherwise the folders are made read-only with chmod.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from catalog.index.library import Library
from lutnav.demo import write_demo

ROOT = os.geteuid() == 0
NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv as root")


@pytest.fixture
def area():
    """A folder every user can traverse (pytest's own temp root is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="lutnav-ro-"))
    path.chmod(0o755)
    yield path
    for folder, dirs, files in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path)


def give_away(path: Path) -> None:
    """Let the command's user write ``path`` and everything under it."""
    if ROOT:
        for folder, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(folder, name), NOBODY, NOBODY)
        os.chown(path, NOBODY, NOBODY)


def lock_down(path: Path) -> None:
    """Make ``path`` (and what is under it) read-only for the command's user."""
    items = [path] if path.is_file() else [Path(f) for f, _, _ in os.walk(path)] + \
        [Path(f, n) for f, _, names in os.walk(path) for n in names]
    for item in items:
        if ROOT:
            os.lchown(item, 0, 0)
        mode = item.stat().st_mode
        item.chmod(stat.S_IMODE(mode) & ~0o222)


def lutnav(*args: str) -> subprocess.CompletedProcess:
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if ROOT else []
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": "/tmp", "HF_HOME": "/tmp/lutnav-ro-hf"}
    return subprocess.run([*prefix, sys.executable, "-c", "from lutnav.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd="/")


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1]


@pytest.fixture
def library(area):
    root = area / "loras"
    write_demo(root)
    Library(root).scan_all()
    give_away(area)
    return root


def test_a_read_only_library_is_browsable_and_says_edits_are_off(library):
    lock_down(library)
    done = lutnav("--library", str(library), "ls", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(Library(library).entries())
    assert "edits are off" in done.stderr
    show = lutnav("--library", str(library), "show", "ink_wash_v2", "--json")
    assert show.returncode == 0 and json.loads(show.stdout)["name"] == "ink_wash_v2"
    search = lutnav("--library", str(library), "search", "ink", "--json")
    assert search.returncode == 0 and json.loads(search.stdout)
    hashed = lutnav("--library", str(library), "hash", "ink_wash_v2", "--json")
    assert hashed.returncode == 0 and len(json.loads(hashed.stdout)[0]["sha256"]) == 64


def test_only_the_index_file_read_only_is_browsable_too(library):
    lock_down(library / ".lutnav" / "catalog.db")
    done = lutnav("--library", str(library), "ls", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) and "edits are off" in done.stderr


@pytest.mark.parametrize("args", [["scan"], ["card", "ink_wash_v2", "--set", "strength=0.5"]])
def test_writers_on_a_read_only_library_give_one_line(library, args):
    lock_down(library)
    card = library / "style" / "ink_wash" / "ink_wash_v2.toml"
    before = card.read_bytes() if card.exists() else None
    line = one_line_error(lutnav("--library", str(library), *args))
    assert str(library) in line
    assert (card.read_bytes() if card.exists() else None) == before


def test_card_with_a_read_only_index_folder_gives_one_line(library):
    lock_down(library / ".lutnav")
    card = library / "style" / "ink_wash" / "ink_wash_v2.toml"
    line = one_line_error(lutnav("--library", str(library), "card", "ink_wash_v2", "--set", "strength=0.5"))
    assert ".lutnav" in line and not card.exists()


@pytest.mark.parametrize("verb", ["mix", "convert"])
def test_writing_into_a_read_only_folder_gives_one_line(library, area, verb):
    out_dir = area / "shared"
    out_dir.mkdir()
    lock_down(out_dir)
    out = out_dir / "out.safetensors"
    args = (["mix", "ink_wash_v2:0.5", "--out", str(out)] if verb == "mix"
            else ["convert", "ink_wash_v2", "--to", "diffusers", "--out", str(out)])
    line = one_line_error(lutnav("--library", str(library), *args))
    assert str(out_dir) in line
    assert not list(out_dir.iterdir())


@pytest.mark.parametrize("verb", ["mix", "convert"])
def test_writing_into_a_library_with_a_read_only_index_gives_one_line(library, verb):
    lock_down(library / ".lutnav")
    out = library / "style" / "ink_wash" / "made.safetensors"
    args = (["mix", "ink_wash_v2:0.5", "--out", str(out)] if verb == "mix"
            else ["convert", "ink_wash_v2", "--to", "diffusers", "--out", str(out)])
    line = one_line_error(lutnav("--library", str(library), *args))
    assert ".lutnav" in line and "nothing written" in line
    assert not out.exists() and not out.with_suffix(".toml").exists()


def test_pull_into_a_library_with_a_read_only_index_gives_one_line(library, area):
    lock_down(library / ".lutnav")
    source = library / "style" / "ink_wash" / "ink_wash_v2.safetensors"
    before = sorted(p.name for p in library.rglob("*"))
    line = one_line_error(lutnav("--library", str(library), "pull", str(source), "--category", "style",
                                 "--name", "copy"))
    assert ".lutnav" in line and "nothing added" in line
    assert sorted(p.name for p in library.rglob("*")) == before


def test_demo_into_a_read_only_folder_says_what_to_do(area):
    out_dir = area / "shared"
    out_dir.mkdir()
    lock_down(out_dir)
    line = one_line_error(lutnav("demo", "--into", str(out_dir / "demo")))
    assert f"{out_dir / 'demo'}: Permission denied — you cannot write there" in line
    assert not list(out_dir.iterdir())

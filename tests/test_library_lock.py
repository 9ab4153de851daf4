"""Waiting for the library lock says so at once; readers never wait for it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from catalog.errors import IndexBusy
from catalog.index.library import Library
from tests.lorafiles import write_kohya

REPO = Path(__file__).resolve().parents[1]


def _lib(tmp_path: Path) -> Path:
    root = tmp_path / "loras"
    write_kohya(root / "style" / "ink" / "ink_wash.safetensors")
    return root


def _start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", "from lutnav.cli import main; main()",
                             "--library", str(root), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _first_stderr_line(proc: subprocess.Popen) -> str:
    ready, _, _ = select.select([proc.stderr], [], [], 120)  # a bound, not a speed claim
    if not ready:
        proc.kill()
    assert ready, "nothing said while waiting"
    return proc.stderr.readline().strip()


@contextmanager
def _scan_waiting(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen, str]]:
    """A scanned library whose lock this process holds, and a ``lutnav scan`` waiting on it
    (with the first line it said); the lock is released on leaving."""
    root = _lib(tmp_path)
    holder = Library(root)
    holder.scan_all()
    with holder.lock():
        proc = _start(root, "scan")
        yield root, proc, _first_stderr_line(proc)


def test_readers_do_not_wait_for_a_running_scan(tmp_path):
    root = _lib(tmp_path)
    holder = Library(root)
    holder.scan_all()
    with holder.lock():
        for args in (["ls", "--json"], ["search", "ink", "--json"], ["show", "ink_wash", "--json"]):
            proc = _start(root, *args)
            try:
                out, err = proc.communicate(timeout=120)
            finally:
                proc.kill()
            assert proc.returncode == 0, err
            assert "ink_wash" in out and json.loads(out)


def test_a_writer_says_who_it_waits_for_then_goes_on(tmp_path):
    with _scan_waiting(tmp_path) as (_, proc, line):
        assert line == f"another lutnav (pid {os.getpid()}) is scanning — waiting; Ctrl-C to stop"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "1 entries" in out


def test_ctrl_c_while_waiting_ends_with_one_line(tmp_path):
    with _scan_waiting(tmp_path) as (_, proc, line):
        assert "waiting" in line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip() == "interrupted"


def test_a_first_listing_while_another_process_builds_the_index_is_busy_not_a_hang(tmp_path):
    root = _lib(tmp_path)
    holder = Library(root)
    with holder.lock():
        proc = _start(root, "ls")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith(f"Error: {root}: another lutnav (pid {os.getpid()})")


def test_lock_without_waiting_raises_index_busy(tmp_path):
    root = _lib(tmp_path)
    with Library(root).lock():
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}"):
            with Library(root).lock(wait=False):
                pass


def test_a_lock_file_planted_as_a_link_is_never_written_through(tmp_path):
    root = _lib(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (root / ".lutnav").mkdir()
    (root / ".lutnav" / "lock").symlink_to(victim)
    proc = _start(root, "scan")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "lock" in err.strip().splitlines()[-1]
    assert victim.read_text() == "keep me\n"


def test_the_holder_pid_is_written_cleanly_after_a_wait(tmp_path):
    with _scan_waiting(tmp_path) as (root, proc, line):
        assert "waiting" in line
    proc.communicate(timeout=120)
    assert (root / ".lutnav" / "lock").read_text() == str(proc.pid)

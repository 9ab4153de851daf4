"""Scan workers die with the scan: nothing is left running after kill -9 or SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lorafiles import write_kohya

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: scans until the workers have delivered a first chunk, then stops there (workers still up)
STALLED_SCAN = """
import sys, threading
from catalog.index.library import Library
if __name__ == "__main__":
    for p in Library(sys.argv[1]).scan():
        if p.phase == "read":
            print("reading", flush=True)
            threading.Event().wait()
"""


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        kids = {p for p, pp in parents.items() if pp == current}
        todo += list(kids - found)
        found |= kids
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_parallel_scan_leaves_no_worker_behind(tmp_path, sig):
    root = tmp_path / "loras"
    one = write_kohya(tmp_path / "one.safetensors")
    for i in range(450):  # over the pool threshold: the scan reads in worker processes
        folder = root / "style" / f"t{i % 9}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(one, folder / f"l{i}.safetensors")
    script = tmp_path / "stalled.py"
    script.write_text(STALLED_SCAN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "reading"
        workers = _descendants(proc.pid)
        assert len(workers) >= 2  # the fork server and at least one worker
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 60  # a bound on waiting, not a speed claim
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _running(p)]

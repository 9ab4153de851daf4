"""One lutnav command in a process of its own, timed, with that process's peak RSS.

``timed_lutnav(argv)`` runs this file as a child that calls the CLI in-process and
reports ``{"seconds", "peak_mb", "cpu"}`` on its last stderr line, so the peak is
the command's own and not the benchmark's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(argv: list[str]) -> None:
    """Run one lutnav command in this process and report its peak RSS."""
    from lutnav.cli import cli

    start = time.perf_counter()
    try:
        cli.main(argv, prog_name="lutnav", standalone_mode=False)
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": usage.ru_maxrss / 1024,
                          "cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)


def timed_lutnav(argv: list[str]) -> tuple[float, dict, str]:
    """(wall seconds including start-up, the child's report, its stderr)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, json.dumps(argv)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"lutnav {' '.join(argv)} failed:\n{proc.stderr}")
    return wall, json.loads(proc.stderr.strip().splitlines()[-1]), proc.stderr


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(json.loads(sys.argv[1]))

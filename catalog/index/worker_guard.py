"""Scan workers die with the process that started them.

A worker blocks on its task queue, whose pipe it holds both ends of, so it
never sees its parent go: after a ``kill -9`` or SIGTERM of a scan, the
workers (~150 MB) and the fork server lived on.  Each worker, as its pool
initializer, therefore

- watches the scanning process from a daemon thread and exits with it: a
  pidfd where the kernel has them (woken the instant the process exits), else a
  once-a-second liveness check; once the workers are gone the fork server and
  the resource tracker find their pipes closed and exit too;
- asks Linux to SIGKILL it when its own parent (the fork server) dies, a belt
  for the case where that goes first (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def die_with(owner_pid: int) -> None:
    """Pool initializer: end this worker process when ``owner_pid`` ends."""
    _death_signal_from_parent()
    if not _alive(owner_pid):
        os._exit(1)
    threading.Thread(target=_watch, args=(owner_pid,), name="lutnav-owner-watch", daemon=True).start()


def _death_signal_from_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only in workers: scan start-up stays lean
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watcher thread still covers it


def _watch(owner_pid: int) -> None:
    try:
        fd = os.pidfd_open(owner_pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable once the process has exited
    else:
        while _alive(owner_pid):
            threading.Event().wait(POLL_SECONDS)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

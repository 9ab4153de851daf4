"""Scanning: bring the index in line with the tree, reading only what changed.

``scan`` is a generator that yields :class:`~catalog.progress.Progress` (phase
"walk", then "read") and returns a ``ScanSummary``: the CLI turns the yields into a progress bar, the TUI into a
progress widget, a test into a list. Headers are read in worker processes when
there are many; rows are written in one transaction per batch.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
import multiprocessing

from catalog.index.analyze import cpu_workers
from catalog.errors import CatalogError
from catalog.index.library_folder import LibraryFolder
from catalog.index.rows import forget, index_rows, reread_cards
from catalog.index.walk import Candidate, WalkReport, walk
from catalog.index.worker_guard import die_with
from catalog.progress import Progress

#: below this many changed files, reading inline beats starting workers
POOL_THRESHOLD = 400
CHUNK = 64
BATCH = 500


@dataclass
class ScanSummary:
    total: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    broken: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False


def run_scan(lib: LibraryFolder, **kwargs) -> ScanSummary:
    """Run ``scan`` to the end, ignoring progress."""
    gen = scan(lib, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def scan(lib: LibraryFolder, *, cancel: Callable[[], bool] | None = None,
         full: bool = False, wait: bool = True) -> Generator[Progress, None, ScanSummary]:
    """Index the library. ``full`` re-reads every file even when unchanged; ``wait=False``
    raises ``IndexBusy`` instead of waiting for another scan to finish."""
    if _rerun_by_a_worker():
        raise CatalogError("a scan started while a scan worker was starting up",
                           hint="put the calling script's code under `if __name__ == '__main__':`")
    started = time.perf_counter()
    summary = ScanSummary()
    cancel = cancel or (lambda: False)
    with lib.lock(wait=wait):
        db = lib.db
        known = {
            r[0]: (r[1], r[2], r[3], r[4])
            for r in db.execute("select path, size, mtime_ns, inode, sidecar_sig from entries")
        }
        report = WalkReport()
        stale: list[Candidate] = []
        sidecar_only: list[Candidate] = []
        seen: set[str] = set()
        for cand in walk(lib.root, report):
            seen.add(cand.rel)
            old = known.get(cand.rel)
            if full or old is None or old[:3] != cand.stamp[:3]:
                stale.append(cand)
            elif old[3] != cand.sidecar_sig:
                sidecar_only.append(cand)
            if len(seen) % 2000 == 0:
                yield Progress(len(seen), None, cand.rel, "walk")
        summary.total = len(seen)
        summary.skipped = report.skipped
        removed = [p for p in known if p not in seen]
        summary.unchanged = summary.total - len(stale) - len(sidecar_only)

        todo = len(stale) + len(sidecar_only)
        done = 0
        rows: list[dict] = []
        fresh: list[dict] = []
        for cand, row in _indexed(stale):
            rows.append(row)
            if cand.rel in known:
                summary.updated += 1
            else:
                summary.added += 1
                fresh.append({k: row[k] for k in ("path", "size", "header_digest", "mtime_ns")})
            summary.broken += bool(row["error"])
            done += 1
            if len(rows) >= BATCH:
                _write(lib, rows, [])
                rows = []
            if done % 50 == 0 or done == todo:
                yield Progress(done, todo, cand.rel, "read")
            if cancel():
                summary.cancelled = True
                break
        if not summary.cancelled:
            for cand in sidecar_only:
                row = reread_cards(lib, cand)
                if row is not None:
                    rows.append(row)
                    summary.updated += 1
                done += 1
                if done % 50 == 0 or done == todo:
                    yield Progress(done, todo, cand.rel, "read")
        forget()
        _carry_hashes(lib, removed, fresh)
        _write(lib, rows, [] if summary.cancelled else removed)
        summary.removed = 0 if summary.cancelled else len(removed)
    summary.seconds = time.perf_counter() - started
    return summary


def _rerun_by_a_worker() -> bool:
    """Whether this is a worker process re-running the parent's main script.

    Worker processes import the parent's ``__main__`` as ``__mp_main__``; a script
    without a main guard would scan again there and wait forever on the
    parent's lock. Failing fast lets the parent fall back to scanning inline.
    """
    mp_main = sys.modules.get("__mp_main__")
    return mp_main is not None and mp_main is not sys.modules.get("__main__")


def _indexed(stale: list[Candidate]) -> Iterator[tuple[Candidate, dict]]:
    """Finished rows for each stale entry, from worker processes when there are many."""
    if len(stale) < POOL_THRESHOLD or cpu_workers() == 1:
        for cand in stale:
            yield cand, index_rows([cand])[0]
        return
    chunks = [stale[i:i + CHUNK] for i in range(0, len(stale), CHUNK)]
    finished = 0
    try:
        with ProcessPoolExecutor(cpu_workers(), mp_context=_worker_context(), initializer=_start_worker,
                                 initargs=(os.getpid(),)) as pool:
            for chunk, results in zip(chunks, pool.map(index_rows, chunks)):
                finished += 1
                yield from zip(chunk, results)
    except BrokenProcessPool:
        # workers could not start (e.g. a calling script without a __main__ guard):
        # slower, but the scan still completes
        for chunk in chunks[finished:]:
            yield from zip(chunk, index_rows(chunk))


def _start_worker(owner_pid: int) -> None:
    """A scan worker: dies with its owner, and runs without the cyclic garbage collector.

    Between chunks the collector walked every table the header cache keeps (and, in a
    forked worker, the whole inherited heap): a fifth of a worker's CPU time on a library
    where no two files share a table. Header data forms no cycles, reference counting
    frees it, and a worker lives only as long as one scan.
    """
    die_with(owner_pid)
    gc.disable()


def _worker_context():
    """How scan workers start: forked when this process runs one thread, else forkserver.

    A forked worker starts at once with every module already imported; a cold scan
    of 2,000 files lasts about a second, so the ~0.2 s each fresh interpreter spends
    importing the catalog would be a fifth of it. Forking a threaded process (the TUI
    scans from a thread) can deadlock the child, so there the forkserver starts
    workers, with the reading modules imported once in the server.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["catalog.index.rows", "catalog.detect.classify", "catalog.detect.clients"])
    return ctx


def _carry_hashes(lib: LibraryFolder, removed: list[str], rows: list[dict]) -> None:
    """A file moved or renamed keeps its cached hashes (same size + header)."""
    if not removed or not rows:
        return
    db = lib.db
    gone = {}
    for path in removed:
        for r in db.execute("select e.size, e.header_digest, h.path from entries e join hashes h "
                            "on h.path = e.path where e.path = ?", [path]):
            gone[(r[0], r[1])] = r[2]
    if not gone:
        return
    with db.atomic():
        for row in rows:
            old = gone.pop((row.get("size"), row.get("header_digest")), None)
            if old is not None:
                db.execute("update hashes set path = ?, mtime_ns = ? where path = ?",
                           [row["path"], row["mtime_ns"], old])


def _write(lib: LibraryFolder, rows: list[dict], removed: list[str]) -> None:
    """One transaction: replace the rows (delete + insert, so the FTS triggers see both).

    ``header_metadata`` is only read now (indexes of earlier versions stored it): the
    rows of rewritten and removed entries go, and ``show`` reads the file instead.
    """
    db = lib.db
    cols = _entry_columns(lib)
    insert = f"insert into entries ({', '.join(cols)}) values ({', '.join('?' * len(cols))})"
    with db.atomic():
        _delete(db, "entries", [r["path"] for r in rows] + removed)
        _delete(db, "header_metadata", [r["path"] for r in rows] + removed)
        _delete(db, "hashes", removed)
        db.conn.executemany(insert, ([row.get(c) for c in cols] for row in rows))


def _delete(db, table: str, paths: list[str]) -> None:
    for i in range(0, len(paths), 500):
        part = paths[i:i + 500]
        db.execute(f"delete from [{table}] where path in ({','.join('?' * len(part))})", part)


def _entry_columns(lib: LibraryFolder) -> list[str]:
    return [row[1] for row in lib.db.execute("pragma table_info(entries)")]

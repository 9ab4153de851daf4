"""CPU per file of the scan's unit of work (header, classification, cards, row), one process.

    python bench/scan_unit.py [--library bench/_work/varied-2000] [--files 600] [--profile]

The cold scan's wall time on 2 cores is about this figure times the files over the
workers, so it is the number to move; it is CPU time, steadier than wall time on a
shared machine. ``--profile`` adds a cProfile of one pass (by own time, then cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.index.rows import forget, index_rows  # noqa: E402
from catalog.index.walk import WalkReport, walk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=REPO / "bench" / "_work" / "varied-2000",
                        help="a library made by bench/scan.py (default: the varied 2,000)")
    parser.add_argument("--files", type=int, default=600, help="files in each pass")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one pass")
    args = parser.parse_args()
    cands = list(walk(args.library, WalkReport()))[:args.files]
    if not cands:
        sys.exit(f"no LoRA files under {args.library}: run bench/scan.py first")
    index_rows(cands[:50])
    forget()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        index_rows(cands)
        forget()
        best = min(best, time.process_time() - started)
    print(f"scan work unit: {best / len(cands) * 1e3:.3f} ms CPU per file (best of 3 passes over "
          f"{len(cands)} files of {args.library.name})")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        index_rows(cands)
        profile.disable()
        forget()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()

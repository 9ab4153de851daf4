"""Index size with very large header metadata, and what ``show`` pays to read it back.

    python bench/index_size.py [--mb 50] [--files 2] [--work bench/_work/index_size]

Writes FILES small LoRAs whose ``ss_tag_frequency`` is MB megabytes (as sd-scripts writes
for huge datasets), scans them, and prints the size of ``catalog.db`` (checkpointed),
the scan time, and the wall time of ``lutnav show --json`` on one of them (which reads
the full metadata back from the file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import timed_lutnav  # noqa: E402
from catalog.index.library import Library  # noqa: E402
from tests.lorafiles import write_kohya  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of each ss_tag_frequency, in MB")
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "index_size")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    root = args.work / "loras"
    chars = int(args.mb * 1e6)
    freq = json.dumps({"10_big": {f"tag_{i:09d}": i for i in range(chars // 27)}})
    for n in range(args.files):
        write_kohya(root / "style" / "big" / f"big{n}.safetensors", seed=n,
                    metadata={"ss_tag_frequency": freq, "ss_output_name": f"big{n}"})
    headers = sum(p.stat().st_size for p in root.rglob("*.safetensors"))
    start = time.perf_counter()
    Library(root).scan_all()
    scan_s = time.perf_counter() - start
    db_path = root / ".lutnav" / "catalog.db"
    with sqlite3.connect(db_path) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    wall, _, _ = timed_lutnav(["--library", str(root), "show", "big0", "--json"])
    print(f"{args.files} files, {headers / 1e6:.1f} MB of headers: "
          f"catalog.db {db_path.stat().st_size / 1e6:.2f} MB, scan {scan_s:.2f} s, show --json {wall:.2f} s")


if __name__ == "__main__":
    main()

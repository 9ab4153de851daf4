"""TUI speed at 100,000 entries (or a million): first paint, search keystrokes, scrolling, sorting, memory.

    python bench/tui.py [--entries 100000] [--keep DIR] [--paints 5]
    python bench/tui.py --library DIR [--paints 5]     # an index made elsewhere, e.g. by bench/scan.py

How the library is made: synthetic rows are inserted straight into the index's
``entries`` table of a temporary library, in one transaction (the FTS5 triggers
index them as they go), streamed so a million rows fit in memory.  No LoRA files
are written — this measures the TUI and its queries, not the scanner (``bench/``
has the scanner's own numbers).  ``--library`` drives the app on an existing
index instead: ``bench/scan.py --search-rows 1000000`` leaves one of a million
rows copied from scanned files in ``bench/_work/search-varied-<files>-1000000``.
The app is driven by Textual's Pilot in a headless terminal of 120×40, in one run.

First paint is the figure closest to its target at a million rows, and one start
varies with the machine's other work: ``--paints`` starts the app that many more
times (the same process: imports and the page cache are warm, as on a user's
second start) and prints every figure and their median.

"Table updated" means the table has switched to the new view's rows (count and
first page read) and asked to be redrawn; the redraw itself follows on the next
frame and is included in the first-paint figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from catalog.index.library import Library  # noqa: E402

WORDS = ("ink wash anime cute girl retro neon city cyber pixel oil paint watercolor sketch portrait "
         "castle forest robot mecha dragon knight witch sunset ocean studio film grain vintage "
         "fantasy noir cat hero facade glass product fashion food medical legal").split()
FOLDERS = {"style": ["anime", "ink_wash", "oil", "pixel", "film", "watercolor", "sketch"],
           "character": ["knight", "witch", "robot", "girl", "cats"],
           "industry": ["product", "fashion", "architecture", "food", "medical"]}
BASES = ["sd1", "sdxl", "flux", "sd2", "llm", "unknown"]
FORMATS = ["kohya", "diffusers", "peft", "lycoris"]


def build(root: Path, n: int, seed: int = 7) -> float:
    """Fill ``root``'s index with ``n`` synthetic entries; returns the seconds it took."""
    started = time.perf_counter()
    lib = Library(root)
    with lib.db.atomic():
        lib.db["entries"].insert_all(_rows(n, seed), batch_size=5000)
    lib.db.conn.execute("analyze")
    lib.db.close()
    return time.perf_counter() - started


def _rows(n: int, seed: int):
    """``n`` synthetic rows, made as they are inserted."""
    rng = random.Random(seed)
    for i in range(n):
        category = rng.choice(list(FOLDERS))
        theme = rng.choice(FOLDERS[category])
        words = rng.sample(WORDS, 4)
        name = f"{words[0]}_{words[1]}_{i:06d}"
        yield {
            "path": f"{category}/{theme}/{name}.safetensors", "kind": "file", "category": category,
            "theme": theme, "name": name, "size": rng.randint(10**6, 4 * 10**8),
            "mtime_ns": 0, "format": rng.choice(FORMATS), "network": "lora",
            "base_model": rng.choice(BASES), "rank": rng.choice([4, 8, 16, 32, 64]),
            "alpha": float(rng.choice([1, 4, 8, 16])), "dtype": "F16", "tensor_count": 264,
            "strength": round(rng.uniform(0.4, 1.0), 2),
            "strength_range": orjson.dumps([0.4, 1.0]).decode(),
            "trigger_words": orjson.dumps(words[:2]).decode(),
            "notes": " ".join(rng.sample(WORDS, 8)), "tags": orjson.dumps(words[2:]).decode(),
            "themes": orjson.dumps([theme]).decode(), "parts": '["unet", "te"]',
            "warnings": "[]", "previews": "[]", "sources": "{}",
        }


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def until(pilot, check, limit: float = 30.0) -> None:
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not reach the expected state")
        await asyncio.sleep(0.001)


def send_key(app, key: str) -> None:
    """A key as the terminal driver delivers it (Pilot.press also waits for the CPU to go idle)."""
    from textual import events

    char = " " if key == "space" else key if len(key) == 1 else None
    app._driver.send_message(events.Key("space" if key == " " else key, char))


def screen_text(app) -> str:
    return "\n".join(s.text for s in app.screen._compositor.render_strips())


async def rows_on_screen(pilot, app):
    """Wait until the table holds rows and the first of them is drawn; the table."""
    table = app.query_one("EntryTable")
    await until(pilot, lambda: table.total > 0)
    first_name = table.pager.row(0).name
    await until(pilot, lambda: first_name in screen_text(app))
    return table


async def first_paint(root: Path) -> float:
    """Seconds from starting the app to its first rows on screen (the app then quits)."""
    from lutnav.tui.app import create_app

    app = create_app(Library(root))
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await rows_on_screen(pilot, app)
        paint = time.perf_counter() - started
        await app.workers.wait_for_complete()
    return paint


async def drive(root: Path, query: str) -> dict:
    out: dict = {"rss_before_mib": rss_mib()}
    started = time.perf_counter()
    from lutnav.tui.app import create_app

    out["import_s"] = time.perf_counter() - started
    app = create_app(Library(root))
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        table = await rows_on_screen(pilot, app)
        out["first_paint_s"] = time.perf_counter() - started
        out["total"] = table.total
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)

        await pilot.press("slash")
        typed = ""
        out["keystrokes"] = []
        for ch in query:
            typed += ch
            t0 = time.perf_counter()
            send_key(app, ch)
            await until(pilot, lambda: app.view.query == typed and not app._loading
                        and table.pager.view.key() == app.view.key())
            shown = time.perf_counter() - t0
            first = table.pager.row(0)
            if first is not None:  # the frame with the new rows, drawn here as the terminal would get it
                await until(pilot, lambda: first.name[:12] in screen_text(app))
            out["keystrokes"].append((typed, shown, time.perf_counter() - t0, table.total))
            await pilot.pause(0.15)  # a typist's pace: the detail pane catches up between keys
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        app.query_one("#search").value = ""
        await until(pilot, lambda: table.pager.view.query == "" and not app._loading)
        table.focus()

        async def timed_key(key: str, done) -> float:
            t0 = time.perf_counter()
            send_key(app, key)
            await until(pilot, done)
            row = table.current
            await until(pilot, lambda: row.name[:12] in screen_text(app))
            return time.perf_counter() - t0

        out["jump_to_end_s"] = await timed_key("end", lambda: table.cursor == table.total - 1)
        await pilot.pause(0.2)
        out["sort_s"] = await timed_key("s", lambda: table.pager.view.order_by != "name")
        await pilot.pause(0.2)
        send_key(app, "home")
        await until(pilot, lambda: table.cursor == 0)
        await pilot.pause(0.2)
        steps = []
        for _ in range(20):
            at = table.cursor
            steps.append(await timed_key("pagedown", lambda: table.cursor > at))
            await pilot.pause(0.05)
        out["pagedown_s"] = steps
        out["cached_rows"] = table.pager.cached_rows
        out["rss_after_mib"] = rss_mib()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--query", default="ink wash")
    parser.add_argument("--keep", type=Path, help="build the library here and keep it (reused if present)")
    parser.add_argument("--library", type=Path, help="drive the app on this library's index as it is (nothing built)")
    parser.add_argument("--paints", type=int, default=0, help="more app starts, for a median first paint")
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:  # run as a child, so the rows built do not count in the app's memory
        print(f"{build(args.build_only, args.entries):.1f}")
        return
    os.environ.setdefault("NO_COLOR", "1")
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other work on the machine slows every figure below)")
    root = args.library or args.keep or Path(tempfile.mkdtemp(prefix="lutnav-bench-tui-"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        if args.library:
            print(f"driving the index of {root} as it is")
        elif (root / ".lutnav" / "catalog.db").exists():
            print(f"reusing the index in {root}")
        else:
            child = subprocess.run([sys.executable, __file__, "--entries", str(args.entries),
                                    "--build-only", str(root)], capture_output=True, text=True,
                                   check=True)
            secs = float(child.stdout.strip().splitlines()[-1])
            print(f"built {args.entries:,} synthetic index rows in {secs:.1f} s (direct insert, one transaction)")
        r = asyncio.run(drive(root, args.query))
        paints = [asyncio.run(first_paint(root)) for _ in range(args.paints)]
    finally:
        if args.keep is None and args.library is None:
            shutil.rmtree(root, ignore_errors=True)
    times = [t for _, t, _, _ in r["keystrokes"]]
    drawn = [t for _, _, t, _ in r["keystrokes"]]
    print(f"entries in the table:          {r['total']:,}")
    print(f"import lutnav.tui.app:         {r['import_s'] * 1000:7.0f} ms")
    print(f"first paint (start → rows):    {r['first_paint_s'] * 1000:7.0f} ms   (target ≤ 1000; ≤ 500 at 1M)")
    if paints:
        print(f"first paint, {len(paints)} more starts: median {statistics.median(paints) * 1000:.0f} ms "
              f"({', '.join(f'{p * 1000:.0f}' for p in paints)})")
    print("search keystroke → table updated (→ drawn):")
    for typed, t, d, n in r["keystrokes"]:
        print(f"  {typed!r:12} {t * 1000:6.1f} ms  ({d * 1000:6.1f} ms)  {n:>7,} rows")
    print(f"search keystrokes: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms   (target ≤ 100); drawn: median "
          f"{statistics.median(drawn) * 1000:.1f} ms, max {max(drawn) * 1000:.1f} ms")
    print(f"End → last row drawn:          {r['jump_to_end_s'] * 1000:7.1f} ms")
    print(f"s (sort by base) → drawn:      {r['sort_s'] * 1000:7.1f} ms")
    print(f"PgDn → drawn: median {statistics.median(r['pagedown_s']) * 1000:.1f} ms, "
          f"max {max(r['pagedown_s']) * 1000:.1f} ms (20 presses)")
    print(f"rows held by the table:        {r['cached_rows']:,}")
    print(f"memory (RSS): {r['rss_before_mib']:.0f} MiB before the app, "
          f"{r['rss_after_mib']:.0f} MiB after the run")


if __name__ == "__main__":
    main()

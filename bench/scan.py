"""Scan benchmark: how long a user waits for lutnav on a big library, against doing it naively.

    python bench/scan.py [--files 10000] [--kind both|shared|varied] [--search-rows 100000]
                         [--save-fields FILE | --check-fields FILE] [--verdicts]
    python bench/scan.py --mixed [--files 10000] [--save-fields FILE | --check-fields FILE] [--verdicts]
                                                   # SD-only vs 10 transformer families x 3 spellings

Two libraries (generated once, reused while their marker matches; the files are sparse:
real headers, the weights a hole). "shared": full SD1.5 and SDXL kohya module lists,
UNet-only or with text encoders, ranks 8-128, fp16/bf16 (20 distinct tensor tables per
family), sd-scripts ``ss_*`` metadata. "varied" (``varied_library.py``): no two files share
a tensor table (rank, module subsets, text encoder or not, dtype, key spelling, LyCORIS,
metadata size; ~175 KB headers), one file in 97 broken or oddly spelled. Both spread over
category/theme folders, some with sidecars and previews.

For each, in one run: reading the header bytes, an ``orjson.loads`` pass and a
``json.loads`` pass (one process, no index), the cold scan (index deleted first) with
its ratio to each pass, the warm rescan and ``lutnav ls`` to a pipe. ``--save-fields`` and
``--check-fields`` compare every indexed field of the varied library between code
versions; ``--verdicts`` compares each file's verdict with ``safetensors.safe_open``. Then
the index grown to ``--search-rows`` entries: its size, search median, ``--help`` and
``ls --json | head``.

The page cache is warmed first (every header read once), so lutnav and the naive
baselines all read from memory; figures are wall-clock seconds on whatever
machine runs this, so compare them only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lutnav.sample_loras import lora_modules, lora_tensors  # noqa: E402
from catalog.index import row_codec, stored_metadata  # noqa: E402
from catalog.index.library import Library  # noqa: E402
from catalog.files.safetensors_writer import write_safetensors  # noqa: E402

GENERATOR_VERSION = 2
VARIED_VERSION = 1
MARKER = ".bench.json"
THEMES = {
    "style": ["ink_wash", "watercolor", "anime", "pixel_art", "oil_paint", "lineart", "cyberpunk", "ukiyoe"],
    "character": ["cats", "heroes", "robots", "knights", "witches", "mascots"],
    "industry": ["medical", "legal", "architecture", "fashion", "product", "interior"],
}
WORDS = ("mountain river mist pine tree cat cape robot neon city portrait smile girl boy sky cloud "
         "flower garden castle forest ocean wave sunset night rain snow street car armor sword book "
         "lamp window glass stone gold silver red blue green soft sharp bokeh film grain").split()
SEARCHES = ["ink wash", "watercolor", "cat", "mountain mist", "robot", "zzq_nohit", "port", "character heroes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="LoRA files in the library (default 10000)")
    parser.add_argument("--kind", choices=("both", "shared", "varied"), default="both",
                        help="shared: 20 tensor tables per family; varied: no two files share one")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "_work", help="work folder (git-ignored)")
    parser.add_argument("--search-rows", type=int, default=100_000, help="rows in the search index (0: skip)")
    parser.add_argument("--save-fields", type=Path, metavar="FILE",
                        help="write every indexed field of the varied (or --mixed) library to FILE (JSON lines)")
    parser.add_argument("--check-fields", type=Path, metavar="FILE",
                        help="compare every indexed field of the varied (or --mixed) library with FILE")
    parser.add_argument("--verdicts", action="store_true",
                        help="compare every file's valid/broken verdict with safetensors.safe_open")
    parser.add_argument("--mixed", action="store_true",
                        help="instead: cold scan of a library of 10 transformer families x 3 key spellings "
                             "next to the SD-only one, and the detection cost per family")
    args = parser.parse_args()
    if args.mixed:
        mixed_families(args)
        return
    print(f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    kinds = ("shared", "varied") if args.kind == "both" else (args.kind,)
    for kind in kinds:
        lib_root = args.work / (f"lib-{args.files}" if kind == "shared" else f"varied-{args.files}")
        summary = bench_library(kind, lib_root, args.files)
        if kind == "varied":
            if args.save_fields:
                count = save_fields(lib_root, args.save_fields)
                print(f"  saved the fields of {count} entries to {args.save_fields}")
            if args.check_fields:
                check_fields(lib_root, args.check_fields)
            if args.verdicts:
                check_verdicts(lib_root)
    if args.search_rows:
        bench_search(lib_root, args.work, args.files, args.search_rows, summary.total)


def bench_library(kind: str, lib_root: Path, files: int):
    """Cold scan, warm rescan and ``ls`` of one library, with the naive passes of the same run."""
    print(f"\n== {kind} library: {lib_root}  ({files} files)")
    if kind == "shared":
        ensure_library(lib_root, files)
    else:
        ensure_varied_library(lib_root, files)

    warmed = warm_page_cache(lib_root)
    print(f"  page cache warmed: {warmed / 1e9:.2f} GB of headers ({warmed / files / 1e3:.0f} KB a file) "
          "read once, so every contender below reads from memory")
    read, count = timed(lambda: read_pass(lib_root))
    report("read the header bytes only", read, f"{count} files, one process", "")
    orj, count = timed(lambda: naive_orjson_scan(lib_root))
    report("naive: orjson.loads per header", orj, f"{count} files, one process", "")
    naive, count = timed(lambda: naive_json_scan(lib_root))
    report("naive: json.loads per header", naive, f"{count} files, one process", "")
    shutil.rmtree(lib_root / ".lutnav", ignore_errors=True)
    cold, summary = timed(lambda: Library(lib_root).scan_all())
    report("cold scan", cold, f"{summary.total} entries, {summary.broken} broken", "<= 5 s for 10k")
    warm = [timed(lambda: Library(lib_root).scan_all())[0] for _ in range(3)]
    report("warm rescan (median of 3)", statistics.median(warm), "nothing changed", "<= 0.5 s")
    cli = cli_command()
    report("lutnav ls (median of 5)", median_run(cli + ["--library", str(lib_root), "ls"]),
           f"{summary.total} rows to a pipe", "<= 0.3 s")
    print(f"  cold scan: {naive / cold:.2f}x a json.loads pass (target >= 3x), {orj / cold:.2f}x an "
          f"orjson.loads pass, {read / cold:.2f}x reading the bytes; the naive loops write no index")
    return summary


def bench_search(lib_root: Path, work: Path, files: int, rows: int, scanned: int) -> None:
    """Search, ``--help`` and ``ls --json | head`` over an index grown to ``rows`` entries."""
    print(f"\n== index of {rows:,} entries (rows of {lib_root.name} re-inserted under new names)")
    search_root = build_search_index(lib_root, work / f"search-{lib_root.name}-{rows}", rows)
    size = sum(p.stat().st_size for p in (search_root / ".lutnav").glob("catalog.db*"))
    print(f"  index on disk: {size / 1e6:.0f} MB (target <= 1 GB): " + ", ".join(
        f"{name} {mb:.0f}" for name, mb in index_parts(search_root / ".lutnav" / "catalog.db")) + " MB")
    by_query = search_times(search_root)
    times = [t for ts in by_query.values() for t in ts]
    report(f"search median, {rows:,} rows", statistics.median(times),
           f"p90 {percentile(times, 90) * 1000:.1f} ms over {len(times)} queries", "<= 20 ms")
    print("  per query (median ms): " + ", ".join(
        f"{q!r} {statistics.median(ts) * 1000:.1f}" for q, ts in by_query.items()))
    cjk_search_report(work, rows)

    cli = cli_command()
    report("lutnav --help (median of 5)", median_run(cli + ["--help"]), "subprocess", "<= 0.4 s")
    report("ls --json | head (median of 5)", median_first_lines(cli + ["--library", str(search_root), "ls",
                                                                       "--json"]),
           f"first 10 lines of {rows:,} rows", "<= 0.3 s")


def index_parts(db_path: Path, shown: int = 5) -> list[tuple[str, float]]:
    """The largest tables and indexes of an index, in MB (SQLite's dbstat), the rest summed."""
    with sqlite3.connect(db_path) as conn:
        try:
            parts = conn.execute("select name, sum(pgsize) / 1e6 from dbstat group by name "
                                 "order by 2 desc").fetchall()
        except sqlite3.OperationalError:  # an SQLite built without dbstat
            return []
    return [*parts[:shown], ("the rest", sum(mb for _, mb in parts[shown:]))]


def median_first_lines(cmd: list[str], lines: int = 10, runs: int = 5) -> float:
    """Seconds until ``cmd`` has printed ``lines`` lines (then it is stopped, as ``head`` would)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(lines):
            if not proc.stdout.readline():
                break
        times.append(time.perf_counter() - started)
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return statistics.median(times)


# --- field and verdict checks --------------------------------------------------------

#: columns that change from one scan to the next whatever the code does
VOLATILE = {"scanned_at"}


def indexed_fields(lib_root: Path) -> Iterator[dict]:
    """Every entry's indexed fields (and its header metadata), in path order."""
    conn = sqlite3.connect(lib_root / ".lutnav" / "catalog.db")
    conn.row_factory = sqlite3.Row
    metas = dict(conn.execute("select path, metadata from header_metadata"))
    for row in conn.execute("select * from entries order by path"):
        out = {k: row[k] for k in row.keys() if k not in VOLATILE}
        row_codec.inflate(out)  # compared as text, however the index stores it
        # the metadata as `show` reports it, however much of it the index keeps
        weights = lib_root / row["path"]
        if row["kind"] == "folder":
            weights = weights / "adapter_model.safetensors"
        metadata, _ = stored_metadata.full(metas.get(row["path"]), weights, row["header_digest"])
        out["metadata"] = json.dumps(metadata, sort_keys=True)
        yield out
    conn.close()


def save_fields(lib_root: Path, out: Path) -> int:
    count = 0
    with open(out, "w", encoding="utf-8") as fh:
        for row in indexed_fields(lib_root):
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            count += 1
    return count


def check_fields(lib_root: Path, expected_file: Path) -> None:
    """Print how many entries differ from the saved fields, and the first few differences."""
    expected = {}
    with open(expected_file, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            expected[row["path"]] = row
    differ, shown = 0, 0
    seen = set()
    for row in indexed_fields(lib_root):
        seen.add(row["path"])
        want = expected.get(row["path"])
        row = json.loads(json.dumps(row, sort_keys=True))
        if want != row:
            differ += 1
            if shown < 5:
                shown += 1
                cols = sorted(k for k in set(row) | set(want or {}) if (want or {}).get(k) != row.get(k))
                print(f"  DIFFERS {row['path']}: " + "; ".join(
                    f"{c}: {str((want or {}).get(c))[:120]} -> {str(row.get(c))[:120]}" for c in cols))
    missing = set(expected) - seen
    print(f"  fields check: {len(seen)} entries, {differ} differ, {len(missing)} missing "
          f"(against {expected_file})")


def check_verdicts(lib_root: Path) -> None:
    """Each file's verdict (indexed with an error, or not) against ``safetensors.safe_open``."""
    from safetensors import safe_open

    conn = sqlite3.connect(lib_root / ".lutnav" / "catalog.db")
    broken = dict(conn.execute("select path, error is not null from entries"))
    conn.close()
    disagree = []
    for path in safetensors_files(lib_root):
        rel = Path(path).relative_to(lib_root).as_posix()
        try:
            with safe_open(path, framework="numpy") as fh:
                fh.keys()
            ok = True
        except Exception:  # noqa: BLE001 - any refusal is the verdict
            ok = False
        if broken.get(rel) != (not ok):
            disagree.append(rel)
    print(f"  verdicts against safe_open: {len(broken)} files, {len(disagree)} disagree "
          f"({sum(broken.values())} broken)" + (f", e.g. {disagree[:3]}" if disagree else ""))


# --- CJK search ---------------------------------------------------------------------

CJK_WORDS = ("自然风景 静物 水墨 山水 人物 肖像 动漫 少女 赛博朋克 城市夜景 花卉 古风 建筑 写实 油画 素描 插画 "
             "可爱 机甲 猫咪 森林 雪山 海边 日落 宇宙 科幻 武侠 水彩 像素 剪纸").split()
CJK_SEARCHES = ["风景", "自然风景", "ink 风景", "猫", "赛博朋克", "山水 mountain", "没有的词", "罕见"]


def cjk_search_report(work: Path, rows: int, share: float = 0.5) -> dict[str, list[float]]:
    """CJK queries over ``rows`` entries of which ``share`` carry Chinese themes and notes.

    Built from the demo library (its rows copied under new paths, Chinese words
    drawn from a vocabulary), so it needs no generated LoRA tree. Two-character
    queries that match nothing ('罕见') scan every CJK row: the worst case.
    """
    from lutnav.demo import write_demo

    root = work / f"search-cjk-{rows}"
    db_path = root / ".lutnav" / "catalog.db"
    fresh = True
    if db_path.is_file():
        with sqlite3.connect(db_path) as conn:
            fresh = conn.execute("select count(*) from entries").fetchone()[0] != rows
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        write_demo(root)
        Library(root).scan_all()
        conn = sqlite3.connect(db_path)
        conn.row_factory = sqlite3.Row
        base = [dict(r) for r in conn.execute("select * from entries")]
        cols = list(base[0])
        sql = f"insert into entries ({', '.join(cols)}) values ({', '.join('?' * len(cols))})"
        rng = random.Random(5)
        with conn:
            for k in range(rows - len(base)):
                row = base[k % len(base)]
                new = dict(row, path=f"copy{k}/{row['path']}", name=f"{row['name']}_{rng.choice(WORDS)}{k}",
                           trigger_words=json.dumps(rng.sample(WORDS, 2)))
                if rng.random() < share:
                    new["themes"] = json.dumps(rng.sample(CJK_WORDS, 2), ensure_ascii=False)
                    new["notes"] = "、".join(rng.sample(CJK_WORDS, 3))
                conn.execute(sql, [new[c] for c in cols])
        conn.close()
    lib = Library(root)
    lib.search("风景")
    times: dict[str, list[float]] = {q: [] for q in CJK_SEARCHES}
    for _ in range(15):
        for query in CJK_SEARCHES:
            times[query].append(timed(lambda q=query: lib.search(q))[0])
    every = [t for ts in times.values() for t in ts]
    report(f"CJK search median, {rows:,} rows", statistics.median(every),
           f"p90 {percentile(every, 90) * 1000:.1f} ms; {share:.0%} of rows hold Chinese text", "<= 20 ms")
    print("  per query (median ms): " + ", ".join(
        f"{q!r} {statistics.median(ts) * 1000:.1f}" for q, ts in times.items()))
    return times


def mixed_families(args) -> None:
    """Cold scan of the SD-only library and of a mixed-family one of the same size, side by side."""
    from bench.family_library import detection_cost, ensure_mixed_library

    sd_root, mixed_root = args.work / f"lib-{args.files}", args.work / f"mixed-{args.files}"
    print(f"libraries: {sd_root} and {mixed_root} ({args.files} files each; {os.cpu_count()} CPUs)")
    ensure_library(sd_root, args.files)
    ensure_mixed_library(mixed_root, args.files)
    for label, root in (("cold scan, SD1/SDXL only", sd_root), ("cold scan, 10 families x 3 spellings", mixed_root)):
        warm_page_cache(root)
        shutil.rmtree(root / ".lutnav", ignore_errors=True)
        seconds, summary = timed(lambda: Library(root).scan_all())
        known = Counter(r[0] for r in sqlite3.connect(root / ".lutnav" / "catalog.db").execute(
            "select base_model from entries"))
        report(label, seconds, f"{summary.total} entries; {len(known)} base models, "
               f"{known.get('unknown', 0)} unknown", "")
        if root == mixed_root and args.save_fields:
            count = save_fields(root, args.save_fields)
            print(f"  saved the fields of {count} entries to {args.save_fields}")
        if root == mixed_root and args.check_fields:
            check_fields(root, args.check_fields)
        if root == mixed_root and args.verdicts:
            check_verdicts(root)
    costs = detection_cost(mixed_root)
    from catalog.detect.dit_layouts import LAYOUTS

    print(f"  classify() per header, median µs: the whole registry ({len(LAYOUTS)} layouts of "
          f"{len({lay.family for lay in LAYOUTS})} families) vs that family's layouts alone:")
    print("    " + ", ".join(f"{f} {every:.0f}/{alone:.0f}" for f, (every, alone) in costs.items()))
    ratio = statistics.median(every / alone for every, alone in costs.values())
    print(f"  median ratio {ratio:.2f}: layouts are looked up by layer, so a file pays for its own "
          "size, not for the number of families")


# --- the library -------------------------------------------------------------------


def ensure_library(root: Path, files: int) -> None:
    """Generate the library unless a finished one with the same parameters is there."""
    wanted = {"version": GENERATOR_VERSION, "files": files}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    # Real libraries mix trainers, ranks, dtypes and targeted parts; each combination is
    # its own tensor table (20 per family here), which is what the scan's header cache sees.
    templates: dict[str, list[dict]] = {"sd1": [], "sdxl": []}
    for fam in templates:
        for parts in (("unet", "te"), ("unet",)):
            modules = lora_modules(fam, style="kohya", parts=parts)
            for rank in (8, 16, 32, 64, 128):
                for dtype in ("F16", "BF16"):
                    spec = lora_tensors(modules, rank, rank / 2, dtype)
                    templates[fam].append({k: (dt, shape, None) for k, (dt, shape) in spec.items()})
    rng = random.Random(7)
    folders = [(cat, theme) for cat, themes in THEMES.items() for theme in themes]
    readmes: dict[Path, list[str]] = {}
    for i in range(files):
        family = "sd1" if i % 2 == 0 else "sdxl"
        cat, theme = folders[i % len(folders)]
        folder = root / cat / theme
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{theme}_{rng.choice(WORDS)}_{i:05d}"
        write_safetensors(folder / f"{stem}.safetensors", rng.choice(templates[family]),
                          kohya_metadata(stem, family, rng),
                          sparse=True, fsync=False)
        write_sidecars(folder, stem, i, rng, readmes)
        if i and i % 1000 == 0:
            print(f"  generated {i}/{files} files ({time.perf_counter() - started:.0f} s)", flush=True)
    for folder, sections in readmes.items():
        (folder / "README.md").write_text("\n".join(sections), encoding="utf-8")
    marker.write_text(json.dumps(wanted))
    print(f"  generated {files} files in {time.perf_counter() - started:.1f} s")


def ensure_varied_library(root: Path, files: int) -> None:
    """Generate the all-different library (``varied_library``) unless it is already there."""
    from varied_library import write_varied

    wanted = {"version": VARIED_VERSION, "files": files, "kind": "varied"}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    rng = random.Random(23)
    folders = [(cat, theme) for cat, themes in THEMES.items() for theme in themes]
    readmes: dict[Path, list[str]] = {}
    seen: set[bytes] = set()
    for i in range(files):
        cat, theme = folders[i % len(folders)]
        folder = root / cat / theme
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{theme}_{rng.choice(WORDS)}_{i:05d}"
        write_varied(folder, stem, i, rng, seen)
        write_sidecars(folder, stem, i, rng, readmes)
        if i and i % 1000 == 0:
            print(f"  generated {i}/{files} files ({time.perf_counter() - started:.0f} s)", flush=True)
    for folder, sections in readmes.items():
        (folder / "README.md").write_text("\n".join(sections), encoding="utf-8")
    marker.write_text(json.dumps(wanted))
    print(f"  generated {files} files, {len(seen)} distinct tensor tables, in "
          f"{time.perf_counter() - started:.1f} s")


def kohya_metadata(stem: str, family: str, rng: random.Random) -> dict[str, str]:
    """What sd-scripts writes, including a tag-frequency table of realistic size."""
    tags = {" ".join(rng.sample(WORDS, 2)): rng.randint(1, 120) for _ in range(60)}
    sdxl = family == "sdxl"
    return {
        "ss_output_name": stem, "ss_network_module": "networks.lora", "ss_network_dim": "32",
        "ss_network_alpha": "16.0", "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1",
        "ss_sd_model_name": "sd_xl_base_1.0.safetensors" if sdxl else "v1-5-pruned-emaonly.safetensors",
        "ss_resolution": "(1024, 1024)" if sdxl else "(512, 512)", "ss_mixed_precision": "fp16",
        "ss_learning_rate": "0.0001", "ss_unet_lr": "0.0001", "ss_text_encoder_lr": "5e-05",
        "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit", "ss_lr_scheduler": "cosine_with_restarts",
        "ss_num_train_images": str(rng.randint(20, 400)), "ss_num_epochs": str(rng.randint(5, 20)),
        "ss_max_train_steps": str(rng.randint(1000, 8000)), "ss_seed": str(rng.randint(0, 2**31)),
        "ss_training_started_at": f"{1.7e9 + rng.random() * 1e7:.3f}", "ss_v2": "False",
        "ss_tag_frequency": json.dumps({f"10_{stem}": tags}),
        "ss_dataset_dirs": json.dumps({f"10_{stem}": {"n_repeats": 10, "img_count": len(tags)}}),
    }


PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
                        "0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082")


def write_sidecars(folder: Path, stem: str, i: int, rng: random.Random, readmes: dict[Path, list[str]]) -> None:
    """Roughly what a curated library has: some cards, some Civitai info, many previews."""
    words = rng.sample(WORDS, 3)
    if i % 3 == 0:
        (folder / f"{stem}.preview.png").write_bytes(PNG_1PX)
    if i % 7 == 0:
        (folder / f"{stem}.toml").write_text(
            f'title = "{stem}"\ntrigger_words = ["{words[0]}"]\nstrength = 0.7\nthemes = ["{words[1]}"]\n')
    if i % 11 == 0:
        (folder / f"{stem}.civitai.info").write_text(json.dumps({
            "name": "v1.0", "baseModel": "SD 1.5", "trainedWords": words[:2],
            "model": {"name": stem.replace("_", " ").title(), "type": "LORA"},
            "description": f"<p>{' '.join(words)}</p>"}))
    if i % 13 == 0:
        readmes.setdefault(folder, ["# notes\n"]).append(
            f"### {stem}.safetensors\n- type: style\n- themes: {words[0]}, {words[1]}\n"
            f"- recommended strength: 0.6 ~ 0.8\n- trigger words: {words[2]}\n")


# --- measurements ------------------------------------------------------------------


def build_search_index(lib_root: Path, root: Path, rows: int) -> Path:
    """A copy of the real index grown to ``rows`` by re-inserting its rows under new paths.

    The copies keep each row's text but vary path, name and trigger words (from a
    vocabulary, so term frequencies stay realistic); every other column, the
    stored forms included, is the scanned row's. The FTS triggers index them as a
    scan would; ``header_metadata`` rows, which a scan no longer writes, are copied too.
    Reused while it holds the wanted row count and was copied from the same rows
    stored the same way (a change to the stored forms or the schema builds it again).
    """
    db_path = root / ".lutnav" / "catalog.db"
    marker = root / MARKER
    source = _stored_digest(lib_root / ".lutnav" / "catalog.db")
    if db_path.is_file() and marker.is_file() and json.loads(marker.read_text()) == {"source": source}:
        with sqlite3.connect(db_path) as conn:
            if conn.execute("select count(*) from entries").fetchone()[0] == rows:
                return root
    shutil.rmtree(root, ignore_errors=True)
    db_path.parent.mkdir(parents=True)
    src = sqlite3.connect(lib_root / ".lutnav" / "catalog.db")
    dst = sqlite3.connect(db_path)
    src.backup(dst)
    src.close()
    dst.row_factory = sqlite3.Row
    base = [dict(r) for r in dst.execute("select * from entries")]
    metas = dict(dst.execute("select path, metadata from header_metadata"))
    rng = random.Random(11)
    cols = list(base[0])
    sql = f"insert into entries ({', '.join(cols)}) values ({', '.join('?' * len(cols))})"
    needed, k = rows - len(base), 0
    with dst:
        while needed > 0:
            k += 1
            batch = []
            for row in base[:needed]:
                new = dict(row, path=f"copy{k}/{row['path']}", name=f"{row['name']}_{rng.choice(WORDS)}{k}",
                           trigger_words=json.dumps(rng.sample(WORDS, 2)))
                batch.append([new[c] for c in cols])
            dst.executemany(sql, batch)
            dst.executemany("insert into header_metadata (path, metadata) values (?, ?)",
                            ([f"copy{k}/{row['path']}", metas[row["path"]]]
                             for row in base[:needed] if row["path"] in metas))
            needed -= len(batch)
    dst.close()
    marker.write_text(json.dumps({"source": source}))
    return root


def _stored_digest(db_path: Path) -> str:
    """What the copies are made of: the schema and every stored value but the scan time."""
    import hashlib

    digest = hashlib.sha256()
    with sqlite3.connect(db_path) as conn:
        for (sql,) in conn.execute("select coalesce(sql, '') from sqlite_master order by name"):
            digest.update(sql.encode())
        digest.update(str(conn.execute("pragma page_size").fetchone()[0]).encode())
        cols = [r[1] for r in conn.execute("pragma table_info(entries)") if r[1] not in VOLATILE]
        for row in conn.execute(f"select {', '.join(cols)} from entries order by path"):
            digest.update(repr(row).encode())
        for row in conn.execute("select path, metadata from header_metadata order by path"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def search_times(root: Path, rounds: int = 15) -> dict[str, list[float]]:
    """Each query of ``SEARCHES`` timed ``rounds`` times, interleaved (common and rare terms)."""
    lib = Library(root)
    lib.search("warm up")
    times: dict[str, list[float]] = {q: [] for q in SEARCHES}
    for _ in range(rounds):
        for query in SEARCHES:
            times[query].append(timed(lambda q=query: lib.search(q))[0])
    return times


def warm_page_cache(root: Path) -> int:
    """Read every header once so no contender pays for the disk and the others not."""
    total = 0
    for path in safetensors_files(root):
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) == 8:
                total += len(fh.read(min(struct.unpack("<Q", head)[0], 100_000_000)))
    return total


def read_pass(root: Path) -> int:
    """One process: walk and read each header's bytes, nothing else (the floor)."""
    count = 0
    for path in safetensors_files(root):
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            fh.read(min(length, 100_000_000))
        count += 1
    return count


def naive_orjson_scan(root: Path) -> int:
    """As ``naive_json_scan``, with ``orjson.loads``."""
    import orjson

    return naive_scan(root, orjson.loads)


def naive_json_scan(root: Path) -> int:
    """One process: walk, read each header with plain Python, ``json.loads`` it, find the rank."""
    return naive_scan(root, json.loads)


def naive_scan(root: Path, loads) -> int:
    """The contender a scan is measured against: read, parse with ``loads``, find the rank."""
    count = 0
    for path in safetensors_files(root):
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            try:
                header = loads(fh.read(min(length, 100_000_000)))
            except ValueError:  # json.JSONDecodeError and orjson.JSONDecodeError both are
                header = {}
        header.pop("__metadata__", None)
        ranks = Counter(v["shape"][0] for k, v in header.items()
                        if k.endswith(("lora_down.weight", "lora_A.weight")) and isinstance(v, dict) and v["shape"])
        ranks.most_common(1)
        count += 1
    return count


def safetensors_files(root: Path):
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith(".safetensors"):
                yield os.path.join(folder, name)


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "lutnav"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from lutnav.cli import main; main()"]


def median_run(cmd: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def report(what: str, seconds: float, detail: str, target: str) -> None:
    shown = f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "
    print(f"{what:<36} {shown}   {detail}{f'   (target {target})' if target else ''}", flush=True)


if __name__ == "__main__":
    main()

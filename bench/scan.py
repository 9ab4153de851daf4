"""Scan benchmark: how long a user waits for lutnav on a big library, against doing it naively.

    python bench/scan.py [--files 10000] [--work bench/_work] [--search-rows 100000]
    python bench/scan.py --mixed [--files 10000]   # SD-only vs 10 transformer families x 3 spellings

Generates (once; reused while its marker matches) a library of LoRA files with the
headers real trainers write — full SD1.5 kohya (192 UNet + 72 text-encoder
modules) and full SDXL kohya (722 + 72 + 192), UNet-only or UNet + text
encoders, ranks 8–128, fp16 or bf16 (20 distinct tensor tables per family), with
sd-scripts' ``ss_*`` metadata — half and half, spread over category/theme folders, some with
sidecars and previews. The files are sparse: the header is real, the weights are
a hole, so 10,000 of them fit on disk. Then it prints, in one run: the cold scan
(index deleted first), the warm rescan, search over 100,000 rows, ``lutnav
--help`` and ``lutnav ls`` wall time, and the same cold scan done naively in one
process (plain ``json.loads`` of every header, and ``safetensors.safe_open``).

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.layouts import lora_modules, lora_tensors  # noqa: E402
from catalog.library import Library  # noqa: E402
from catalog.writer import write_safetensors  # noqa: E402

GENERATOR_VERSION = 2
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
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "_work", help="work folder (git-ignored)")
    parser.add_argument("--search-rows", type=int, default=100_000, help="rows in the search index")
    parser.add_argument("--mixed", action="store_true",
                        help="instead: cold scan of a library of 10 transformer families x 3 key spellings "
                             "next to the SD-only one, and the detection cost per family")
    args = parser.parse_args()
    if args.mixed:
        mixed_families(args)
        return

    lib_root = args.work / f"lib-{args.files}"
    print(f"library: {lib_root}  ({args.files} files; {os.cpu_count()} CPUs; Python {sys.version.split()[0]})")
    ensure_library(lib_root, args.files)

    warmed = warm_page_cache(lib_root)
    print(f"  page cache warmed: {warmed / 1e9:.2f} GB of headers read once, so every contender below "
          "reads from memory")
    shutil.rmtree(lib_root / ".lutnav", ignore_errors=True)
    cold, summary = timed(lambda: Library(lib_root).scan_all())
    report("cold scan", cold, f"{summary.total} entries, {summary.broken} broken", "<= 5 s for 10k")
    warm = [timed(lambda: Library(lib_root).scan_all())[0] for _ in range(3)]
    report("warm rescan (median of 3)", statistics.median(warm), "nothing changed", "<= 0.5 s")

    search_root = build_search_index(lib_root, args.work / f"search-{args.files}-{args.search_rows}",
                                     args.search_rows)
    by_query = search_times(search_root)
    times = [t for ts in by_query.values() for t in ts]
    report(f"search median, {args.search_rows:,} rows", statistics.median(times),
           f"p90 {percentile(times, 90) * 1000:.1f} ms over {len(times)} queries", "<= 20 ms")
    print("  per query (median ms): " + ", ".join(
        f"{q!r} {statistics.median(ts) * 1000:.1f}" for q, ts in by_query.items()))

    cli = cli_command()
    report("lutnav --help (median of 5)", median_run(cli + ["--help"]), "subprocess", "<= 0.4 s")
    report("lutnav ls (median of 5)", median_run(cli + ["--library", str(lib_root), "ls"]),
           f"{summary.total} rows to a pipe", "")

    naive, count = timed(lambda: naive_json_scan(lib_root))
    report("naive: json.loads per header", naive, f"{count} files, one process", "")
    safe, count = timed(lambda: naive_safe_open_scan(lib_root))
    report("naive: safetensors.safe_open", safe, f"{count} files, one process", "")
    print(f"\nspeed-up of the cold scan: {naive / cold:.1f}x over json.loads, {safe / cold:.1f}x over safe_open "
          "(target >= 3x); the naive loops write no index.")


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
    costs = detection_cost(mixed_root)
    from catalog.dit_layouts import LAYOUTS

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

    The copies keep each row's text but vary name, theme and trigger words from a
    vocabulary, so term frequencies stay realistic; the FTS triggers index them as
    a scan would. Reused while it holds the wanted row count.
    """
    db_path = root / ".lutnav" / "catalog.db"
    if db_path.is_file():
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
            needed -= len(batch)
    dst.close()
    return root


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
                total += len(fh.read(struct.unpack("<Q", head)[0]))
    return total


def naive_json_scan(root: Path) -> int:
    """One process: walk, read each header with plain Python, ``json.loads`` it, find the rank."""
    count = 0
    for path in safetensors_files(root):
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        header.pop("__metadata__", None)
        ranks = Counter(v["shape"][0] for k, v in header.items() if k.endswith(("lora_down.weight", "lora_A.weight")))
        ranks.most_common(1)
        count += 1
    return count


def naive_safe_open_scan(root: Path) -> int:
    """The same through the safetensors library: metadata, keys and each down shape."""
    from safetensors import safe_open

    count = 0
    for path in safetensors_files(root):
        with safe_open(path, framework="numpy") as fh:
            fh.metadata()
            ranks = Counter(fh.get_slice(k).get_shape()[0] for k in fh.keys()
                            if k.endswith(("lora_down.weight", "lora_A.weight")))
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

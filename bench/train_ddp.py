"""Training on one process against two (DDP over gloo on the CPU, or NCCL on GPUs).

    python bench/train_ddp.py [--task text|image|both] [--steps 30] [--threads 1]

Builds a small random Llama (hidden 256, 4 layers) with 256 instruction
examples, and a tiny SD1-shaped pipeline with 32 images at 64 px; then trains
each twice with the same global batch: one process at batch_size 2B, and
two processes at batch_size B started by ``torchrun --standalone`` (the
README's form).  Each process gets ``--threads`` threads, so two processes
use twice the cores.  Prints the steady rate (tokens/s or images/s over the
global batch, after 5 warm-up steps, as the progress bar computes it) and
the peak RSS of every process.  One run each; no files outside a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARMUP = 5


def build_text(folder: Path) -> dict:
    from trainers.text.tiny import WORDS, write_jsonl, write_tiny_llama

    words = WORDS + [f"w{i:04d}" for i in range(2000)]
    write_tiny_llama(folder / "llama", hidden=256, layers=4, heads=4, words=words, max_positions=512)
    rng = random.Random(0)
    rows = [{"instruction": " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))),
             "output": " ".join(rng.choice(words) for _ in range(rng.randint(8, 80)))} for _ in range(256)]
    write_jsonl(folder / "text.jsonl", rows)
    return {"task_type": "text-generation", "base_model": str(folder / "llama"),
            "train_data": str(folder / "text.jsonl"), "eval_split": 0, "max_seq_length": 256,
            "lora_rank": 16, "lora_dropout": 0.0, "learning_rate": 1e-4, "batch": 8}


def build_image(folder: Path) -> dict:
    from trainers.image.tiny import caption_words, write_image_set, write_tiny_sd

    write_tiny_sd(folder / "sd", words=caption_words())
    write_image_set(folder / "images", 32)
    return {"task_type": "image-generation", "base_model": str(folder / "sd"),
            "train_data_dir": str(folder / "images"), "resolution": 64, "lora_rank": 8,
            "learning_rate": 1e-4, "batch": 8}


def write_config(folder: Path, spec: dict, *, batch: int, steps: int, name: str) -> Path:
    values = {k: v for k, v in spec.items() if k != "batch"}
    values.update({"batch_size": batch, "max_steps": steps, "save_steps": 0, "scheduler": "constant",
                   "resume": "none", "name": name, "output_dir": str(folder / "out" / name)})
    path = folder / f"{name}.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()), "utf-8")
    return path


def worker(config_path: str) -> None:
    """One process of a run: train, then report this process's rate and peak RSS."""
    import torch

    from trainers.config import load_config
    from trainers.loop import StepEvent
    from trainers.run import train

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    marks = []
    events = train(load_config(Path(config_path)))
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            trained = stop.value
            break
        if isinstance(event, StepEvent):
            marks.append((time.perf_counter(), event.units, event.unit))
    trained.release()
    (t0, u0, unit), (t1, u1, _) = marks[WARMUP - 1], marks[-1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rank = int(os.environ.get("RANK", "0"))
    report = Path(os.environ["BENCH_OUT"]) / f"rank-{rank}.json"   # a file each: ranks share stdout
    report.write_text(json.dumps({"rank": rank, "rate": (u1 - u0) / (t1 - t0), "unit": unit, "peak_rss_mib": peak}))


def launch(config: Path, processes: int, threads: int) -> list[dict]:
    reports = config.with_suffix(".reports")
    reports.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "BENCH_THREADS": str(threads),
           "BENCH_OUT": str(reports)}
    script = [str(Path(__file__).resolve()), "--worker", str(config)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(processes), *script]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-4000:]}")
    return sorted((json.loads(p.read_text()) for p in reports.glob("rank-*.json")), key=lambda r: r["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["text", "image", "both"], default="both")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    tasks = ["text", "image"] if args.task == "both" else [args.task]
    print(f"{args.steps} steps, global batch 8 (1 × 8 and 2 × 4), {args.threads} thread(s) per process, "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for task in tasks:
            spec = (build_text if task == "text" else build_image)(folder)
            base = None
            for processes in (1, 2):
                cfg = write_config(folder, spec, batch=spec["batch"] // processes, steps=args.steps,
                                   name=f"{task}{processes}")
                results = launch(cfg, processes, args.threads)
                rate, unit = results[0]["rate"], results[0]["unit"]
                base = base or rate
                rss = ", ".join(f"rank {r['rank']} {r['peak_rss_mib']:.0f} MiB" for r in results)
                print(f"{task:<6} {processes} process(es): {rate:10,.1f} {unit}/s  (x{rate / base:.2f})  "
                      f"peak RSS {rss}")


if __name__ == "__main__":
    main()

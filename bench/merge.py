"""Merge benchmark: two SDXL rank-32 kohya LoRAs (every UNet and text-encoder module, fp16) at 0.7/0.3.

Prints, for the exact merge (``--out``) and the factored SVD merge (``--rank 32``),
the end-to-end time of the real command and its peak RSS (each run in its own
process), then the per-module errors: the reported error and the error of the
stored file against the optimal rank-32 truncation of the true sum (float64, on a
sample of modules), and the time of the naive method (form ΔW, full SVD) against
the factored one on a subset of modules.

    python bench/merge.py [--workdir DIR] [--sample 48] [--naive 8]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import timed_lutnav  # noqa: E402

RANK, WEIGHTS = 32, (0.7, 0.3)


def write_inputs(root: Path) -> list[Path]:
    import numpy as np

    from lutnav.sample_loras import lora_modules
    from catalog.files.safetensors_writer import encode_floats, write_safetensors

    modules = lora_modules("sdxl", style="kohya")
    unet = sum(m.name.startswith("lora_unet_") for m in modules)
    te1 = sum(m.name.startswith("lora_te1_") for m in modules)
    print(f"modules: {unet} UNet + {te1} te1 + {len(modules) - unet - te1} te2, rank {RANK}, fp16")
    paths = []
    for n, (name, alpha) in enumerate((("bench_a", 16.0), ("bench_b", 32.0))):
        rng = np.random.default_rng(n)
        tensors = {}
        for m in modules:
            down = rng.standard_normal((RANK, m.in_features), np.float32) / np.sqrt(m.in_features)
            up = rng.standard_normal((m.out_features, RANK), np.float32) * 0.02
            tensors[m.name + ".lora_down.weight"] = ("F16", list(down.shape), down.astype(np.float16).tobytes())
            tensors[m.name + ".lora_up.weight"] = ("F16", list(up.shape), up.astype(np.float16).tobytes())
            tensors[m.name + ".alpha"] = ("F16", [], encode_floats([alpha], "F16"))
        path = root / "style/bench" / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(path, tensors, {"ss_network_dim": str(RANK), "ss_network_alpha": str(alpha),
                                          "ss_base_model_version": "sdxl_base_v1-0"}, fsync=False)
        paths.append(path)
        print(f"  wrote {path.name}: {path.stat().st_size / 1e6:.0f} MB")
    return paths


def timed_command(root: Path, *args: str) -> tuple[float, dict, str]:
    return timed_lutnav(["--library", str(root), "mix", "bench_a:0.7", "bench_b:0.3", *args])


def dense(f, weight: float = 1.0):
    """One module's ΔW in float64 from its stored factors."""
    import numpy as np

    from lutnav.mix.tensors import as_float

    up = as_float(f.up, f.dtype, np.float64).reshape(f.up.shape[0], -1)
    down = as_float(f.down, f.dtype, np.float64).reshape(f.rank, -1)
    return (up * (weight * f.scale)) @ down


def errors(root: Path, sample: int) -> None:
    import numpy as np

    from lutnav.mix.merge import one_thread, stacked, truncate
    from lutnav.mix.tensors import load_lora

    loras = [load_lora(root / f"style/bench/bench_{x}.safetensors") for x in "ab"]
    exact = load_lora(root / "style/bench/exact.safetensors")
    svd = load_lora(root / "style/bench/svd32.safetensors")
    modules = list(loras[0].modules)
    picked = random.Random(0).sample(modules, min(sample, len(modules)))
    gap_reported, gap_stored, exact_err, worst_opt = 0.0, 0.0, 0.0, 0.0
    for module in picked:
        truth = sum(dense(lora.modules[module], w) for lora, w in zip(loras, WEIGHTS))
        norm = np.linalg.norm(truth)
        s = np.linalg.svd(truth, compute_uv=False)
        optimum = float(np.sqrt(np.sum(s[RANK:] ** 2)) / norm)
        up, down = stacked(loras, list(WEIGHTS), module, np.float64)
        with one_thread():
            _, _, reported = truncate(up, down, RANK)
        stored = float(np.linalg.norm(dense(svd.modules[module]) - truth) / norm)
        exact_err = max(exact_err, float(np.linalg.norm(dense(exact.modules[module]) - truth) / norm))
        gap_reported = max(gap_reported, abs(reported - optimum))
        gap_stored = max(gap_stored, stored - optimum)
        worst_opt = max(worst_opt, optimum)
    print(f"errors on {len(picked)} sampled modules (float64 truth):")
    print(f"  exact merge, stored fp16 file:     worst relative error {exact_err:.2e}")
    print(f"  --rank {RANK}: optimal truncation error up to {worst_opt:.4f}")
    print(f"  --rank {RANK}: |reported - optimum|  max {gap_reported:.2e}")
    print(f"  --rank {RANK}: stored fp16 - optimum max {gap_stored:.2e} "
          f"({'within' if gap_stored <= 1e-6 else 'NOT within'} 1e-6 of the optimum)")


def naive_vs_factored(root: Path, count: int) -> None:
    """kohya's svd_merge way (dense fp32 ΔW, full SVD) against ours, same modules, one thread."""
    import numpy as np
    import torch

    from lutnav.mix.merge import one_thread, stacked, truncate
    from lutnav.mix.tensors import load_lora

    loras = [load_lora(root / f"style/bench/bench_{x}.safetensors") for x in "ab"]
    modules = list(loras[0].modules)
    subset = modules[:: max(1, len(modules) // count)][:count]
    with one_thread():
        start = time.perf_counter()
        for module in subset:
            up, down = stacked(loras, list(WEIGHTS), module)
            delta = torch.from_numpy(up) @ torch.from_numpy(down.reshape(down.shape[0], -1))
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            _ = (u[:, :RANK] * s[:RANK], vh[:RANK])
        naive = time.perf_counter() - start
        start = time.perf_counter()
        for module in subset:
            up, down = stacked(loras, list(WEIGHTS), module, np.float64)
            truncate(up, down, RANK)
        factored = time.perf_counter() - start
    first = loras[0].modules
    share = sum(first[m].up.shape[0] * first[m].down.shape[1] for m in subset) / sum(
        f.up.shape[0] * f.down.shape[1] for f in first.values())
    print(f"naive (dense fp32 ΔW + full SVD) on {len(subset)} modules: {naive:.2f} s; "
          f"factored: {factored:.3f} s; ratio {naive / factored:.0f}x")
    print(f"  (those modules hold {share:.1%} of all ΔW entries: naive on all ≈ {naive / share:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temp folder)")
    parser.add_argument("--sample", type=int, default=48, help="modules for the float64 error check")
    parser.add_argument("--naive", type=int, default=8, help="modules for the naive-method timing")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lutnav-bench-merge-"))
    root = work / "loras"
    try:
        write_inputs(root)
        from catalog.index.library import Library

        lib = Library(root)
        lib.db  # noqa: B018
        lib.scan_all()
        for label, extra in (("exact --out", ["--out", str(root / "style/bench/exact.safetensors")]),
                             (f"--rank {RANK}", ["--out", str(root / "style/bench/svd32.safetensors"),
                                                 "--rank", str(RANK)])):
            wall, stats, log = timed_command(root, *extra, "--overwrite")
            print(f"{label:>12}: {wall:.2f} s end to end (CPU {stats['cpu']:.2f} s), "
                  f"peak RSS {stats['peak_mb']:.0f} MB")
            for line in log.splitlines():
                if line.startswith("relative Frobenius"):
                    print(f"{'':>14}{line}")
        errors(root, args.sample)
        naive_vs_factored(root, args.naive)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

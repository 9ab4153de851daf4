"""A mixed-family library for the scan benchmark: 10 transformer families × 3 key spellings.

The tensor tables come from the real diffusers classes built on the meta device
(the same ground truth the tests use), with LoRAs on every Linear, written as
diffusers (``transformer.``), PEFT (``base_model.model.``) and OneTrainer-style
kohya (``lora_transformer_``) files; sparse, like the SD-only library.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lutnav.sample_loras import lora_tensors
from catalog.files.safetensors_writer import write_safetensors

GENERATOR_VERSION = 1
MARKER = ".bench.json"
FAMILIES = ["flux", "chroma", "flux2", "qwen-image", "sd3", "z-image", "lumina2", "wan", "hunyuan-video", "ltx"]
SPELLINGS = ("diffusers", "peft", "kohya-transformer")


def _models() -> dict[str, tuple[str, tuple]]:
    from tests.family_models import MODELS, frozen

    out: dict[str, tuple[str, tuple]] = {}
    for family, cls, config in MODELS:
        out.setdefault(family, (cls, frozen(config)))
    return {f: out[f] for f in FAMILIES}


def templates() -> dict[tuple[str, str], list[dict]]:
    """(family, spelling) -> tensor tables at a few ranks (each a distinct table for the header cache)."""
    from tests.family_models import linears, spelled

    out = {}
    for family, (cls, config) in _models().items():
        layers = linears(cls, config)
        for spelling in SPELLINGS:
            mods = spelled(layers, spelling)
            out[(family, spelling)] = [
                {k: (dt, shape, None) for k, (dt, shape) in lora_tensors(mods, rank, rank / 2 if spelling.startswith(
                    "kohya") else None, "BF16").items()} for rank in (8, 16, 32)]
    return out


def ensure_mixed_library(root: Path, files: int) -> None:
    """Generate ``files`` LoRAs spread evenly over the families and spellings, unless already there."""
    wanted = {"version": GENERATOR_VERSION, "files": files, "families": FAMILIES}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    tables = templates()
    keys = sorted(tables)
    rng = random.Random(11)
    for i in range(files):
        family, spelling = keys[i % len(keys)]
        folder = root / "style" / family
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors(folder / f"{family}_{spelling}_{i:05d}.safetensors", rng.choice(tables[(family, spelling)]),
                          {"ss_output_name": f"{family}_{i}"}, sparse=True, fsync=False)
    marker.write_text(json.dumps(wanted))
    print(f"  generated {files} mixed-family files in {time.perf_counter() - started:.1f} s")


def detection_cost(root: Path, rounds: int = 5) -> dict[str, tuple[float, float]]:
    """Median µs of ``classify`` per header, by family: with the whole registry, and with a
    registry holding that family's layouts alone (headers read once, memo cleared each time)."""
    from catalog.detect import dit_specs
    from catalog.detect.classify import classify, forget
    from catalog.files.header import read_header

    full = (dit_specs._BY_LAYER, dit_specs.KNOWN_GROUPS)
    out: dict[str, tuple[float, float]] = {}
    for folder in sorted((root / "style").iterdir()):
        headers = [read_header(p) for p in sorted(folder.glob("*.safetensors"))[:12]]
        alone = {k: frozenset(n for n in v if dit_specs.LAYOUTS[n].family == folder.name)
                 for k, v in full[0].items()}
        alone = {k: v for k, v in alone.items() if v}
        medians = []
        for table in (full, (alone, frozenset(g for g, _ in alone))):
            dit_specs._BY_LAYER, dit_specs.KNOWN_GROUPS = table
            times = []
            for _ in range(rounds):
                for h in headers:
                    forget()
                    start = time.perf_counter()
                    c = classify(h)
                    times.append(time.perf_counter() - start)
                    if c.base_model != folder.name:
                        raise SystemExit(f"{h.path.name} classified as {c.base_model}: {c.warnings}")
            medians.append(statistics.median(times) * 1e6)
        dit_specs._BY_LAYER, dit_specs.KNOWN_GROUPS = full
        out[folder.name] = (medians[0], medians[1])
    return out

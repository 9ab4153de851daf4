"""Single-file checkpoint benchmark: a full-size SD 1.5 checkpoint as A1111 keeps it, sampled offline.

Writes the released SD 1.5 shapes under the original (LDM) names in fp16 — weights
all zero, the shapes and names are what matter — then, each in its own process so
peak RSS is the command's own: ``lutnav preview`` end to end (read the header, load
the pipeline with the shipped configs and CLIP tokenizer, one 64 px step, write the
PNG), and the same against the equivalent diffusers folder for comparison.

    python bench/single_file.py [--workdir DIR] [--steps 1] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import timed_lutnav  # noqa: E402


def write_inputs(work: Path) -> tuple[Path, Path, Path]:
    """(checkpoint file, diffusers folder of the same model, library with one SD1 LoRA)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lutnav.sample_loras import lora_modules
    from tests.ldm_checkpoint import write_single_file
    from tests.mixlib import write_lora
    from tests.sdconfigs import CLIP_L, SD15_UNET, shipped
    from trainers.image.single_file import load_single_file

    ckpt, folder = work / "v1-5-zeros.safetensors", work / "v1-5-zeros"
    if not ckpt.is_file():
        with init_empty_weights():
            meta = argparse.Namespace(unet=UNet2DConditionModel(**SD15_UNET),
                                      vae=AutoencoderKL(**shipped("sd1", "vae")),
                                      text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)))
        write_single_file(meta, ckpt, family="sd1", dtype=torch.float16)
    if not folder.is_dir():  # the same weights as a diffusers folder, converted by the loader under test
        load_single_file(ckpt, "sd1", dtype=torch.float16).save_pretrained(folder)
    library = work / "loras"
    if not library.is_dir():
        write_lora(library / "style" / "inkbench.safetensors", lora_modules("sd1", style="kohya", parts=("unet",)),
                   rank=8, alpha=8.0, metadata={"ss_base_model_version": "sd_v1"})
    return ckpt, folder, library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "single_file")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ckpt, folder, library = write_inputs(args.workdir)
    print(f"inputs ready in {time.perf_counter() - start:.1f} s: {ckpt.name} "
          f"({ckpt.stat().st_size / 1e9:.2f} GB, fp16), a diffusers folder of the same weights")
    argv = ["--library", str(library), "preview", "inkbench", "--steps", str(args.steps), "--size", str(args.size)]
    for label, model in (("single file", ckpt), ("diffusers folder", folder)):
        for png in library.rglob("*.png"):
            png.unlink()
        wall, stats, _ = timed_lutnav([*argv, "--model", str(model)])
        print(f"preview from a {label:16s}: {wall:6.1f} s end to end (in-process {stats['seconds']:.1f} s), "
              f"peak RSS {stats['peak_mb']:6.0f} MB")


if __name__ == "__main__":
    main()

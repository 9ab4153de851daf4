"""Image-LoRA training speed and memory: lutnav's loop against a plain diffusers + peft loop.

    python bench/train_image.py [--steps 20] [--resolution 128] [--batch-size 4]

Builds one random SD1-shaped pipeline (small, but with every real part:
CLIP text encoder of width 768, a three-level UNet with cross-attention, an
8x VAE) and 16 captioned images, then trains the same LoRA (kohya's module
set, rank 8) four times, each in a fresh process so peak RSS means something:
lutnav and the reference, each with latents cached and encoded every step.
Steps/s counts the steps after a warm-up; model loading, latent caching and
saving are outside the timed span for both.  Prints one table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARMUP = 3
CHANNELS = (64, 128, 256)
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_lutnav(args) -> dict:
    from trainers.config import load_config
    from trainers.loop import StepEvent
    from trainers.run import train

    cfg = Path(args.work) / f"lutnav-{args.cached}.toml"
    cfg.write_text(f"""
task_type = "image-generation"
base_model = "{args.model}"
train_data_dir = "{args.data}"
resolution = {args.resolution}
lora_rank = 8
batch_size = {args.batch_size}
max_steps = {args.steps}
save_steps = 0
learning_rate = 1e-4
scheduler = "constant"
cache_latents = {"true" if args.cached else "false"}
output_dir = "{args.work}/out-lutnav-{args.cached}"
resume = "none"
name = "bench"
""", "utf-8")
    stamps = []
    for event in train(load_config(cfg)):
        if isinstance(event, StepEvent):
            stamps.append(time.perf_counter())
    return {"steps_per_s": (len(stamps) - WARMUP) / (stamps[-1] - stamps[WARMUP - 1])}


def run_reference(args) -> dict:
    """The loop as the diffusers LoRA example scripts write it."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    model = args.model
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text = CLIPTextModel.from_pretrained(model, subfolder="text_encoder").requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae").requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet").requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    unet.add_adapter(LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian", target_modules=TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    rows = [line.split(",", 1) for line in (Path(args.data) / "metadata.csv").read_text().splitlines()[1:]]
    size = args.resolution
    pixels = []
    for name, _ in rows:
        img = Image.open(Path(args.data) / name).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        pixels.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
    ids = tokenizer([c.strip('"') for _, c in rows], padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    cached = None
    if args.cached:
        with torch.no_grad():
            cached = [vae.encode(p[None]).latent_dist for p in pixels]
    scale = vae.config.scaling_factor
    stamps = []
    order = torch.randperm(len(rows))
    for step in range(args.steps):
        pick = [int(order[(step * args.batch_size + k) % len(rows)]) for k in range(args.batch_size)]
        with torch.no_grad():
            if cached is not None:
                latents = torch.cat([cached[i].sample() for i in pick]) * scale
            else:
                latents = vae.encode(torch.stack([pixels[i] for i in pick])).latent_dist.sample() * scale
            states = text(ids[pick])[0]
        noise = torch.randn_like(latents)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(pick),))
        noisy = noise_scheduler.add_noise(latents, noise, t)
        pred = unet(noisy, t, states).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        stamps.append(time.perf_counter())
    return {"steps_per_s": (len(stamps) - WARMUP) / (stamps[-1] - stamps[WARMUP - 1])}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = run_lutnav(args) if args.child == "lutnav" else run_reference(args)
    result["peak_rss_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["lutnav", "reference"])
    parser.add_argument("--cached", type=int, default=1)
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from trainers.image.tiny import caption_words, write_image_set, write_tiny_sd

    with tempfile.TemporaryDirectory(prefix="lutnav-bench-") as work:
        model = write_tiny_sd(Path(work) / "sd", channels=CHANNELS, text_layers=2, text_mlp=1024, vae_channels=32,
                              words=caption_words())
        data = write_image_set(Path(work) / "data", 16, size=args.resolution)
        rows = []
        for cached in (1, 0):
            for who in ("reference", "lutnav"):
                cmd = [sys.executable, __file__, "--child", who, "--cached", str(cached), "--model", str(model),
                       "--data", str(data), "--work", work, "--steps", str(args.steps), "--resolution",
                       str(args.resolution), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                line = [s for s in done.stdout.splitlines() if s.startswith("RESULT ")]
                if done.returncode or not line:
                    sys.exit(f"{who} failed:\n{done.stderr[-3000:]}")
                rows.append((who, cached, json.loads(line[0][7:])))
    print(f"SD1-shaped UNet {CHANNELS}, CLIP width 768, {args.resolution}px, batch {args.batch_size}, rank 8, "
          f"{args.steps} steps ({WARMUP} warm-up), CPU threads {args.threads}")
    print(f"{'loop':<10} {'latents':<8} {'steps/s':>8} {'peak RSS MiB':>13}")
    for who, cached, r in rows:
        print(f"{who:<10} {'cached' if cached else 'encoded':<8} {r['steps_per_s']:>8.3f} {r['peak_rss_mib']:>13.0f}")
    for cached in (1, 0):
        ref = next(r for w, c, r in rows if w == "reference" and c == cached)
        ours = next(r for w, c, r in rows if w == "lutnav" and c == cached)
        print(f"lutnav / reference ({'cached' if cached else 'encoded'}): speed "
              f"{ours['steps_per_s'] / ref['steps_per_s']:.2f}x, memory "
              f"{ours['peak_rss_mib'] / ref['peak_rss_mib']:.2f}x")


if __name__ == "__main__":
    main()

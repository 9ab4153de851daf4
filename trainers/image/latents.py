"""Turning images into the VAE's latents, and the on-disk latent cache.

Encoding is most of the cost of a small LoRA run, and an image's latents
never change while the VAE does not.  Each image is therefore encoded once,
at its training size, and stored as ``<sha256>_<W>x<H>.safetensors`` under a
folder named for the VAE (a digest of its config and weights): a second run,
a resumed run or another config on the same images reuses it, and a
different VAE can never pick up the wrong latents.  What is stored is the
latent distribution (mean, std), so every step still samples fresh latents.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from catalog.progress import Progress, Work
from trainers.image.buckets import Placement, render
from trainers.image.checks import ImageItem

FORMAT = "v1"   # bump when the resize/crop or what is stored changes


def pixels(item: ImageItem, placement: Placement):
    """The image as a (3, H, W) float tensor in [-1, 1], resized and cropped per ``placement``."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(item.path) as img:
        img.load()
        rgb = render(img, placement)
    array = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def vae_digest(vae) -> str:
    """A short identity of the VAE: its config plus samples of its first and last weights."""
    digest = hashlib.sha256(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
    params = list(vae.state_dict().values())
    for tensor in params[:3] + params[-3:]:
        digest.update(tensor.detach().flatten()[:1024].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class LatentCache:
    """Latent distributions of the training images, on disk and in memory."""

    def __init__(self, folder: Path, vae_id: str):
        self.folder = folder / vae_id
        self.memory: dict[str, Any] = {}

    def path(self, item: ImageItem, placement: Placement) -> Path:
        return self.folder / f"{item.sha256[:40]}_{placement.width}x{placement.height}_{FORMAT}.safetensors"

    def missing(self, pairs: list[tuple[ImageItem, Placement]]) -> list[tuple[ImageItem, Placement]]:
        return [(i, p) for i, p in pairs if not self.path(i, p).is_file()]

    def fill(self, vae, pairs: list[tuple[ImageItem, Placement]], device) -> Work[int]:
        """Encode the images not yet cached, one at a time, yielding each; returns how many were encoded."""
        import torch
        from safetensors.torch import save_file

        todo = self.missing(pairs)
        self.folder.mkdir(parents=True, exist_ok=True)
        dtype = next(vae.parameters()).dtype
        for n, (item, placement) in enumerate(todo, 1):
            with torch.no_grad():
                batch = pixels(item, placement).unsqueeze(0).to(device, dtype)
                dist = vae.encode(batch).latent_dist
            tensors = {"mean": dist.mean[0].float().cpu().contiguous(), "std": dist.std[0].float().cpu().contiguous()}
            target = self.path(item, placement)
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            save_file(tensors, str(partial), metadata={"image": item.path.name, "sha256": item.sha256})
            os.replace(partial, target)  # several processes may fill the cache at once
            yield Progress(n, len(todo), item.path.name, "encoding latents")
        return len(todo)

    def load(self, item: ImageItem, placement: Placement) -> tuple[Any, Any]:
        """(mean, std) of one image's latents, kept in memory after the first read."""
        from safetensors.torch import load_file

        key = self.path(item, placement).name
        if key not in self.memory:
            tensors = load_file(str(self.path(item, placement)))
            self.memory[key] = (tensors["mean"], tensors["std"])
        return self.memory[key]

"""One diffusion training step, as the forward pass of a module the loop can wrap.

The whole step (latents, noise, timesteps, text conditioning, UNet, loss)
runs inside ``forward`` so that under ``accelerate launch`` the DDP wrapper
sees the call and synchronises the adapters' gradients.  Imported only when
training (it needs torch at class definition).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class DiffusionLoRA(torch.nn.Module):
    """UNet (+ text encoders) with LoRA adapters, the frozen VAE, and the noise schedule.

    ``forward(groups)`` takes the micro-batch as groups of same-sized images
    (one per aspect-ratio bucket) and returns the loss summed over images.
    """

    def __init__(self, components, *, train_text: bool, noise_offset: float = 0.0,
                 min_snr_gamma: float | None = None):
        super().__init__()
        from diffusers import DDPMScheduler

        self.family = components.family
        self.prediction_type = components.prediction_type
        self.unet = components.unet
        self.vae = components.vae
        self.text_encoders = torch.nn.ModuleList(components.text_encoders)
        self.train_text = train_text
        self.noise_offset = noise_offset
        self.min_snr_gamma = min_snr_gamma
        schedule = DDPMScheduler.from_config(components.scheduler_config)
        self.register_buffer("alphas_cumprod", schedule.alphas_cumprod.clone().float(), persistent=False)
        self.timesteps = int(schedule.config.num_train_timesteps)
        self.scaling = float(self.vae.config.scaling_factor)
        self.shift = float(getattr(self.vae.config, "shift_factor", None) or 0.0)

    # --- conditioning -------------------------------------------------------------------------

    def encode_text(self, ids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompt embeddings (and SDXL's pooled embedding) for tokenised captions."""
        with torch.set_grad_enabled(self.train_text and torch.is_grad_enabled()):
            if self.family != "sdxl":
                return self.text_encoders[0](ids[0])[0], None
            states, pooled = [], None
            for encoder, tokens in zip(self.text_encoders, ids):
                out = encoder(tokens, output_hidden_states=True)
                states.append(out.hidden_states[-2])   # SDXL conditions on the penultimate layer
                pooled = getattr(out, "text_embeds", None)
            return torch.cat(states, dim=-1), pooled

    def latents(self, group: dict[str, Any], draw) -> torch.Tensor:
        """Latents of a group: sampled from the cached distribution, or encoded now."""
        if "mean" in group:
            mean, std = group["mean"], group["std"]
        else:
            with torch.no_grad():
                pixels = group["pixels"].to(next(self.vae.parameters()).dtype)
                dist = self.vae.encode(pixels).latent_dist
                mean, std = dist.mean.float(), dist.std.float()
        sample = mean + std * draw(mean.shape[1:]).to(mean.device, mean.dtype)
        return (sample - self.shift) * self.scaling

    # --- the step -----------------------------------------------------------------------------

    def forward(self, groups: list[dict[str, Any]]) -> torch.Tensor:
        total = None
        for group in groups:
            loss = self._group_loss(group)
            total = loss if total is None else total + loss
        return total

    def _group_loss(self, group: dict[str, Any]) -> torch.Tensor:
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in group["seeds"]]

        def draw(shape):  # one CPU generator per image: the same draws however batches are split
            return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators])

        x0 = self.latents(group, draw)
        n = x0.shape[0]
        noise = draw(x0.shape[1:]).to(x0.device, x0.dtype)
        if self.noise_offset:
            noise = noise + self.noise_offset * draw((x0.shape[1], 1, 1)).to(x0.device, x0.dtype)
        t = torch.cat([torch.randint(0, self.timesteps, (1,), generator=g) for g in generators]).to(x0.device)
        a = self.alphas_cumprod[t].view(n, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        if self.prediction_type == "v_prediction":
            target = a.sqrt() * noise - (1 - a).sqrt() * x0
        else:
            target = noise
        states, pooled = self.encode_text(group["input_ids"])
        extra = None
        if self.family == "sdxl":
            extra = {"text_embeds": pooled, "time_ids": group["time_ids"]}
        unet_dtype = self.unet.dtype
        pred = self.unet(noisy.to(unet_dtype), t, states.to(unet_dtype), added_cond_kwargs=extra).sample
        per_image = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if self.min_snr_gamma:
            snr = (a / (1 - a)).view(n)
            clipped = torch.clamp(snr, max=self.min_snr_gamma)
            per_image = per_image * (clipped / (snr + 1) if self.prediction_type == "v_prediction" else clipped / snr)
        return per_image.sum()

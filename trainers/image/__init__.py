"""Image LoRAs on Stable Diffusion 1.x / 2.x / SDXL (``task_type = "image-generation"``).

Importing this package registers the task; it loads no torch.  The data
check (``--check``) reads images and config files only; the model, the
latent cache and the training step import their libraries when called.
"""

from __future__ import annotations

from trainers.image.config import ImageConfig
from trainers.registry import Task, register


def _plan(config):
    from trainers.image.planning import plan_image

    return plan_image(config)


def _create(config, plan, accelerator):
    from trainers.image.task import ImageTask

    return ImageTask(config, plan, accelerator)


register(Task(
    task_type="image-generation",
    config_class=ImageConfig,
    summary="LoRA for Stable Diffusion 1.x / 2.x / SDXL (diffusers + peft): captioned images → kohya .safetensors",
    plan=_plan,
    create=_create,
))

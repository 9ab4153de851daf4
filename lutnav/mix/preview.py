"""Sample images of a LoRA or a blend, made with diffusers and stored as the entry's previews.

The base model comes from ``[models]`` in ``.lutnav/config.toml`` (a diffusers
folder, relative to the library or absolute). Every PNG carries the A1111
``parameters`` text chunk (prompt with ``<lora:…>`` tags, steps, seed, size), so
other tools read how it was made. diffusers is imported only in here; without it
a one-line message says which extra to install.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog.library import Library

from .errors import MissingExtra, MixError

DEFAULT_PROMPT = "a picture"
SAMPLER = "DDIM"


@dataclass
class Settings:
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int = 1
    steps: int = 20
    size: int = 512
    guidance: float = 7.0


@dataclass
class Shot:
    """One image to make: which LoRA files at which weights, and where it goes."""

    label: str
    loras: list[tuple[Path, str, float]]  # (weights file, A1111 name, weight)
    out: Path
    prompt: str
    negative_prompt: str = ""


def require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtra("previews need torch and diffusers, which are not installed") from None


def model_for(lib: Library, base: str | None, model: str | None = None) -> Path:
    """The diffusers folder to sample with: ``--model``, else ``[models].<base>``, else sd1."""
    if model is None:
        models = (lib.config or {}).get("models") or {}
        key = base if base in models else ("sd1" if "sd1" in models else None)
        if key is None:
            raise MixError(f"no base model configured for {base or 'this LoRA'}",
                           path=lib.root / ".lutnav" / "config.toml",
                           hint=f'add [models] {base if base and base != "unknown" else "sd1"} = '
                                '"path/to/diffusers-folder", or pass --model')
        model = str(models[key])
    path = Path(model).expanduser()
    path = path if path.is_absolute() else lib.root / path
    if path.is_file():
        raise MixError("single-file checkpoints are not supported for previews yet", path=path,
                       hint="point [models] at a diffusers folder (with model_index.json)")
    if not (path / "model_index.json").is_file():
        raise MixError("not a diffusers model folder (no model_index.json)", path=path,
                       hint="point [models] or --model at a diffusers folder")
    return path


_PIPELINES: dict[Path, object] = {}


def load_pipeline(folder: Path):
    """One pipeline per model folder per process (the grid reuses it across weights)."""
    require_diffusers()
    if folder not in _PIPELINES:
        import torch
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True,
                                                 safety_checker=None, requires_safety_checker=False)
        if torch.cuda.is_available():
            pipe = pipe.to("cuda")
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[folder] = pipe
    return _PIPELINES[folder]


def render(pipe, shot: Shot, s: Settings):
    """One image with ``shot``'s LoRAs applied at their weights; the pipeline is left clean."""
    import torch

    names = []
    try:
        for n, (file, _name, _w) in enumerate(shot.loras):
            adapter = f"lutnav_{n}"
            pipe.load_lora_weights(str(file), adapter_name=adapter)
            names.append(adapter)
        if names:
            pipe.set_adapters(names, adapter_weights=[w for _, _, w in shot.loras])
        device = "cuda" if torch.cuda.is_available() else "cpu"
        generator = torch.Generator(device=device).manual_seed(s.seed)
        result = pipe(prompt=shot.prompt, negative_prompt=shot.negative_prompt or None,
                      num_inference_steps=s.steps, guidance_scale=s.guidance, height=s.size,
                      width=s.size, generator=generator)
        return result.images[0]
    finally:
        if names:
            pipe.unload_lora_weights()


def a1111_parameters(shot: Shot, s: Settings, model: str) -> str:
    """The text A1111 writes into its PNGs, which Civitai and image browsers parse."""
    tags = " ".join(f"<lora:{name}:{w:g}>" for _, name, w in shot.loras)
    lines = [f"{shot.prompt} {tags}".strip()]
    if shot.negative_prompt:
        lines.append(f"Negative prompt: {shot.negative_prompt}")
    lines.append(f"Steps: {s.steps}, Sampler: {SAMPLER}, CFG scale: {s.guidance:g}, Seed: {s.seed}, "
                 f"Size: {s.size}x{s.size}, Model: {model}")
    return "\n".join(lines)


def save_png(image, path: Path, parameters: str) -> Path:
    """Atomic PNG write with the ``parameters`` text chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", parameters)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def free_preview_path(entry_file: Path) -> Path:
    """``<stem>.preview.png`` when free, else the next ``<stem>.preview.N.png``."""
    first = entry_file.with_name(f"{entry_file.stem}.preview.png")
    if not first.exists():
        return first
    n = 2
    while entry_file.with_name(f"{entry_file.stem}.preview.{n}.png").exists():
        n += 1
    return entry_file.with_name(f"{entry_file.stem}.preview.{n}.png")


def default_prompt(entries: list[dict]) -> str:
    words: list[str] = []
    for e in entries:
        words += [w for w in e.get("trigger_words") or [] if w not in words]
    return ", ".join([DEFAULT_PROMPT, *words])


def run_shots(model: Path, shots: list[Shot], s: Settings, progress=None) -> list[Path]:
    """Render and save every shot; ``progress(done, total, label)`` after each."""
    pipe = load_pipeline(model)
    written = []
    for done, shot in enumerate(shots, 1):
        image = render(pipe, shot, s)
        written.append(save_png(image, shot.out, a1111_parameters(shot, s, model.name)))
        if progress is not None:
            progress(done, len(shots), shot.label)
    return written

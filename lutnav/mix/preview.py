"""Sample images of a LoRA or a blend, made with diffusers and stored as the entry's previews.

The base model comes from ``[models]`` in ``.lutnav/config.toml``: a single-file
``.safetensors`` checkpoint as A1111 keeps them, or a diffusers folder, relative
to the library or absolute. Every PNG carries the A1111
``parameters`` text chunk (prompt with ``<lora:…>`` tags, steps, seed, size), so
other tools read how it was made. diffusers is imported only in here; without it
a one-line message says which extra to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catalog.files.durable import atomic_write
from catalog.index.library import Library
from catalog.progress import Progress, Work
from catalog.index.entry import Entry

from .errors import MissingExtra, MixError

DEFAULT_PROMPT = "a picture"
SAMPLER = "DDIM"


DEFAULT_STEPS = 20
DEFAULT_SIZE = 512


@dataclass
class Settings:
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int = 1
    steps: int | None = DEFAULT_STEPS  # None: from [preview] in the config (see preview_defaults)
    size: int | None = DEFAULT_SIZE
    guidance: float = 7.0


def preview_defaults(s: Settings, lib: Library) -> Settings:
    """Fill unset steps/size from ``[preview]`` in the library config, else the built-ins."""
    table = (lib.config or {}).get("preview") or {}
    for attr, default, lo, hi in (("steps", DEFAULT_STEPS, 1, 500), ("size", DEFAULT_SIZE, 64, 2048)):
        if getattr(s, attr) is not None:
            continue
        value = table.get(attr, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi \
                or (attr == "size" and value % 8):
            raise MixError(f"[preview] {attr} = {value!r}: expected a whole number from {lo} to {hi}"
                           + (" (a multiple of 8)" if attr == "size" else ""),
                           path=lib.root / ".lutnav" / "config.toml", hint="fix or remove the line")
        setattr(s, attr, value)
    return s


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


@dataclass(frozen=True)
class BaseModel:
    """What images are sampled with: a diffusers folder, or a single-file checkpoint
    read with the config folder ``config`` (``None``: the configs lutnav ships)."""

    path: Path
    family: str | None = None
    config: Path | None = None

    @property
    def single_file(self) -> bool:
        return self.path.is_file()

    @property
    def label(self) -> str:
        """The name A1111 writes as ``Model:`` (a checkpoint's stem, a folder's name)."""
        return self.path.stem if self.single_file else self.path.name


def model_for(lib: Library, base: str | None, model: str | None = None) -> BaseModel:
    """The model to sample with: ``--model``, else ``[models].<base>``, else sd1."""
    models = (lib.config or {}).get("models") or {}
    if model is None:
        key = base if base in models else ("sd1" if "sd1" in models else None)
        if key is None:
            raise MixError(f"no base model configured for {base or 'this LoRA'}",
                           path=lib.root / ".lutnav" / "config.toml",
                           hint=f'add [models] {base if base and base != "unknown" else "sd1"} = '
                                '"path/to/checkpoint.safetensors" (or a diffusers folder), or pass --model')
        path = _library_path(lib, str(models[key]))
    else:  # --model: as typed, from the current folder (else, as before, from the library)
        path = Path(model).expanduser()
        if not path.is_absolute() and not path.exists():
            path = _library_path(lib, model)
    return check_family(base_model_at(path, models, lib), base)


def check_family(found: BaseModel, base: str | None) -> BaseModel:
    """Refuse a checkpoint of another family than the LoRA's before anything is loaded.

    Loading one anyway ends in pages of "size mismatch" from torch; the family is
    read from configs and headers, so this costs milliseconds.
    """
    if base in ("sd1", "sd2", "sdxl") and found.family and found.family != base:
        raise MixError(f"{found.path.name} is {found.family}, the LoRA is {base}",
                       hint=f"pick a {base} checkpoint ([models] {base} in .lutnav/config.toml, or --model)")
    return found


def _library_path(lib: Library, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else lib.root / path


def base_model_at(path: Path, models: dict, lib: Library) -> BaseModel:
    """Check ``path`` is something diffusers can sample from, and read its family without torch.

    A single file's config folder comes from ``[models] <family>_config`` when set.
    """
    from trainers.errors import TrainerError
    from trainers.image.model import inspect
    from trainers.image.single_file import SHIPPED_FAMILIES

    if path.is_file() or path.suffix.lower() in (".safetensors", ".ckpt", ".pt", ".bin"):
        if not path.is_file():
            raise MixError("checkpoint file does not exist", path=path,
                           hint="fix the path in [models] or --model")
        try:
            info = inspect(str(path))
        except TrainerError as err:
            raise MixError(err.message, path=path, hint=err.hint or None) from None
        if info.family is None:
            raise MixError(f"not a Stable Diffusion checkpoint: {info.reason}", path=path,
                           hint="point [models] or --model at an SD1, SD2 or SDXL checkpoint")
        config = models.get(f"{info.family}_config")
        if config:
            config = _library_path(lib, str(config))
            if not config.is_dir():
                raise MixError(f"[models] {info.family}_config is not a folder", path=config,
                               hint="point it at a diffusers folder of the checkpoint's architecture")
        elif info.family not in SHIPPED_FAMILIES:
            raise MixError(f"{info.family} checkpoints need a config folder: the file does not say whether "
                           "it is a v-prediction model", path=path,
                           hint=f'add [models] {info.family}_config = "path/to/a-diffusers-folder-of-it" '
                                "(only its config and tokenizer files are read)")
        return BaseModel(path, info.family, config or None)
    if not (path / "model_index.json").is_file():
        raise MixError("not a diffusers model folder (no model_index.json) nor a .safetensors checkpoint",
                       path=path, hint="point [models] or --model at a checkpoint file or a diffusers folder")
    try:
        family = inspect(str(path)).family
    except TrainerError:
        family = None  # a pipeline lutnav cannot classify may still sample; diffusers decides
    return BaseModel(path, family)


_PIPELINES: dict[Path, object] = {}


def load_pipeline(model: BaseModel):
    """One pipeline per model per process (the grid reuses it across weights), sampling with
    DDIM so the ``Sampler:`` written into every PNG is true.

    The dtype is set, never left to the files: fp16 on a GPU, fp32 on the CPU (which lacks
    fast half kernels). Left alone, an fp16 folder loads its text encoder as fp16 beside
    fp32 LoRA layers and sampling stops with a dtype mismatch."""
    require_diffusers()
    if model.path not in _PIPELINES:
        import torch
        from diffusers import DDIMScheduler, DiffusionPipeline

        dtype = torch.float16 if torch.cuda.is_available() else torch.float32
        _quiet_loading()

        if model.single_file:
            from trainers.errors import TrainerError
            from trainers.image.single_file import load_single_file

            try:
                pipe = load_single_file(model.path, model.family, config=model.config, dtype=dtype)
            except TrainerError as err:
                raise MixError(err.message, path=model.path, hint=err.hint or None) from None
        else:
            pipe = DiffusionPipeline.from_pretrained(str(model.path), local_files_only=True, torch_dtype=dtype,
                                                     safety_checker=None, requires_safety_checker=False)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        if torch.cuda.is_available():
            pipe = pipe.to("cuda")
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[model.path] = pipe
    return _PIPELINES[model.path]


def _quiet_loading() -> None:
    """No loading bars from diffusers and transformers when stderr is not a terminal: piped,
    logged or in a test, their carriage-return bars are noise around lutnav's own lines."""
    import sys

    if sys.stderr.isatty():
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def render(pipe, shot: Shot, s: Settings):
    """One image with ``shot``'s LoRAs applied at their weights; the pipeline is left clean."""
    import torch

    names = []
    try:
        for n, (file, _name, _w) in enumerate(shot.loras):
            adapter = f"lutnav_{n}"
            try:
                pipe.load_lora_weights(str(file), adapter_name=adapter)
            except (RuntimeError, ValueError, KeyError) as err:
                raise MixError(lora_misfit(err), path=file,
                               hint="the checkpoint is not this LoRA's base model (same family, other "
                                    "shapes?): pick the checkpoint it was trained on in [models] or --model"
                               ) from None
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


def lora_misfit(err: Exception) -> str:
    """One line for what diffusers/torch say when a LoRA does not fit a pipeline
    (a "size mismatch" error runs to hundreds of lines, one per tensor)."""
    text = str(err)
    mismatches = text.count("size mismatch")
    first = next((ln.strip() for ln in text.splitlines() if "size mismatch" in ln), None)
    if mismatches and first:
        return f"does not fit the checkpoint: {mismatches} tensors of another shape (first: {first[:160]})"
    return f"does not load into the checkpoint: {text.splitlines()[0][:200] if text else type(err).__name__}"


def a1111_parameters(shot: Shot, s: Settings, model: str) -> str:
    """The text A1111 writes into its PNGs, which Civitai and image browsers parse."""
    from lutnav.prompt_tags import tag

    tags = " ".join(tag(name, w) for _, name, w in shot.loras)
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
    with atomic_write(path) as fh:
        image.save(fh, format="PNG", pnginfo=info)
    return path


def default_prompt(entries: list[Entry]) -> str:
    words: list[str] = []
    for e in entries:
        words += [w for w in e.trigger_words or [] if w not in words]
    return ", ".join([DEFAULT_PROMPT, *words])


def run_shots(model: BaseModel, shots: list[Shot], s: Settings) -> Work[list[Path]]:
    """Render and save every shot, yielding a :class:`Progress` after each; the paths."""
    pipe = load_pipeline(model)
    written = []
    for done, shot in enumerate(shots, 1):
        image = render(pipe, shot, s)
        written.append(save_png(image, shot.out, a1111_parameters(shot, s, model.label)))
        yield Progress(done, len(shots), shot.label)
    return written

"""The demo's base models: a tiny SD1 pipeline and a tiny Llama, built from configs in seconds.

With them every verb runs offline on the demo library — ``preview``, ``grid``,
``mix --preview``, ``chat`` and the LLM blend — and shows the whole pipeline.
Their weights are random: the images are noise and the replies are gibberish.
They live under ``.lutnav/demo-models/`` (the scanner never looks there), and
``.lutnav/config.toml`` points ``[models]`` at them — only when the library has no
config yet: a config the user wrote is never touched.

torch, diffusers and transformers come with ``lutnav[train]``; without them the
demo is written without models and says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from catalog.files.durable import atomic_write, current_umask
from catalog.files.textfile import loads_toml
from catalog.index.library import INDEX_DIR

from .demo import DEMO_LLAMA, DEMO_SD1_CHANNELS, DEMO_SD1_TEXT_MLP

MODELS_DIR = f"{INDEX_DIR}/demo-models"
SD1_DIR = f"{MODELS_DIR}/sd1"
LLM_DIR = f"{MODELS_DIR}/llama"
TRAIN_DIR = f"{INDEX_DIR}/demo-train"

#: a training run that finishes in seconds on the demo model (paths are relative to this file)
TRAIN_CONFIG = """\
# Written by `lutnav demo`: `lutnav train` on the demo's tiny SD1 model, a few steps on CPU.
task_type = "image-generation"
base_model = "../demo-models/sd1"
train_data_dir = "cats"
resolution = 64
lora_rank = 4
lora_alpha = 2
batch_size = 4
max_steps = 4
save_steps = 0
learning_rate = 1e-3
seed = 7
name = "demo_cat"
category = "character"
theme = "cats"
trigger_words = ["zzcat"]
"""

CONFIG = f"""\
# Written by `lutnav demo`. The models below are the demo's own: tiny, with random
# weights, so previews are noise and chat replies are gibberish — they show the pipeline.
# Point them at real models to see real pictures, e.g.
#   sd1 = "/path/to/v1-5-pruned-emaonly.safetensors"   (an A1111 checkpoint or a diffusers folder)
#   sdxl = "/path/to/sd_xl_base_1.0.safetensors"
#   llm = "/path/to/a/llama/folder"                    (a transformers model folder)
[models]
sd1 = "{SD1_DIR}"
llm = "{LLM_DIR}"

# Small, quick samples for the tiny models; remove these lines with a real checkpoint
# (the defaults are 20 steps at 512 px).
[preview]
steps = 4
size = 128
"""

NOISE_NOTE = ("the demo's base models are tiny and random: previews are noise and chat is gibberish; "
              "they show the pipeline. Point [models] in .lutnav/config.toml at real models for real output.")


@dataclass
class ModelsReport:
    written: list[str] = field(default_factory=list)  # library-relative folders and files made now
    notes: list[str] = field(default_factory=list)


def write_demo_models(root: Path) -> ModelsReport:
    """Write whatever of the demo models and config is missing under ``root``."""
    report = ModelsReport()
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        report.notes.append("no base models written: they need torch, diffusers and transformers "
                            "(pip install 'lutnav[train]'); preview, grid and chat need a model")
        return report
    from trainers.image.tiny import write_tiny_sd
    from trainers.text.tiny import write_tiny_llama

    _model(root, SD1_DIR, lambda d: write_tiny_sd(d, channels=DEMO_SD1_CHANNELS, cross_dim=768, text_layers=1,
                                                   text_mlp=DEMO_SD1_TEXT_MLP, seed=1337), report)
    _model(root, LLM_DIR, lambda d: write_tiny_llama(d, seed=1337, **DEMO_LLAMA), report)
    _training_example(root, report)
    config = root / INDEX_DIR / "config.toml"
    if config.exists():
        models = _configured(config)
        missing = [k for k in ("sd1", "llm") if k not in models]
        if missing:
            report.notes.append(f"{config} exists and was left alone; to use the demo models add "
                                + ", ".join(f'{k} = "{SD1_DIR if k == "sd1" else LLM_DIR}"' for k in missing)
                                + " under [models]")
    else:
        _atomic_text(config, CONFIG)
        report.written.append(f"{INDEX_DIR}/config.toml")
    return report


def _model(root: Path, rel: str, build, report: ModelsReport) -> None:
    """Build into a temp folder beside the target and rename: a model is there whole or not at all."""
    target = root.joinpath(*rel.split("/"))
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~current_umask())
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.written.append(rel)


def _training_example(root: Path, report: ModelsReport) -> None:
    """Ten captioned images and a config, so `lutnav train` runs offline too."""
    from trainers.image.tiny import write_image_set

    folder = root / TRAIN_DIR
    _model(root, f"{TRAIN_DIR}/cats", lambda d: write_image_set(d, 10, trigger="zzcat"), report)
    config = folder / "cats.toml"
    if not config.exists():
        _atomic_text(config, TRAIN_CONFIG)
        report.written.append(f"{TRAIN_DIR}/cats.toml")


def _configured(config: Path) -> dict:
    import tomllib

    try:
        return loads_toml(config.read_text("utf-8-sig")).get("models") or {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return {}


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        fh.write(text.encode("utf-8"))

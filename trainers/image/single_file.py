"""Loading an A1111-style single-file checkpoint offline, for sampling and training.

A ``.safetensors`` checkpoint holds weights in the original (LDM) layout but no
configs and no tokenizer, and diffusers' ``from_single_file`` fetches both from
the Hub unless it is handed a local folder. lutnav ships that folder for the
two families people keep as single files — SD 1.x and SDXL base — as package
data (``pipeline_configs/``: the diffusers configs, plus CLIP's BPE vocabulary
expanded into tokenizer files on first use), so nothing is ever downloaded.

SD 2.x checkpoints come as epsilon (512 px) and v-prediction (768 px) models
that the file alone does not tell apart, so they need an explicit config
folder: guessing would sample noise with no error.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from trainers.errors import ModelLoadError

SHIPPED = Path(__file__).with_name("pipeline_configs")
SHIPPED_FAMILIES = ("sd1", "sdxl")
_TOKENIZERS = {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"}  # folder -> pad token
_MATERIALISED: dict[str, Path] = {}


def checkpoint_family(path: Path) -> tuple[str | None, str]:
    """``(family, why)`` from the text-encoder tensors' names; ``(None, why)`` when none matches."""
    from catalog.files.header import read_header

    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError("single-file checkpoints must be .safetensors (pickled .ckpt files are never "
                             "loaded)", path=path, hint="use the .safetensors release of the checkpoint")
    names = read_header(path).tensors
    if any(n.startswith("conditioner.embedders.1.") for n in names):
        return "sdxl", "two text encoders (conditioner.embedders.1)"
    if any(n.startswith("cond_stage_model.model.") for n in names):
        return "sd2", "an OpenCLIP text encoder (cond_stage_model.model)"
    if any(n.startswith("cond_stage_model.transformer.") for n in names):
        return "sd1", "a CLIP-L text encoder (cond_stage_model.transformer)"
    return None, "no Stable Diffusion text encoder among the tensors"


def shipped_config(family: str) -> Path:
    """The diffusers config folder lutnav ships for ``family``, with tokenizers written out once
    per process (into a temporary folder, so a read-only install works)."""
    if family not in SHIPPED_FAMILIES:
        raise ModelLoadError(f"lutnav ships no pipeline config for {family} single-file checkpoints",
                             hint="SD2 files do not say whether they are v-prediction models; point the "
                                  "config setting at a diffusers folder of the same model (only its config "
                                  "files are read), or convert the checkpoint to a diffusers folder")
    if family not in _MATERIALISED:
        from trainers.image.clip_vocab import write_clip_tokenizer

        root = Path(tempfile.mkdtemp(prefix=f"lutnav-{family}-config-"))
        atexit.register(shutil.rmtree, root, True)
        folder = root / family
        shutil.copytree(SHIPPED / family, folder)
        for name, pad in _TOKENIZERS.items():
            if name == "tokenizer" or family == "sdxl":
                write_clip_tokenizer(folder / name, pad_token=pad)
        _MATERIALISED[family] = folder
    return _MATERIALISED[family]


def load_single_file(path: Path, family: str, *, config: Path | None = None, dtype=None):
    """The diffusers pipeline of checkpoint ``path``; ``config`` overrides the shipped configs
    (a diffusers folder of the same architecture — only its config and tokenizer files are read)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(config) if config is not None else shipped_config(family)
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError("the config folder for a single-file checkpoint needs model_index.json",
                             path=folder, hint="point it at a diffusers folder of the same architecture")
    cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    try:
        return cls.from_single_file(str(path), config=str(folder), local_files_only=True, torch_dtype=dtype)
    except Exception as err:  # diffusers raises many kinds for a file that does not fit the config
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot load the {family} single-file checkpoint ({first})", path=path,
                             hint="check the file is a complete SD checkpoint of that family (UNet, VAE and "
                                  "text encoder); a fine-tune with another architecture needs a config "
                                  "folder of its own") from None

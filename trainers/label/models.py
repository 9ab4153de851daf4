"""Finding a captioning model on this machine — a path, or the local Hugging Face cache; never a download.

Two kinds are understood, told apart by their files:

* a captioner: a transformers folder (``config.json``) of an image-to-text
  model — BLIP, a VisionEncoderDecoder (ViT + GPT-2 style), or any model
  transformers maps to ``AutoModelForImageTextToText``;
* a tagger: a WD14-style ONNX classifier, ``model.onnx`` + ``selected_tags.csv``.

With no model given, the usual public ones are looked for in the local cache
and, when none is there, the error names the command that fetches one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainers.errors import ModelLoadError

#: looked for in the local cache when no --model is given, in this order
DEFAULT_MODELS = ("Salesforce/blip-image-captioning-large", "Salesforce/blip-image-captioning-base",
                  "SmilingWolf/wd-eva02-large-tagger-v3", "SmilingWolf/wd-v1-4-moat-tagger-v2",
                  "SmilingWolf/wd-vit-tagger-v3")
TAGGER_FILES = ("model.onnx", "selected_tags.csv")


@dataclass(frozen=True)
class LabelModel:
    kind: str     # "captioner" | "tagger"
    path: Path
    name: str


def _cached(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or an id the hub library refuses
        return None


def _kind(folder: Path) -> str | None:
    if all((folder / name).is_file() for name in TAGGER_FILES):
        return "tagger"
    if (folder / "config.json").is_file():
        return "captioner"
    return None


def find_model(spec: str | None) -> LabelModel:
    """The model named by ``spec`` (a folder or a hub id), or the first default found in the cache."""
    if spec is None:
        for repo in DEFAULT_MODELS:
            folder = _cached(repo)
            if folder is not None and _kind(folder):
                return LabelModel(_kind(folder), folder, repo)
        raise ModelLoadError(
            "no captioning model is available locally, and lutnav never downloads one on its own",
            hint=f"download one first (`hf download {DEFAULT_MODELS[1]}` for captions, or "
                 f"`hf download {DEFAULT_MODELS[3]}` for WD14 tags) or pass --model FOLDER")
    path = Path(spec).expanduser()
    folder = path if path.exists() else _cached(spec)
    if folder is None:
        raise ModelLoadError(f"--model {spec!r} is not a folder here and is not in the local Hugging Face cache",
                             hint=f"download it first: hf download {spec}")
    if folder.is_file():
        folder = folder.parent
    kind = _kind(folder)
    if kind is None:
        raise ModelLoadError("not a captioning model: expected config.json (a transformers image-to-text model) "
                             f"or {' + '.join(TAGGER_FILES)} (a WD14 tagger)", path=folder)
    return LabelModel(kind, folder, spec)

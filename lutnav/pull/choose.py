"""Picking what to pull from a file list, before anything is downloaded.

A repo (or a local folder or zip) lists files with sizes; from that list alone we
find the LoRA candidates — ``.safetensors`` files and PEFT adapter folders — and
set aside what must never be fetched: pickles (``.ckpt/.pt/.pth/.bin`` can run code
when loaded) and the parts of a full model (diffusers component folders, sharded
checkpoints).  Several candidates are a question for the user: asked on a
terminal, answered with ``--file``/``--all`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ChoiceNeeded, NoLoraFound, PickleOnly, UnsafeName
from .hub import RemoteFile
from .place import check_relative
from lutnav.output import human_size

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
PEFT_CONFIG, PEFT_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
#: folders of a diffusers pipeline: their weights are a full model, not a LoRA
MODEL_PARTS = {
    "unet", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "tokenizer",
    "tokenizer_2", "scheduler", "safety_checker", "feature_extractor", "image_encoder", "prior",
    "decoder",
}
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.safetensors$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

#: asks the user to pick among labels; returns the chosen indices, or None when it cannot ask
Asker = Callable[[Sequence[str]], "list[int] | None"]


@dataclass(frozen=True, slots=True)
class Pick:
    """One entry to pull: a LoRA file, or a PEFT folder (``path`` '' is the repo root)."""

    path: str
    is_folder: bool
    files: tuple[RemoteFile, ...]

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """The last part of the path, the default entry name ('' for a root PEFT folder)."""
        base = self.path.rsplit("/", 1)[-1]
        return base[: -len(".safetensors")] if not self.is_folder else base

    @property
    def label(self) -> str:
        shown = (self.path or ".") + ("/ (PEFT adapter)" if self.is_folder else "")
        return f"{shown} ({human_size(self.size)})" if self.size is not None else shown


def candidates(files: Sequence[RemoteFile]) -> tuple[list[Pick], list[str]]:
    """LoRA candidates and the pickles seen, from a file list."""
    by_path = {f.path: f for f in files}
    folders = sorted({f.path.rsplit("/", 1)[0] if "/" in f.path else "" for f in files
                      if f.path.endswith(PEFT_CONFIG)})
    picks: list[Pick] = []
    in_folder: set[str] = set()
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        if prefix + PEFT_WEIGHTS in by_path:
            members = (by_path[prefix + PEFT_CONFIG], by_path[prefix + PEFT_WEIGHTS])
            picks.append(Pick(folder, True, members))
            in_folder.add(prefix + PEFT_WEIGHTS)
    pickles = []
    for f in files:
        lower = f.path.lower()
        if lower.endswith(PICKLE_SUFFIXES):
            pickles.append(f.path)
        elif lower.endswith(".safetensors") and f.path not in in_folder and not _model_part(f.path):
            picks.append(Pick(f.path, False, (f,)))
    return sorted(picks, key=lambda p: p.path), sorted(pickles)


def _model_part(path: str) -> bool:
    parts = path.split("/")
    return bool(MODEL_PARTS & set(parts[:-1])) or bool(_SHARD.search(path)) or \
        parts[-1].startswith("diffusion_pytorch_model")


def choose(where: str, files: Sequence[RemoteFile], wanted: Sequence[str], take_all: bool,
           ask: Asker | None) -> list[Pick]:
    """The picks to pull from ``where`` (a repo id or a local source), or a clear refusal."""
    picks, pickles = candidates(files)
    if not picks:
        if pickles:
            raise PickleOnly(f"{where}: only pickled weights ({', '.join(pickles[:5])}), no .safetensors")
        shown = ", ".join(f.path for f in files[:8]) or "no files"
        raise NoLoraFound(f"{where}: no LoRA (.safetensors file or PEFT adapter folder) here ({shown})")
    if wanted:
        chosen = [_find(where, picks, pickles, name) for name in wanted]
    elif len(picks) == 1 or take_all:
        chosen = picks
    else:
        answer = ask([p.label for p in picks]) if ask is not None else None
        if not answer:
            listing = "; ".join(p.label for p in picks)
            raise ChoiceNeeded(f"{where} holds {len(picks)} LoRAs: {listing}")
        chosen = [picks[i] for i in answer]
    for pick in dict.fromkeys(chosen):
        for f in pick.files:
            check_relative(f.path, f"{where}: file name")
    return list(dict.fromkeys(chosen))


def _find(where: str, picks: list[Pick], pickles: list[str], name: str) -> Pick:
    name = name.strip().strip("/")
    exact = [p for p in picks if p.path == name]
    if exact:
        return exact[0]
    by_base = [p for p in picks if p.path.rsplit("/", 1)[-1] == name or (p.is_folder and p.name == name)]
    if len(by_base) == 1:
        return by_base[0]
    if name in pickles or name.lower().endswith(PICKLE_SUFFIXES):
        raise PickleOnly(f"{where}: {name} is a pickle; lutnav never downloads or opens those")
    listing = "; ".join(p.label for p in picks)
    raise ChoiceNeeded(f"{where}: --file {name!r} is not one of its LoRAs: {listing}",
                       hint="pass one of the names listed")


def preview_files(files: Sequence[RemoteFile], refs: Sequence[str], limit: int = 4,
                  max_bytes: int = 20 * 1024 * 1024) -> list[RemoteFile]:
    """Widget images the card names that the repo holds (relative refs only), bounded."""
    by_path = {f.path: f for f in files}
    out: list[RemoteFile] = []
    for ref in refs:
        ref = ref.strip()
        ref = ref[2:] if ref.startswith("./") else ref
        try:
            check_relative(ref)
        except UnsafeName:
            continue
        item = by_path.get(ref)
        if item is None or not ref.lower().endswith(IMAGE_SUFFIXES) or item in out:
            continue
        if item.size is not None and item.size > max_bytes:
            continue
        out.append(item)
        if len(out) == limit:
            break
    return out

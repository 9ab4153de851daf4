"""Names from outside, and where a pulled entry lands in the library.

Repo file names, zip member names and README text are hostile input: a name that
tries to climb (``..``), is absolute, or carries a drive or a backslash is refused
outright (never "fixed" into something else); a name that is merely odd (spaces,
colons, control characters) is cleaned into a safe file stem.  The final target
is checked to resolve inside the library, and an existing different file is never
replaced unless the user said ``--overwrite`` — otherwise the new entry gets a
``_2``-style suffix.  A name whose card belongs to another file (``x.ckpt``'s
``x.toml``, a project file, a link) is never used: the entry takes the next suffix.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from catalog.cards.card_slot import card_slot
from catalog.errors import PathOutsideLibrary
from catalog.index.library import Library
from catalog.files.preview_names import preview_path
from catalog.cards.sidecars import card_path

from .errors import UnsafeName
from catalog.files.durable import file_sha256

LORA_SUFFIX = ".safetensors"
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt"}
MAX_STEM = 96
_ODD = re.compile(r"[^\w.\-]+", re.UNICODE)
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_relative(path: str, what: str = "file name") -> str:
    """A '/'-separated relative path that stays where it is put, or ``UnsafeName``."""
    problem = None
    if not path or "\x00" in path:
        problem = "is empty or holds a NUL byte"
    elif path.startswith(("/", "\\")) or _DRIVE.match(path):
        problem = "is an absolute path"
    elif "\\" in path:
        problem = "holds a backslash (a Windows path separator)"
    elif any(part in ("..", "") for part in path.split("/")):
        problem = "climbs out of its folder with '..' (or has an empty part)"
    elif any(unicodedata.category(ch) == "Cc" for ch in path):
        problem = "holds control characters"
    if problem:
        raise UnsafeName(f"{what} {path!r} {problem}")
    return path


def clean_stem(text: str, fallback: str = "lora") -> str:
    """A safe file stem from a name found outside: spaces and odd characters become ``_``."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = _ODD.sub("_", text)
    text = re.sub(r"_{2,}", "_", text).strip("._-")
    if text.lower().endswith(LORA_SUFFIX):
        text = text[: -len(LORA_SUFFIX)].rstrip(" ._-")
    return text[:MAX_STEM].rstrip("._-") or fallback


def theme_name(name: str, fallback: str) -> str:
    """``watercolor-lora`` → ``watercolor``: a repo or folder name without LoRA jargon."""
    words = [w for w in clean_stem(name, fallback).replace("-", "_").split("_")
             if w and w.lower() not in {"lora", "loras", "lycoris", "locon", "peft", "adapter"}]
    return "_".join(words).lower() or fallback


def user_component(text: str, what: str) -> str:
    """``--category``/``--theme``/``--name`` from the user: one plain folder or file name."""
    check_relative(text, f"--{what}")
    if "/" in text or text.startswith("."):
        raise UnsafeName(f"--{what} {text!r} must be a single name (no '/', not starting with '.')")
    return text


@dataclass(frozen=True, slots=True)
class Target:
    """Where one entry goes: ``folder/stem.safetensors`` or the PEFT folder ``folder/stem``."""

    folder: Path
    stem: str
    is_folder: bool

    @property
    def weights(self) -> Path:
        return self.folder / self.stem if self.is_folder else self.folder / f"{self.stem}{LORA_SUFFIX}"

    @property
    def card(self) -> Path:
        return self.weights / "lutnav.toml" if self.is_folder else card_path(self.weights)

    def preview(self, index: int, suffix: str) -> Path:
        """Where preview ``index`` (0-based) goes."""
        return preview_path(self.weights, index + 1, suffix, is_folder=self.is_folder)


def choose_target(lib: Library, category: str, theme: str | None, stem: str, *, is_folder: bool,
                  staged: Path, overwrite: bool, taken_names: set[str] = frozenset()) -> tuple[Target, str]:
    """The target and what happens there: ``new``, ``same`` (already there) or ``replace``.

    A new entry never takes a name an entry elsewhere already has (``taken_names``):
    two entries of one name would make every verb that takes the name ambiguous.
    """
    folder = lib.root / category / theme if theme else lib.root / category
    inside(lib, folder)
    for n in range(1, 1000):
        target = Target(folder, stem if n == 1 else f"{stem}_{n}", is_folder)
        there = target.weights.exists() or target.weights.is_symlink()
        if not there and target.stem in taken_names:
            continue  # another entry elsewhere has this name: it would make the name ambiguous
        if there and same_content(staged, target.weights):
            return target, "same"
        slot = None if is_folder else card_slot(target.weights, is_folder=False)
        if slot is not None and slot.taken_by is not None:
            continue  # that card is someone else's: never written, whatever the flags
        if not there and (slot is None or slot.free):
            return target, "new"
        if overwrite and n == 1:
            return target, "replace"
    raise UnsafeName(f"{folder}: no free name for {stem!r} after 999 tries")


def inside(lib: Library, path: Path) -> None:
    """Refuse a target that resolves outside the library (a symlinked category, say)."""
    real = Path(os.path.realpath(path))
    if real != lib.root and lib.root not in real.parents:
        raise PathOutsideLibrary(f"resolves to {real}, outside the library {lib.root}", path=path)


def same_content(staged: Path, existing: Path) -> bool:
    if staged.is_dir() != existing.is_dir():
        return False
    if staged.is_dir():
        names = ("adapter_model.safetensors", "adapter_config.json")
        return all(_same_file(staged / n, existing / n) for n in names)
    return _same_file(staged, existing)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
    except OSError:
        return False
    return file_sha256(a) == file_sha256(b)



def move_into_place(staged: Path, target: Target, trash: Path) -> None:
    """Rename the verified weights into the library (same filesystem: atomic for a file).

    A replaced PEFT folder is first renamed into ``trash`` (inside ``.lutnav``) and
    deleted only after the new one is in place; its card, previews and notes move
    over to the new folder (see :func:`carry_extras`).
    """
    target.folder.mkdir(parents=True, exist_ok=True)
    dest = target.weights
    if not target.is_folder:
        os.replace(staged, dest)
        return
    old = None
    if dest.exists():
        carry_extras(dest, staged)
        old = trash / f"old-{dest.name}"
        os.rename(dest, old)
    try:
        os.rename(staged, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def carry_extras(old: Path, new: Path) -> None:
    """Copy the files of an old PEFT folder that the new one lacks (card, previews, notes);
    weights of any kind stay behind."""
    for item in old.iterdir():
        if item.suffix.lower() in WEIGHT_SUFFIXES:
            continue
        if item.is_file() and not item.is_symlink() and not (new / item.name).exists():
            shutil.copy2(item, new / item.name)

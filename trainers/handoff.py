"""Filing a trained LoRA into the library, with its card, and indexing it.

A PEFT adapter lands as ``<library>/<category>/<theme>/<name>/`` with a
``lutnav.toml`` card inside; a single-file LoRA as ``<name>.safetensors``
with ``<name>.toml`` (and previews) beside it.  The entry is assembled under
a hidden name and renamed into place, so a scan never sees half of it, then
the library is re-scanned (incrementally: only the new entry is read).

:func:`check_filing` runs before training too, so a name that is taken (or a
``<name>.toml`` that belongs to another file) is refused before hours of work.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.checkpoint import STATE_DIR
from trainers.errors import HandoffError

CARD_IN_FOLDER = "lutnav.toml"


@dataclass
class Filed:
    rel: str          # library-relative path, as ``lutnav ls`` shows it
    path: Path
    replaced: bool


OVERWRITE_FLAG = "`overwrite = true` in the config"


def check_filing(root: str | Path, *, category: str, theme: str, name: str, is_folder: bool,
                 suffix: str = ".safetensors", overwrite: bool = False):
    """Where the entry will go and the slot of its card; refuses a taken name before anything
    is written (``HandoffError``), and a card name that belongs to another file or holds a
    card that ``overwrite`` does not allow replacing (``CardTaken``/``CardExists``)."""
    from catalog.cards.card_slot import claim_card

    dest = Path(root).expanduser().resolve() / category / theme / (name if is_folder else name + suffix)
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise HandoffError("the library already has an entry of this name", path=dest)
    slot = None if is_folder else claim_card(dest, replace=overwrite, is_folder=False, fresh=True,
                                             flag=OVERWRITE_FLAG)
    return dest, slot


def file_into_library(root: str | Path, artifact: str | Path, *, category: str, theme: str, name: str,
                      card: dict[str, Any], previews: list[Path] = (), overwrite: bool = False) -> Filed:
    """Copy ``artifact`` (an adapter folder or a LoRA file) into the library with ``card``."""
    from catalog.index.library import Library

    lib = Library(root)
    artifact = Path(artifact)
    dest, slot = check_filing(lib.root, category=category, theme=theme, name=name,
                              is_folder=artifact.is_dir(), suffix=artifact.suffix, overwrite=overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    replaced = dest.exists()
    card = clean_card(card)
    if artifact.is_dir():
        _place_folder(artifact, dest, card)
    else:
        _place_file(artifact, dest, card, previews, slot)
    lib.scan_all()
    return Filed(lib.relpath(dest), dest, replaced)


def clean_card(card: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: drop ``None`` values, also inside tables and lists."""
    if isinstance(card, dict):
        return {k: clean_card(v) for k, v in card.items() if v is not None}
    if isinstance(card, (list, tuple)):
        return [clean_card(v) for v in card if v is not None]
    return card


def _place_folder(artifact: Path, dest: Path, card: dict[str, Any]) -> None:
    from catalog.cards.card_file import write_card

    staging = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(artifact, staging, ignore=shutil.ignore_patterns(STATE_DIR, CARD_IN_FOLDER))
        write_card(staging / CARD_IN_FOLDER, card, expected_digest=None)
        _swap_in(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _place_file(artifact: Path, dest: Path, card: dict[str, Any], previews, slot) -> None:
    from catalog.cards.card_file import write_card
    from catalog.files.durable import atomic_write
    from catalog.files.preview_names import preview_path

    # the LoRA appears last, once its card and previews are in place
    with atomic_write(dest) as out, open(artifact, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        # replacing the entry (allowed by check_filing) replaces its card too
        write_card(slot.path, card, expected_digest=slot.digest, fresh=True)
        for n, preview in enumerate(previews, 1):
            shutil.copyfile(preview, preview_path(dest, n, Path(preview).suffix, is_folder=False))


def _swap_in(staging: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()

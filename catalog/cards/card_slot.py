"""Where the card of a LoRA goes, and whether a command may write it there.

Every command that makes a LoRA file — ``mix --out``, ``convert``, ``pull``,
``train``, ``demo`` — asks :func:`claim_card` before it writes anything, so a
refusal never comes after a merge or a download was already written.  The card
of ``x.safetensors`` is ``x.toml``, a name other files may hold:

- another entry's card (``x.ckpt`` shares ``x.toml``, even before it has one), a project file
  (``pyproject.toml`` for ``--out pyproject.safetensors``), a link or a folder:
  never written, whatever the flags (:class:`CardTaken`);
- a lutnav card of the same LoRA, or one left behind by a LoRA that is gone:
  written only when the user said so (``--overwrite`` or the command's own flag,
  else :class:`CardExists`).

Writing the LoRA next to such a file would make it that file's card, so a command
that writes no card of its own asks too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.cards.card import FIELD_KINDS, check_card_dict
from catalog.cards.card_file import digest, parse_card_bytes, read_card_bytes
from catalog.errors import CardError, CardExists, CardTaken, SidecarError
from catalog.cards.sidecars import card_path
from catalog.index.walk import LORA_SUFFIX, PICKLE_SUFFIXES


@dataclass(frozen=True)
class CardSlot:
    """What is at the card's name now."""

    path: Path
    lora: Path
    #: sha256 of the card there (pass to ``write_card``); ``None``: no card yet
    digest: str | None = None
    #: its values as read (``write_card(base=...)``)
    values: dict[str, Any] | None = None
    #: why no card may be written here, whatever the flags; ``None`` when one may
    taken_by: str | None = None
    #: values in the card that break the schema (a merge onto it would fail)
    problems: list[str] = field(default_factory=list)

    @property
    def free(self) -> bool:
        return self.digest is None and self.taken_by is None


def card_slot(lora: str | Path, *, is_folder: bool | None = None) -> CardSlot:
    """Look at the name where ``lora``'s card goes (``lora`` may not exist yet)."""
    lora = Path(lora)
    folder = lora.is_dir() if is_folder is None else is_folder
    path = card_path(lora, folder)
    owner = None if folder else _other_owner(lora)
    if owner is not None:  # even before that file has a card, the name is its card's
        return CardSlot(path, lora, taken_by=f"belongs to {owner} (its card)")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return CardSlot(path, lora)
    except OSError as err:
        return CardSlot(path, lora, taken_by=f"cannot be looked at ({err.strerror})")
    if stat.S_ISLNK(st.st_mode):
        return CardSlot(path, lora, taken_by="is a link")
    if not stat.S_ISREG(st.st_mode):
        return CardSlot(path, lora, taken_by="is not a regular file")
    try:
        data = read_card_bytes(path)
        raw = parse_card_bytes(path, data)
    except SidecarError as err:
        return CardSlot(path, lora, taken_by=f"is not a lutnav card ({err.message})")
    except OSError as err:
        return CardSlot(path, lora, taken_by=f"cannot be read ({err.strerror})")
    _, problems = check_card_dict(raw)
    foreign = [key for key, _ in problems if key not in FIELD_KINDS]
    if foreign:
        return CardSlot(path, lora, taken_by=f"is not a lutnav card (it holds `{foreign[0]}`, not a card field)")
    return CardSlot(path, lora, digest(data), raw,
                    problems=[message for key, message in problems if key in FIELD_KINDS])


def claim_card(lora: str | Path, *, replace: bool, is_folder: bool | None = None,
               fresh: bool = False, flag: str = "--overwrite") -> CardSlot:
    """The slot for ``lora``'s card, or the one-line refusal that stops the command first.

    ``replace``: the user allowed replacing an existing card (``flag`` names how, for
    the hint).  ``fresh``: the writer replaces the card as a whole rather than
    setting some of its fields, so a bad value already in it does not matter.
    """
    slot = card_slot(lora, is_folder=is_folder)
    name = Path(lora).name
    if slot.taken_by is not None:
        raise CardTaken(f"{slot.taken_by}; lutnav will not write the card of {name} there", path=slot.path)
    if slot.digest is None:
        return slot
    if not replace:
        what = (f"already holds the card of {name}" if slot.lora.exists()
                else f"is already there, a card with no {name} beside it")
        raise CardExists(what, path=slot.path,
                         hint=f"to replace it: {flag}; or choose another name for the output")
    if slot.problems and not fresh:
        raise CardError("; ".join(slot.problems), path=slot.path,
                        hint="fix or remove that value in the card first; nothing was written")
    return slot


def _other_owner(lora: Path) -> str | None:
    """A file beside ``lora`` whose card has the same name (``x.ckpt`` for ``x.safetensors``)."""
    stem = lora.name[: -len(LORA_SUFFIX)] if lora.name.endswith(LORA_SUFFIX) else lora.stem
    for suffix in (LORA_SUFFIX, *PICKLE_SUFFIXES):
        other = lora.with_name(stem + suffix)
        if other.name != lora.name and os.path.lexists(other):
            return other.name
    return None

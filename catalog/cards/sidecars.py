"""Every card that can sit beside a LoRA, read together and merged by precedence.

A library collects sidecars from many tools over the years; they disagree,
break, and point at files elsewhere.  This module names them, has each read with
a size bound (:mod:`catalog.cards.sidecar_reader`), turns every failure into a warning
(the LoRA is indexed anyway), and merges the fields in the documented order:
card > A1111 > Lora-Manager > Civitai / StabilityMatrix > folder README >
Hub model card > header metadata.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.cards.card import FIELD_KINDS
from catalog.cards.field_values import coerce, merge_layers
from catalog.files.preview_names import IMAGE_SUFFIXES, numbered_previews
from catalog.cards.sidecar_formats import (
    Parsed, from_a1111, from_civitai, from_lora_manager, from_stability_matrix,
)
from catalog.cards.sidecar_reader import MAX_SIDECAR_BYTES, SidecarReader

__all__ = [
    "CardResult", "JSON_SIDECARS", "MAX_SIDECAR_BYTES", "PEFT_CARD_NAME",
    "card_path", "preview_root", "read_entry_cards", "sidecar_paths",
]

PEFT_CARD_NAME = "lutnav.toml"
FOLDER_README = "README.md"

#: (source, file suffix after the stem, mapper), in precedence order
JSON_SIDECARS: tuple[tuple[str, str, Callable[[dict[str, Any]], Parsed]], ...] = (
    ("a1111", ".json", from_a1111),
    ("lora-manager", ".metadata.json", from_lora_manager),
    ("civitai", ".civitai.info", from_civitai),
    ("stability-matrix", ".cm-info.json", from_stability_matrix),
)


@dataclass
class CardResult:
    #: field → (value, source); sources are those of ``fields.SOURCE_ORDER`` or a header label
    fields: dict[str, tuple[Any, str]]
    #: existing preview images, ``/``-separated, relative to ``preview_root(entry)``
    previews: list[str]
    warnings: list[str]
    #: sha256 of the card bytes as read (pass to ``write_card``); None when there is no card
    card_digest: str | None
    card_path: Path
    #: source → sidecar file it was read from (relative to the entry's folder)
    files: dict[str, str] = field(default_factory=dict)


def _is_folder(entry: str, is_folder: bool | None) -> bool:
    return os.path.isdir(entry) if is_folder is None else is_folder


def card_path(entry_path: str | Path, is_folder: bool | None = None) -> Path:
    """Where lutnav's card lives: ``x.toml`` beside a file, ``lutnav.toml`` inside a PEFT folder."""
    entry_path = Path(entry_path)
    if _is_folder(os.fspath(entry_path), is_folder):
        return entry_path / PEFT_CARD_NAME
    return entry_path.parent / f"{entry_path.stem}.toml"


def preview_root(entry_path: str | Path, is_folder: bool | None = None) -> Path:
    """The folder previews must stay inside and that ``CardResult.previews`` are relative to:
    the file's folder, or the PEFT folder itself (so its previews travel with it)."""
    entry_path = Path(entry_path)
    return entry_path if _is_folder(os.fspath(entry_path), is_folder) else entry_path.parent


_FILE_PREVIEWS = tuple(f".preview{s}" for s in IMAGE_SUFFIXES) + IMAGE_SUFFIXES


def _preview_names(entry: str, is_folder: bool) -> list[str]:
    """Conventional previews: ``x.preview.png`` first (A1111/Civitai), then ``x.png``;
    inside a PEFT folder ``preview.png`` and ``<name>.preview.png``."""
    if is_folder:
        inner = os.path.join(entry, "preview")
        named = os.path.join(entry, os.path.basename(entry))
        return [inner + s for s in IMAGE_SUFFIXES] + [named + ".preview" + s for s in IMAGE_SUFFIXES]
    base = os.path.splitext(entry)[0]
    return [base + s for s in _FILE_PREVIEWS]


def _numbered(reader: SidecarReader, entry: str, is_folder: bool) -> list[str]:
    """Numbered previews (``x.preview.2.png``) that exist; from the folder listing when kept."""
    folder = entry if is_folder else os.path.dirname(entry)
    names = None if is_folder else reader.names
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return []
    stem = "preview" if is_folder else os.path.splitext(os.path.basename(entry))[0]
    return [os.path.join(folder, name) for name in numbered_previews(names, stem)]


def sidecar_paths(entry_path: str | Path) -> list[Path]:
    """Every file whose change should make a rescan re-read this entry's cards."""
    entry = os.fspath(entry_path)
    is_folder = os.path.isdir(entry)
    paths = [card_path(entry, is_folder)]
    if is_folder:
        paths.append(Path(entry, FOLDER_README))
    else:
        base = os.path.splitext(entry)[0]
        paths += [Path(base + suffix) for _, suffix, _ in JSON_SIDECARS]
    paths += [Path(p) for p in _preview_names(entry, is_folder)]
    return paths + [Path(os.path.dirname(entry), FOLDER_README)]


def read_entry_cards(
    entry_path: str | Path,
    header_fields: dict[str, Any],
    header_sources: dict[str, str],
    *,
    readme_cache: dict | None = None,
) -> CardResult:
    """Read and merge every card of one entry; never raises for a bad sidecar.

    ``header_fields`` are card fields the caller took from the safetensors header,
    ``header_sources`` their labels ("modelspec", "kohya ss_*"); they rank last.
    ``readme_cache`` (any dict the caller keeps for a scan) holds parsed folder
    READMEs and folder listings, so a folder of 500 LoRAs is listed and its
    README parsed once, not 500 times.
    """
    entry = os.path.abspath(os.fspath(entry_path))
    is_folder = os.path.isdir(entry)
    folder = os.path.dirname(entry)
    reader = SidecarReader(folder, entry if is_folder else folder, readme_cache)
    layers: list[tuple[str, dict[str, Any]]] = []
    refs: list[tuple[str, list[str], str]] = []  # (base folder, paths as written, label)

    cpath = os.path.join(entry, PEFT_CARD_NAME) if is_folder else os.path.splitext(entry)[0] + ".toml"
    data = reader.read(cpath)
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    card = reader.card(cpath, data) if data is not None else None
    if card is not None:
        refs.append((os.path.dirname(cpath), card.pop("previews", []), reader.label(cpath)))
        layers.append(("card", card))

    if is_folder:
        stem = os.path.basename(entry)
    else:
        base = os.path.splitext(entry)[0]
        stem = os.path.basename(base)
        for source, suffix, mapper in JSON_SIDECARS:
            parsed = reader.json_sidecar(base + suffix, mapper, source)
            if parsed is not None:
                layers.append((source, parsed.fields))
                refs.append((folder, parsed.preview_refs, reader.label(base + suffix)))

    section = reader.readme_section(os.path.join(folder, FOLDER_README), stem, readme_cache)
    if section is not None:
        layers.append(("readme", section))

    if is_folder:
        hub_path = os.path.join(entry, FOLDER_README)
        parsed = reader.hub_card(hub_path)
        if parsed is not None:
            layers.append(("hub-card", parsed.fields))
            refs.append((entry, parsed.preview_refs, reader.label(hub_path)))

    for name, value in header_fields.items():
        if name in FIELD_KINDS and name != "previews":
            label = header_sources.get(name, "header")
            try:
                checked = coerce(FIELD_KINDS[name], value)
            except ValueError as err:
                reader.warnings.append(f"header ({label}) `{name}`: expected {err}; ignored")
                continue
            layers.append((label, {name: checked}))

    return CardResult(
        fields=merge_layers(layers),
        previews=reader.previews(_preview_names(entry, is_folder) + _numbered(reader, entry, is_folder),
                                 refs),
        warnings=reader.warnings,
        card_digest=digest,
        card_path=Path(cpath),
        files=reader.files,
    )

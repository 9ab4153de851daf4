"""What a lutnav export carries besides files: where the entry lived, and its README notes.

A folder ``README.md`` holds notes for every LoRA of its folder, so it cannot
travel whole; the entry's own section does, word for word, in a small manifest
(``lutnav-export.json``) beside the weights.  ``lutnav pull`` of such a zip puts
the entry back under the same category and theme, adds the section to the
folder README there (never touching a section that is already there), and
copies the card byte for byte, so ``show --json`` reads the same on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from catalog.files.durable import atomic_write
from catalog.cards.readme_card import find_section, parse_readme, section_text
from catalog.cards.sidecars import FOLDER_README
from catalog.index.entry import Entry

from .errors import PullError
from .place import user_component

MANIFEST = "lutnav-export.json"
KIND = "lutnav-export"
MAX_MANIFEST_BYTES = 256 * 1024


@dataclass(frozen=True)
class ExportManifest:
    category: str | None
    theme: str | None
    name: str
    readme_section: str | None
    has_card: bool

    def to_json(self) -> bytes:
        return orjson.dumps({"kind": KIND, "version": 1, "category": self.category, "theme": self.theme,
                             "name": self.name, "readme_section": self.readme_section,
                             "has_card": self.has_card}, option=orjson.OPT_INDENT_2)


def manifest_for(entry: Path, info: Entry, has_card: bool) -> ExportManifest:
    """The manifest of one entry: its place and its section of the folder README."""
    section = None
    readme = entry.parent / FOLDER_README
    if readme.is_file() and not readme.is_symlink():
        try:
            text = readme.read_text("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            text = ""
        stem = entry.name if entry.is_dir() else entry.stem
        section = section_text(text, stem)
    return ExportManifest(info.category, info.theme, info.name, section, has_card)


def parse_manifest(data: bytes, label: str) -> ExportManifest:
    """A manifest read from a zip; refused (one line) when it is not one lutnav wrote."""
    where = f"{label}: {MANIFEST}"
    if len(data) > MAX_MANIFEST_BYTES:
        raise PullError(f"{where} is over {MAX_MANIFEST_BYTES} bytes", hint="export the entry again")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PullError(f"{where} is not valid JSON ({exc})", hint="export the entry again") from None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise PullError(f"{where} is not a lutnav export manifest", hint="export the entry again")

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) and value else None

    category, theme = text("category"), text("theme")
    for value, what in ((category, "category"), (theme, "theme")):
        if value is not None:
            user_component(value, what)
    section = text("readme_section")
    return ExportManifest(category, theme, text("name") or "", section, bool(raw.get("has_card")))


def add_readme_section(folder: Path, stem: str, section: str) -> bool:
    """Append ``section`` to ``folder/README.md`` unless it already has one for ``stem``.

    Returns whether the README changed. The file is rewritten whole through a
    temp file and a rename, so a crash leaves the old README or the new one.
    """
    path = folder / FOLDER_README
    current = ""
    if path.is_file():
        current = path.read_text("utf-8-sig")
        if find_section(parse_readme(current), stem) is not None:
            return False
    text = (current.rstrip() + "\n\n" if current.strip() else "") + section
    with atomic_write(path) as fh:
        fh.write(text.encode("utf-8"))
    return True

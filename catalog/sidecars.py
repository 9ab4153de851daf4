"""Every card that can sit beside a LoRA, read together and merged by precedence.

A library collects sidecars from many tools over the years; they disagree,
break, and point at files elsewhere.  This module finds them, reads each with a
size bound, turns every failure into a warning (the LoRA is indexed anyway), never
follows a path out of the entry's folder, and merges the fields in the documented
order: card > A1111 > Lora-Manager > Civitai / StabilityMatrix > folder README >
Hub model card > header metadata.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from catalog.card import FIELD_KINDS, check_card_dict
from catalog.fields import coerce, merge_layers
from catalog.readme_card import Section, find_section, parse_readme
from catalog.sidecar_formats import (
    Parsed, from_a1111, from_civitai, from_hub_card, from_lora_manager, from_stability_matrix,
)

#: Real sidecars are kilobytes (a Civitai info with many images: ~100 KB).
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PEFT_CARD_NAME = "lutnav.toml"
_FIX = "fix or delete it; other sources were used"

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


def card_path(entry_path: Path) -> Path:
    """Where lutnav's card lives: ``x.toml`` beside a file, ``lutnav.toml`` inside a PEFT folder."""
    entry_path = Path(entry_path)
    if entry_path.is_dir():
        return entry_path / PEFT_CARD_NAME
    return entry_path.parent / f"{entry_path.stem}.toml"


def _stem(entry_path: Path) -> str:
    return entry_path.name if entry_path.is_dir() else entry_path.stem


def preview_root(entry_path: Path) -> Path:
    """The folder previews must stay inside, and that ``CardResult.previews`` are relative to:
    the file's folder, or the PEFT folder itself (so its previews travel with it)."""
    return entry_path if entry_path.is_dir() else entry_path.parent


def preview_candidates(entry_path: Path) -> list[Path]:
    """Conventional preview names: ``x.preview.png`` first (A1111/Civitai), then ``x.png``;
    inside a PEFT folder ``preview.png`` and ``<name>.preview.png``."""
    if entry_path.is_dir():
        names = [f"preview{s}" for s in IMAGE_SUFFIXES] + [f"{entry_path.name}.preview{s}" for s in IMAGE_SUFFIXES]
        return [entry_path / name for name in names]
    folder, stem = entry_path.parent, entry_path.stem
    return [folder / f"{stem}.preview{s}" for s in IMAGE_SUFFIXES] + [folder / f"{stem}{s}" for s in IMAGE_SUFFIXES]


def sidecar_paths(entry_path: str | Path) -> list[Path]:
    """Every file whose change should make a rescan re-read this entry's cards."""
    entry_path = Path(entry_path)
    folder, stem = entry_path.parent, _stem(entry_path)
    paths = [card_path(entry_path)]
    if entry_path.is_dir():
        paths.append(entry_path / "README.md")
    else:
        paths += [folder / f"{stem}{suffix}" for _, suffix, _ in JSON_SIDECARS]
    return paths + preview_candidates(entry_path) + [folder / "README.md"]


def read_entry_cards(
    entry_path: str | Path,
    header_fields: dict[str, Any],
    header_sources: dict[str, str],
    *,
    readme_cache: dict | None = None,
) -> CardResult:
    """Read and merge every card of one entry; never raises for a bad sidecar."""
    entry_path = Path(entry_path)
    reader = _Reader(entry_path)
    layers: list[tuple[str, dict[str, Any]]] = []
    refs: list[tuple[Path, list[str], str]] = []  # (base folder, paths, label)

    cpath = card_path(entry_path)
    data = reader.read(cpath)
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    if data is not None:
        card = reader.card(cpath, data)
        if card is not None:
            refs.append((cpath.parent, card.pop("previews", []), reader.label(cpath)))
            layers.append(("card", card))
            reader.files["card"] = reader.label(cpath)

    folder, stem = entry_path.parent, _stem(entry_path)
    if not entry_path.is_dir():
        for source, suffix, mapper in JSON_SIDECARS:
            parsed = reader.json_sidecar(folder / f"{stem}{suffix}", mapper, source)
            if parsed is not None:
                layers.append((source, parsed.fields))
                refs.append((folder, parsed.preview_refs, reader.label(folder / f"{stem}{suffix}")))

    section = reader.readme_section(folder / "README.md", stem, readme_cache)
    if section is not None:
        layers.append(("readme", section))

    if entry_path.is_dir():
        parsed = reader.hub_card(entry_path / "README.md")
        if parsed is not None:
            layers.append(("hub-card", parsed.fields))
            refs.append((entry_path, parsed.preview_refs, reader.label(entry_path / "README.md")))

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
        previews=reader.previews(refs),
        warnings=reader.warnings,
        card_digest=digest,
        card_path=cpath,
        files=reader.files,
    )


class _Reader:
    """Bounded, contained reads for one entry, collecting warnings as it goes."""

    def __init__(self, entry_path: Path):
        self.entry = entry_path
        self.root = entry_path.parent  # sidecars are read from here down; labels are relative to it
        self.root_real = os.path.realpath(self.root)
        self.preview_real = os.path.realpath(preview_root(entry_path))
        self.warnings: list[str] = []
        self.files: dict[str, str] = {}

    def label(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.root)).as_posix()

    def inside(self, path: str | Path, root_real: str | None = None) -> str | None:
        """The real path if it stays inside ``root_real`` (the entry's folder tree), else None."""
        root_real = root_real or self.root_real
        real = os.path.realpath(path)
        return real if real == root_real or real.startswith(root_real + os.sep) else None

    def read(self, path: Path) -> bytes | None:
        try:
            os.lstat(path)
        except OSError:
            return None
        name = self.label(path)
        real = self.inside(path)
        if real is None:
            self.warnings.append(f"{name}: links outside the LoRA's folder; not followed")
            return None
        try:
            st = os.stat(real)
            if not stat.S_ISREG(st.st_mode):
                self.warnings.append(f"{name}: not a regular file; skipped")
                return None
            if st.st_size > MAX_SIDECAR_BYTES:
                self.warnings.append(
                    f"{name}: {st.st_size:,} bytes, over the {MAX_SIDECAR_BYTES // 2**20} MB limit for a sidecar; skipped"
                )
                return None
            with open(real, "rb") as fh:
                return fh.read(MAX_SIDECAR_BYTES + 1)
        except OSError as err:
            self.warnings.append(f"{name}: cannot be read ({err.strerror}); skipped")
            return None

    def text(self, path: Path, data: bytes) -> str | None:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            self.warnings.append(f"{self.label(path)}: not UTF-8 text (bad byte at offset {err.start}) — {_FIX}")
            return None

    def card(self, path: Path, data: bytes) -> dict[str, Any] | None:
        from catalog.card_file import parse_card_bytes
        from catalog.errors import SidecarError

        try:
            raw = parse_card_bytes(path, data)
        except SidecarError as err:
            self.warnings.append(f"{self.label(path)}: {err.message} — {_FIX}")
            return None
        clean, problems = check_card_dict(raw)
        self.warnings += [f"{self.label(path)}: {message}; ignored" for _, message in problems]
        return clean

    def json_sidecar(self, path: Path, mapper: Callable[[dict[str, Any]], Parsed], source: str) -> Parsed | None:
        data = self.read(path)
        text = self.text(path, data) if data is not None else None
        if text is None:
            return None
        name = self.label(path)
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            self.warnings.append(f"{name}: not valid JSON at line {err.lineno} column {err.colno} — {_FIX}")
            return None
        if not isinstance(doc, dict):
            self.warnings.append(f"{name}: expected a JSON object, found {type(doc).__name__} — {_FIX}")
            return None
        parsed = mapper(doc)
        self.warnings += [f"{name}: {problem}" for problem in parsed.problems]
        self.files[source] = name
        return parsed

    def readme_section(self, path: Path, stem: str, cache: dict | None) -> dict[str, Any] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = str(path)
        cached = cache.get(key) if cache is not None else None
        if cached is not None and cached[0] == (st.st_mtime_ns, st.st_size):
            sections, file_warnings = cached[1]
        else:
            before = len(self.warnings)
            data = self.read(path)
            text = self.text(path, data) if data is not None else None
            sections = parse_readme(text) if text is not None else {}
            file_warnings = self.warnings[before:]
            del self.warnings[before:]
            if cache is not None:
                cache[key] = ((st.st_mtime_ns, st.st_size), (sections, file_warnings))
        self.warnings += file_warnings
        section: Section | None = find_section(sections, stem)
        if section is None:
            return None
        self.warnings += [f"{self.label(path)} {warning}" for warning in section[1]]
        self.files["readme"] = self.label(path)
        return dict(section[0])

    def hub_card(self, path: Path) -> Parsed | None:
        data = self.read(path)
        text = self.text(path, data) if data is not None else None
        if text is None or not text.startswith("---"):
            return None
        head, sep, body = text[3:].partition("\n---")
        if not sep:
            return None
        import yaml  # only PEFT folders with a Hub card pay for it

        name = self.label(path)
        try:
            meta = yaml.safe_load(head)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            self.warnings.append(f"{name}: front matter is not valid YAML{where} — {_FIX}")
            return None
        if not isinstance(meta, dict):
            return None
        parsed = from_hub_card(meta, body)
        self.warnings += [f"{name}: {problem}" for problem in parsed.problems]
        self.files["hub-card"] = name
        return parsed

    def previews(self, refs: list[tuple[Path, list[str], str]]) -> list[str]:
        """Conventional preview files, then those the cards name, if they exist inside."""
        found: list[str] = []

        def add(real: str) -> None:
            rel = Path(os.path.relpath(real, self.preview_real)).as_posix()
            if rel not in found:
                found.append(rel)

        for candidate in preview_candidates(self.entry):
            real = self.inside(candidate, self.preview_real)
            if real is not None and os.path.isfile(real):
                add(real)
        for base, paths, label in refs:
            for ref in paths:
                real = self._resolve(base, ref, label)
                if real is not None:
                    add(real)
        return found

    def _resolve(self, base: Path, ref: str, label: str) -> str | None:
        ref = ref.strip()
        if "://" in ref or ref.startswith("data:"):
            return None  # a web address: previews are local files only
        ref = ref.replace("\\", "/")
        target = Path(ref) if os.path.isabs(ref) else base / ref
        real = self.inside(target, self.preview_real)
        if real is None:
            self.warnings.append(f"{label}: preview `{ref}` is outside the LoRA's folder; not used")
            return None
        if not os.path.isfile(real) or Path(real).suffix.lower() not in IMAGE_SUFFIXES + (".gif",):
            return None
        return real

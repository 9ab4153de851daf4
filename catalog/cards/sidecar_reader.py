"""Bounded, contained reads of one entry's sidecars, collecting warnings instead of raising.

Library folders hold whatever tools and people left there: FIFOs named like a
sidecar, 50 MB "JSON", links to files elsewhere on the disk.  Every read here is
size-bounded, opens regular files only, and stays inside the entry's folder tree
(checked on the resolved path, so links cannot lead out).  A scan calls this for
every entry, so the common case (no sidecar at all) costs one ``lstat`` per name
and works on plain strings rather than ``Path`` objects.
"""

from __future__ import annotations

import functools
import os
import stat
import time
from collections.abc import Callable
from typing import Any

import orjson

from catalog.cards.card import check_card_dict
from catalog.cards.card_file import MAX_CARD_BYTES, parse_card_bytes
from catalog.errors import SidecarError
from catalog.cards.readme_card import find_section, fold_sections, parse_readme
from catalog.cards.sidecar_formats import Parsed, from_hub_card
from catalog.files.textfile import decode_utf8

#: Real sidecars are kilobytes (a Civitai info with many images: ~100 KB).
MAX_SIDECAR_BYTES = MAX_CARD_BYTES
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
FIX = "fix or delete it; other sources were used"


def folder_names(folder: str, cache: dict | None) -> frozenset[str] | None:
    """The names in ``folder``, listed once per folder version and kept in ``cache``.

    A scan asks about ~15 possible sidecar names per LoRA, nearly all absent; one
    listing per folder turns those lookups into set lookups.  The listing is keyed
    by the folder's mtime (adding, removing or renaming a name changes it) and not
    kept when the folder changed within the last two seconds, where a coarse clock
    could hide a change made right after the listing.
    """
    if cache is None:
        return None
    try:
        st = os.stat(folder)
    except OSError:
        return None
    key = ("folder names", folder)
    hit = cache.get(key)
    if hit is not None and hit[0] == st.st_mtime_ns:
        return hit[1]
    try:
        names = frozenset(os.listdir(folder))
    except OSError:
        return None
    if time.time() - st.st_mtime > 2.0:
        cache[key] = (st.st_mtime_ns, names)
    return names


class SidecarReader:
    """Reads for one entry; ``root`` is the folder holding it (``preview_root`` may be the entry)."""

    def __init__(self, root: str, preview_root: str, cache: dict | None = None):
        self.root = root
        self.preview_root = preview_root
        self.cache = cache
        self.names = folder_names(root, cache)
        self.warnings: list[str] = []
        self.files: dict[str, str] = {}  # source → label of the file it came from

    def exists(self, path: str) -> bool:
        """Whether anything (file, folder, link) has this name; no syscall for names in the listing."""
        if self.names is not None and os.path.dirname(path) == self.root:
            return os.path.basename(path) in self.names
        return os.path.lexists(path)

    # Resolved lazily: most entries have no sidecar at all.
    @functools.cached_property
    def root_real(self) -> str:
        return os.path.realpath(self.root)

    @functools.cached_property
    def preview_real(self) -> str:
        return self.root_real if self.preview_root == self.root else os.path.realpath(self.preview_root)

    def label(self, path: str) -> str:
        """How warnings name a file: relative to the entry's folder, ``/``-separated, and
        printable even when the name is not UTF-8 (``\\xff`` instead of a lone surrogate)."""
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        return os.fsencode(rel).decode("utf-8", "backslashreplace")

    @staticmethod
    def inside(path: str, root_real: str) -> str | None:
        """The resolved path if it stays inside ``root_real``, else None."""
        real = os.path.realpath(path)
        return real if real == root_real or real.startswith(root_real + os.sep) else None

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None (silently when absent, with a warning otherwise)."""
        if not self.exists(path):
            return None
        name = self.label(path)
        real = self.inside(path, self.root_real)
        if real is None:
            self.warnings.append(f"{name}: links outside the LoRA's folder; not followed")
            return None
        try:
            st = os.stat(real)
            if not stat.S_ISREG(st.st_mode):
                self.warnings.append(f"{name}: not a regular file; skipped")
                return None
            if st.st_size > MAX_SIDECAR_BYTES:
                limit = MAX_SIDECAR_BYTES // 2**20
                self.warnings.append(f"{name}: {st.st_size:,} bytes, over the {limit} MB limit for a sidecar; skipped")
                return None
            with open(real, "rb") as fh:
                return fh.read(MAX_SIDECAR_BYTES + 1)
        except OSError as err:
            self.warnings.append(f"{name}: cannot be read ({err.strerror}); skipped")
            return None

    def text(self, path: str, data: bytes | None) -> str | None:
        if data is None:
            return None
        try:
            return decode_utf8(data)
        except UnicodeDecodeError as err:
            self.warnings.append(f"{self.label(path)}: not UTF-8 text (bad byte at offset {err.start}) — {FIX}")
            return None

    def card(self, path: str, data: bytes) -> dict[str, Any] | None:
        """Lenient card read: keep the valid fields, warn about the rest."""
        name = self.label(path)
        try:
            raw = parse_card_bytes(path, data)
        except SidecarError as err:
            self.warnings.append(f"{name}: {err.message} — {FIX}")
            return None
        clean, problems = check_card_dict(raw)
        self.warnings += [f"{name}: {message}; ignored" for _, message in problems]
        self.files["card"] = name
        return clean

    def json_sidecar(self, path: str, mapper: Callable[[dict[str, Any]], Parsed], source: str) -> Parsed | None:
        text = self.text(path, self.read(path))
        if text is None:
            return None
        name = self.label(path)
        try:
            doc = orjson.loads(text)  # also refuses nesting bombs, with a line and column
        except orjson.JSONDecodeError as err:
            self.warnings.append(f"{name}: not valid JSON at line {err.lineno} column {err.colno} — {FIX}")
            return None
        if not isinstance(doc, dict):
            self.warnings.append(f"{name}: expected a JSON object, found {type(doc).__name__} — {FIX}")
            return None
        parsed = mapper(doc)
        self.warnings += [f"{name}: {problem}" for problem in parsed.problems]
        self.files[source] = name
        return parsed

    def readme_section(self, path: str, stem: str, cache: dict | None) -> dict[str, Any] | None:
        """The entry's section of the folder README, parsed once per README version."""
        if not self.exists(path):
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        version = (st.st_mtime_ns, st.st_size)
        cached = cache.get(path) if cache is not None else None
        if cached is not None and cached[0] == version:
            sections, folded, file_warnings = cached[1]
        else:
            before = len(self.warnings)
            text = self.text(path, self.read(path))
            sections = parse_readme(text) if text is not None else {}
            folded = fold_sections(sections)
            file_warnings = self.warnings[before:]
            del self.warnings[before:]
            if cache is not None:
                cache[path] = (version, (sections, folded, file_warnings))
        self.warnings += file_warnings
        section = find_section(sections, stem, folded)
        if section is None:
            return None
        name = self.label(path)
        self.warnings += [f"{name} {warning}" for warning in section[1]]
        self.files["readme"] = name
        return dict(section[0])

    def hub_card(self, path: str) -> Parsed | None:
        """A Hugging Face model card (YAML front matter) inside a PEFT folder."""
        text = self.text(path, self.read(path))
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
            self.warnings.append(f"{name}: front matter is not valid YAML{where} — {FIX}")
            return None
        if not isinstance(meta, dict):
            return None
        parsed = from_hub_card(meta, body)
        self.warnings += [f"{name}: {problem}" for problem in parsed.problems]
        self.files["hub-card"] = name
        return parsed

    def previews(self, candidates: list[str], refs: list[tuple[str, list[str], str]]) -> list[str]:
        """Existing conventional previews, then those the cards name; relative to ``preview_root``."""
        found: list[str] = []

        def add(real: str) -> None:
            rel = os.path.relpath(real, self.preview_real).replace(os.sep, "/")
            if rel not in found:
                found.append(rel)

        for candidate in candidates:
            if not self.exists(candidate):
                continue
            real = self.inside(candidate, self.preview_real)
            if real is not None and os.path.isfile(real):
                add(real)
        for base, paths, label in refs:
            for ref in paths:
                real = self._resolve(base, ref, label)
                if real is not None:
                    add(real)
        return found

    def _resolve(self, base: str, ref: str, label: str) -> str | None:
        ref = ref.strip()
        if "://" in ref or ref.startswith("data:"):
            return None  # a web address: previews are local files only
        ref = ref.replace("\\", "/")
        target = ref if os.path.isabs(ref) else os.path.join(base, ref)
        real = self.inside(target, self.preview_real)
        if real is None:
            self.warnings.append(f"{label}: preview `{ref}` is outside the LoRA's folder; not used")
            return None
        if not os.path.isfile(real) or os.path.splitext(real)[1].lower() not in PREVIEW_SUFFIXES:
            return None
        return real

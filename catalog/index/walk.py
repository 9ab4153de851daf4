"""Walking the library tree: what is an entry, and what changed since last time.

The walk never leaves the library: symlinks are followed only when their target
resolves inside the root, and each real directory is visited once, so a link
loop ends. A link to something the walk reaches anyway is not followed: every
real file is indexed once, under its real path, whatever links point at it.
Only regular files are entries (a FIFO would block the reader forever), and
nothing that looks like a LoRA is left out without a line in the report. Only
``os.scandir`` and ``stat`` happen here — a warm rescan of 20,000 files is this
walk plus one query.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LORA_SUFFIX = ".safetensors"
#: pickled formats: listed, never opened beyond a stat
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PREVIOUS_SUFFIX = ".prev.safetensors"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: sidecar suffixes that belong to a LoRA file ``<stem><suffix>``
FOLDER_README = "README.md"


@dataclass(slots=True)
class Candidate:
    """One library entry as the walk sees it: where it is and its stat stamp."""

    rel: str  # '/'-separated, relative to the library root
    abs: Path
    kind: str  # "file" | "folder" | "pickle"
    size: int
    mtime_ns: int
    inode: int
    sidecar_sig: str  # stamp of every sidecar that may belong to it

    @property
    def stamp(self) -> tuple[int, int, int, str]:
        return (self.size, self.mtime_ns, self.inode, self.sidecar_sig)


@dataclass
class WalkReport:
    """What the walk skipped, for the scan summary (never silently)."""

    skipped: list[str] = field(default_factory=list)


def category_theme(rel: str) -> tuple[str | None, str | None]:
    """First folder level is the category, the second the theme."""
    parts = rel.split("/")[:-1]
    return (parts[0] if parts else None, parts[1] if len(parts) > 1 else None)


def entry_name(rel: str) -> str:
    last = rel.rsplit("/", 1)[-1]
    for suffix in (LORA_SUFFIX, *PICKLE_SUFFIXES):
        if last.endswith(suffix):
            return last[: -len(suffix)]
    return last


def walk(root: Path, report: WalkReport | None = None) -> Iterator[Candidate]:
    """Yield every entry under ``root`` (which must be an existing directory)."""
    report = report if report is not None else WalkReport()
    real_root = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        dir_path, rel_dir = stack.pop()
        try:
            st = os.stat(dir_path)
        except OSError as exc:
            report.skipped.append(f"{rel_dir or '.'}: cannot read folder ({exc.strerror})")
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(dir_path) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            report.skipped.append(f"{rel_dir or '.'}: cannot list folder ({exc.strerror})")
            continue
        yield from _entries_in(dir_path, rel_dir, items, real_root, stack, report)


def _entries_in(dir_path: str, rel_dir: str, items: list[os.DirEntry], real_root: str,
                stack: list[tuple[str, str]], report: WalkReport) -> Iterator[Candidate]:
    stats: dict[str, os.stat_result] = {}
    loras: list[tuple[str, str]] = []  # (name, kind)
    for item in items:
        name = item.name
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if not _printable(name):
            report.skipped.append(f"{_safe(rel)}: file name is not valid UTF-8 — rename it to index it")
            continue
        if name.startswith(".") or name == "__pycache__":
            if name.endswith((LORA_SUFFIX, *PICKLE_SUFFIXES)) and not item.is_dir():
                report.skipped.append(f"{rel}: the name starts with '.', so it is hidden — "
                                      "rename it to index it")
            continue
        try:
            if item.is_symlink():
                target = os.path.realpath(item.path)
                if not _inside(target, real_root):
                    report.skipped.append(f"{rel}: symlink points outside the library — not followed")
                    continue
                if not os.path.lexists(target):
                    report.skipped.append(f"{rel}: link to a file that does not exist — nothing to index")
                    continue
                if _walked_anyway(target, real_root):
                    shown = os.path.relpath(target, real_root).replace(os.sep, "/")
                    report.skipped.append(f"{rel}: link to {shown} — indexed there, under its real path")
                    continue
            if item.is_dir():
                if _is_peft_folder(item.path):
                    st = os.stat(os.path.join(item.path, PEFT_FILES[1]))
                    yield Candidate(rel, Path(item.path), "folder", st.st_size, st.st_mtime_ns,
                                    st.st_ino, _folder_sig(item.path))
                else:
                    stack.append((item.path, rel))
                continue
            st = item.stat()
        except OSError as exc:
            report.skipped.append(f"{rel}: cannot stat ({exc.strerror or exc})")
            continue
        if not stat.S_ISREG(st.st_mode):
            report.skipped.append(f"{rel}: not a regular file (a FIFO, socket or device) — not read")
            continue
        stats[name] = st
        if name.endswith(PREVIOUS_SUFFIX):
            continue  # the weights an update replaced, kept until the new ones verify
        if name.endswith(LORA_SUFFIX):
            loras.append((name, "file"))
        elif name.endswith(PICKLE_SUFFIXES):
            loras.append((name, "pickle"))
        elif name.lower().endswith((LORA_SUFFIX, *PICKLE_SUFFIXES)):
            report.skipped.append(f"{rel}: the suffix is not in lower case — rename it "
                                  f"(e.g. {LORA_SUFFIX}) to index it")
    if not loras:
        return
    by_prefix = _prefix_index(stats)
    readme = stats.get(FOLDER_README)
    readme_sig = f"R{readme.st_size}:{readme.st_mtime_ns}" if readme else ""
    for name, kind in loras:
        st = stats[name]
        stem = entry_name(name)
        sig = ";".join(
            f"{n}:{stats[n].st_size}:{stats[n].st_mtime_ns}"
            for n in by_prefix.get(stem, ()) if n != name
        )
        rel = f"{rel_dir}/{name}" if rel_dir else name
        yield Candidate(rel, Path(dir_path, name), kind, st.st_size, st.st_mtime_ns, st.st_ino,
                        f"{sig}|{readme_sig}")


def _prefix_index(stats: dict[str, os.stat_result]) -> dict[str, list[str]]:
    """Map every dotted prefix of a name to the names that start with it.

    A sidecar is ``<stem>.<anything>``, and stems may contain dots, so each
    name is filed under each of its prefixes; names have few dots, so this stays
    linear in the folder size.
    """
    index: dict[str, list[str]] = {}
    for name in stats:
        pos = name.find(".")
        while pos > 0:
            index.setdefault(name[:pos], []).append(name)
            pos = name.find(".", pos + 1)
    return index


def _is_peft_folder(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, f)) for f in PEFT_FILES)


def _folder_sig(path: str) -> str:
    parts = []
    try:
        with os.scandir(path) as it:
            for item in sorted(it, key=lambda e: e.name):
                if item.name != PEFT_FILES[1] and item.is_file(follow_symlinks=False):
                    st = item.stat()
                    parts.append(f"{item.name}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        pass
    return ";".join(parts)


def _inside(path: str, real_root: str) -> bool:
    target = os.path.realpath(path)
    return target == real_root or target.startswith(real_root + os.sep)


def _walked_anyway(target: str, real_root: str) -> bool:
    """Whether the walk reaches the resolved ``target`` through real folders.

    A resolved path holds no links, so it is reached unless one of its parts is
    hidden; following a link to it would index the same file twice (and
    whichever came last would own the row).
    """
    if target == real_root:
        return True
    parts = os.path.relpath(target, real_root).split(os.sep)
    return not any(p.startswith(".") or p == "__pycache__" for p in parts)


def _printable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

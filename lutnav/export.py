"""``lutnav export NAME --zip out.zip``: one entry with its cards and previews, to share.

The zip holds what another user (or ``lutnav pull out.zip``) needs: the weights
(or the whole PEFT folder), lutnav's card and the ecosystem sidecars beside it,
the preview images the catalog found, and a small manifest with the entry's
place and its section of the folder README (see :mod:`lutnav.pull.exported`).
Member names are the entry's own file
names, flat, so unzipping into a WebUI ``models/Lora`` folder just works.  The
zip appears atomically and never replaces an existing file unless told to.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from catalog.files.durable import atomic_write
from catalog.index.library import Library
from catalog.cards.sidecars import FOLDER_README, card_path, preview_root, sidecar_paths

from .mix.guards import entry_problem
from .pull.errors import ExportError
from .pull.exported import MANIFEST, ExportManifest, manifest_for

#: stored, not deflated: weights and images do not compress
STORED_SUFFIXES = (".safetensors", ".png", ".jpg", ".jpeg", ".webp")


def export_members(lib: Library, name: str) -> list[tuple[Path, str]]:
    """(file on disk, name in the zip) for one entry, weights first."""
    return _members(lib, lib.resolve(name))[0]


def _members(lib: Library, rel: str) -> tuple[list[tuple[Path, str]], ExportManifest]:
    info = lib.get(rel)
    if info.format == "pickle":
        raise ExportError(f"{rel} is a pickle; lutnav does not pass pickled weights on",
                          hint="export a .safetensors version of it")
    problem = entry_problem(info)
    if problem:
        raise ExportError(problem)
    entry = lib.abspath(rel)
    manifest = manifest_for(entry, info, card_path(entry).is_file())
    members: list[tuple[Path, str]] = []
    if entry.is_dir():
        for item in sorted(entry.iterdir()):
            if item.is_file() and not item.is_symlink() and not item.name.startswith("."):
                members.append((item, f"{entry.name}/{item.name}"))
        return members, manifest
    members.append((entry, entry.name))
    folder_readme = entry.parent / FOLDER_README
    for path in sidecar_paths(entry):
        if path != folder_readme and path.is_file() and not path.is_symlink():
            members.append((path, path.name))
    root = preview_root(entry)
    for ref in info.previews or []:
        path = root.joinpath(*ref.split("/"))
        if path.is_file() and all(path != p for p, _ in members):
            members.append((path, ref))
    return members, manifest


def export_zip(lib: Library, name: str, out: Path, *, overwrite: bool = False) -> list[str]:
    """Write the entry's zip to ``out``; returns the member names."""
    out = Path(out).expanduser()
    if out.suffix.lower() != ".zip":
        raise ExportError(f"{out}: the zip's name must end in .zip",
                          hint="e.g. --zip ink_wash.zip (a .zip name never replaces weights or cards)")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists", hint="pass --overwrite or pick another name")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} is not a folder")
    members, manifest = _members(lib, lib.resolve(name))
    _refuse_own_files(out, [path for path, _ in members], lib.abspath(lib.resolve(name)))
    with atomic_write(out) as fh, zipfile.ZipFile(fh, "w") as zf:
        for path, arcname in members:
            method = zipfile.ZIP_STORED if arcname.lower().endswith(STORED_SUFFIXES) else \
                zipfile.ZIP_DEFLATED
            zf.write(path, arcname, compress_type=method)
        zf.writestr(MANIFEST, manifest.to_json(), compress_type=zipfile.ZIP_DEFLATED)
    return [arcname for _, arcname in members] + [MANIFEST]


def _refuse_own_files(out: Path, members: list[Path], entry: Path) -> None:
    """``--overwrite`` replaces an old zip, never the entry's own weights, card or previews."""
    if out.is_dir():
        raise ExportError(f"{out} is a folder", hint="give the zip file's name with --zip")
    if not out.exists():
        return
    for path in [entry, *members]:
        if os.path.samefile(out, path):
            raise ExportError(f"refusing to write the zip over {path}, which is part of the entry",
                              hint="give --zip another name")

"""``lutnav link``: make the library visible to AUTOMATIC1111/Forge and to ComfyUI.

WebUI: ``models/Lora/lutnav`` becomes a symlink to the library, so every entry —
and every later pull — shows up in the Lora tab; where links are impossible,
``--copy NAME`` copies chosen entries (with their sidecars and previews) and records
them in a manifest.  ComfyUI: a ``lutnav`` entry with ``loras:`` is added to
``extra_model_paths.yaml`` as a marked block of text, so the user's other entries
*and comments* stay byte for byte (a YAML round trip would drop the comments).

Every operation is planned first — a list of what will change, a diff for the YAML —
then applied; it is idempotent, refuses to replace anything it did not make, and
``--undo`` removes exactly what it made.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from catalog.index.library import Library

from .export import export_members
from .pull.errors import LinkError
from catalog.files.durable import atomic_write, file_sha256

LINK_NAME = "lutnav"
MANIFEST = ".lutnav-copies.json"
BEGIN = "# >>> lutnav: managed by `lutnav link --comfyui`; `lutnav link --comfyui DIR --undo` removes it"
END = "# <<< lutnav"


@dataclass
class Plan:
    """What a link command will change; ``apply`` is None when there is nothing to do."""

    lines: list[str] = field(default_factory=list)
    apply: Callable[[], None] | None = None


# --- AUTOMATIC1111 / Forge ---------------------------------------------------------------


def plan_webui(lib: Library, webui: Path, *, copy: Sequence[str] = (), undo: bool = False) -> Plan:
    webui = Path(webui).expanduser()
    if not (webui / "models").is_dir():
        raise LinkError(f"{webui} does not look like a Stable Diffusion WebUI folder (no models/)",
                        hint="pass the folder that holds webui.py and models/")
    lora_dir = webui / "models" / "Lora"
    target = lora_dir / LINK_NAME
    if undo:
        return _undo_webui(lib, target)
    if copy:
        return _plan_copies(lib, target, copy)
    if target.is_symlink():
        if Path(os.path.realpath(target)) == lib.root:
            return Plan([f"{target} already links to {lib.root}; nothing to do"])
        raise LinkError(f"{target} is a link to {os.readlink(target)}, not to this library")
    if target.exists():
        raise LinkError(f"{target} already exists and is not lutnav's link",
                        hint="move it away, or use --copy NAME to copy entries into it")

    def apply() -> None:
        lora_dir.mkdir(exist_ok=True)
        try:
            os.symlink(lib.root, target, target_is_directory=True)
        except OSError as exc:
            raise LinkError(f"{target}: cannot create a symlink here ({exc.strerror or exc})",
                            hint="use --copy NAME to copy chosen entries instead") from None

    return Plan([f"link {target} -> {lib.root}"], apply)


def _plan_copies(lib: Library, target: Path, names: Sequence[str]) -> Plan:
    if target.is_symlink():
        raise LinkError(f"{target} already links the whole library; copies are not needed")
    if target.exists() and not target.is_dir():
        raise LinkError(f"{target} exists and is not a folder")
    manifest = _read_manifest(target)
    todo: list[tuple[Path, Path, str]] = []
    lines: list[str] = []
    for name in names:
        rel = lib.resolve(name)
        rel_dir = rel.rsplit("/", 1)[0] if "/" in rel else ""
        for src, arcname in export_members(lib, name):
            key = f"{rel_dir}/{arcname}" if rel_dir else arcname
            dest = target.joinpath(*key.split("/"))
            digest = file_sha256(src)
            if dest.is_file() and file_sha256(dest) == digest:
                continue
            if (dest.exists() or dest.is_symlink()) and manifest.get(key) != _sha256_or_none(dest):
                raise LinkError(f"{dest} exists and was not copied by lutnav; refusing to replace it")
            lines.append(f"copy {src} -> {dest}")
            todo.append((src, dest, key))
    if not todo:
        return Plan([f"the copies in {target} are up to date; nothing to do"])

    def apply() -> None:
        for src, dest, key in todo:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            manifest[key] = file_sha256(dest)
        _write_atomic(target / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    return Plan(lines, apply)


def _undo_webui(lib: Library, target: Path) -> Plan:
    if target.is_symlink():
        if Path(os.path.realpath(target)) != lib.root:
            raise LinkError(f"{target} links to {os.readlink(target)}, not to this library; left alone")
        return Plan([f"remove link {target}"], target.unlink)
    if not target.exists():
        return Plan([f"{target} does not exist; nothing to undo"])
    manifest = _read_manifest(target)
    if not (target / MANIFEST).is_file():
        raise LinkError(f"{target} was not made by lutnav link; left alone")
    remove = [key for key, digest in manifest.items()
              if _sha256_or_none(target.joinpath(*key.split("/"))) == digest]
    kept = sorted(set(manifest) - set(remove))
    lines = [f"remove {target / key}" for key in remove]
    lines += [f"keep {target / key} (changed since it was copied)" for key in kept]

    def apply() -> None:
        for key in remove:
            target.joinpath(*key.split("/")).unlink()
        (target / MANIFEST).unlink()
        for folder in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
        if not any(target.iterdir()):
            target.rmdir()

    return Plan(lines + [f"remove {target} if empty"], apply)


def _read_manifest(target: Path) -> dict[str, str]:
    path = target / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except ValueError:
        raise LinkError(f"{path} is not valid JSON", hint="fix or delete it") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}



def _sha256_or_none(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


# --- ComfyUI -------------------------------------------------------------------------------


def comfy_block(lib: Library) -> str:
    """The marked YAML block; the path is a JSON string, which is valid YAML."""
    return (f"{BEGIN}\n{LINK_NAME}:\n    base_path: {json.dumps(str(lib.root), ensure_ascii=False)}\n"
            f"    loras: .\n{END}\n")


def plan_comfyui(lib: Library, comfy: Path, *, undo: bool = False) -> Plan:
    comfy = Path(comfy).expanduser()
    looks = any((comfy / n).exists() for n in ("main.py", "models", "extra_model_paths.yaml.example",
                                               "extra_model_paths.yaml"))
    if not comfy.is_dir() or not looks:
        raise LinkError(f"{comfy} does not look like a ComfyUI folder (no main.py, models/ or "
                        "extra_model_paths.yaml)", hint="pass the folder that holds ComfyUI's main.py")
    path = comfy / "extra_model_paths.yaml"
    old = path.read_text("utf-8") if path.is_file() else ""
    before = _load_yaml(path, old)
    span = _block_span(path, old)
    if undo:
        if span is None:
            return Plan([f"{path} has no lutnav entry; nothing to undo"])
        start, end = span
        new = old[:start].rstrip("\n") + ("\n" if old[:start].strip() else "") + old[end:].lstrip("\n")
    else:
        block = comfy_block(lib)
        if span is not None:
            start, end = span
            if old[start:end] == block:
                return Plan([f"{path} already has lutnav's entry; nothing to do"])
            new = old[:start] + block + old[end:]
        else:
            if LINK_NAME in before:
                raise LinkError(f"{path} already has a `{LINK_NAME}:` entry that lutnav did not write",
                                hint="rename or remove that entry, then run the command again")
            head = old if not old or old.endswith("\n") else old + "\n"
            new = head + ("\n" if head.strip() else "") + block
    _check_edit(path, before, new, undo)
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{path} (now)", f"{path} (new)",
                                     lineterm="", n=1))
    if not new.strip():
        return Plan(diff + [f"remove {path} (nothing else is left in it)"], path.unlink)
    return Plan(diff, lambda: _write_atomic(path, new))


def _load_yaml(path: Path, text: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise LinkError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})",
                        hint="fix it first; ComfyUI cannot read it either") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LinkError(f"{path} does not hold a mapping of entries", hint="fix it first")
    return data


def _block_span(path: Path, text: str) -> tuple[int, int] | None:
    start = text.find(BEGIN)
    if start < 0:
        return None
    end = text.find(END, start)
    if end < 0 or (start > 0 and text[start - 1] != "\n"):
        raise LinkError(f"{path}: lutnav's block is damaged (begin marker without end marker)",
                        hint="delete the lines of the lutnav block by hand")
    end += len(END)
    return start, end + 1 if text[end:end + 1] == "\n" else end


def _check_edit(path: Path, before: dict, new: str, undo: bool) -> None:
    """The edit must change lutnav's entry and nothing else, as YAML sees it."""
    try:
        after = _load_yaml(path, new)
    except LinkError:
        after = None
    others_before = {k: v for k, v in before.items() if k != LINK_NAME}
    others_after = {k: v for k, v in (after or {}).items() if k != LINK_NAME}
    ours = after.get(LINK_NAME) if after is not None else None
    if after is None or others_before != others_after or (undo and ours is not None) or (
            not undo and not (isinstance(ours, dict) and ours.get("loras") == ".")):
        raise LinkError(f"{path}: the edit would not leave the file as intended; nothing written",
                        hint="add the lutnav entry by hand: base_path = the library, loras: .")


def _write_atomic(path: Path, text: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    with atomic_write(path, mode=mode) as fh:
        fh.write(text.encode("utf-8"))

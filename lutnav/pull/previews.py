"""Preview images for a pulled entry: the model card's widget images and carried previews.

Images come from strangers, so each is recognised by its magic bytes (PNG, JPEG,
WebP) rather than by its name, bounded in size and number (see
:func:`lutnav.pull.choose.preview_files`), and written under the names the catalog
and the WebUIs look for (:mod:`catalog.files.preview_names`): ``<name>.preview.png``, then
``<name>.preview.2.png`` …
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .choose import preview_files
from .errors import PullError
from .modelcard import HubCard, repo_path_of
from .place import Target

_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"))


def widget_images(source, card: HubCard | None, dest: Path, warnings: list[str]) -> list[Path]:
    """The model card's widget images that the source holds, fetched into ``dest`` and checked."""
    if card is None or not card.image_refs:
        return []
    dest.mkdir()
    refs = [repo_path_of(r, source.label) for r in card.image_refs]
    out = []
    for i, item in enumerate(preview_files(source.files, [r for r in refs if r])):
        local = dest / f"{i}{Path(item.path).suffix.lower()}"
        try:
            source.fetch(item.path, local)
        except PullError as exc:
            warnings.append(f"preview {item.path} not fetched: {exc.message}")
            continue
        if image_suffix(local):
            out.append(local)
        else:
            warnings.append(f"preview {item.path} is not a PNG/JPEG/WebP image; skipped")
    return out


def image_suffix(path: Path) -> str | None:
    """The image's real type from its first bytes (names and URLs lie)."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            return suffix
    return ".webp" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None


def place_previews(target: Target, images: list[Path], *, replace: bool) -> list[str]:
    """Copy images to the entry's preview names; returns them relative to the card's folder."""
    names: list[str] = []
    for index, image in enumerate(images):
        dest = target.preview(index, image_suffix(image) or image.suffix)
        if dest.exists() and not replace:
            continue
        shutil.copyfile(image, dest)
        names.append(dest.relative_to(target.card.parent).as_posix())
    return names

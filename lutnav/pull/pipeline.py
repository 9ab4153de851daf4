"""One pull, from any source: choose, fetch into staging, verify, place, card, index.

A source (a Hub snapshot, a local folder, a zip) only lists files and copies one
out; everything a user relies on happens here, the same way for each: nothing is
fetched that was not chosen, nothing reaches the library tree before the
catalog's reader has confirmed it is a LoRA, and the entry lands with its card
and previews in one pass, followed by an incremental scan.  A pull is long work
of the one progress protocol: it yields a :class:`~catalog.progress.Progress`
for each file of the chosen LoRAs fetched.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from catalog.cards.card_file import read_card, write_card
from catalog.cards.card_slot import claim_card
from catalog.files.durable import atomic_write
from catalog.errors import IndexReadOnly, SidecarError
from catalog.files.hashing import same_tensors
from catalog.index.library import Library
from catalog.progress import Progress, Work, within
from catalog.cards.sidecars import JSON_SIDECARS, MAX_SIDECAR_BYTES

from . import hub
from .choose import IMAGE_SUFFIXES, PEFT_CONFIG, PICKLE_SUFFIXES, Asker, Pick, choose, human_size
from .errors import NoLoraFound, NotALora, PullError
from .exported import MANIFEST, ExportManifest, add_readme_section, parse_manifest
from .modelcard import MAX_README_BYTES, HubCard, card_fields, category_for, header_triggers, read_readme
from .previews import image_suffix, place_previews, widget_images
from .place import choose_target, clean_stem, move_into_place, theme_name, user_component
from .staging import staging
from .verify import Verified, sidecar_problem, verify

CategoryAsker = Callable[[], "str | None"]


class Source(Protocol):
    label: str
    files: tuple[hub.RemoteFile, ...]
    origin: str | None  # the card's ``source`` (repo@commit), None for local files
    tags: tuple[str, ...]
    pipeline_tag: str | None
    default_theme: str
    default_name: str  # for a PEFT adapter at the source's root

    def fetch(self, path: str, dest: Path) -> None: ...


class HubSource:
    """A Hub repo at one commit; files come through the Hugging Face cache."""

    def __init__(self, snap: hub.Snapshot):
        self.snap = snap
        self.label = snap.repo_id
        self.files = snap.files
        self.origin = snap.source
        self.tags = snap.tags
        self.pipeline_tag = snap.pipeline_tag
        self.default_name = snap.repo_id.rsplit("/", 1)[-1]
        self.default_theme = theme_name(self.default_name, "hub")

    def fetch(self, path: str, dest: Path) -> None:
        shutil.copyfile(hub.download(self.snap, path), dest)


@dataclass
class PullOptions:
    revision: str | None = None
    files: tuple[str, ...] = ()
    take_all: bool = False
    category: str | None = None
    theme: str | None = None
    name: str | None = None
    overwrite: bool = False
    force: bool = False  # add an entry even when the library holds the same tensors


@dataclass
class Placed:
    rel: str  # library-relative path of the entry
    status: str  # "new" | "replaced" | "unchanged" | "duplicate" (same tensors as ``rel``, skipped)
    verified: Verified
    previews: list[str] = field(default_factory=list)


@dataclass
class PullReport:
    placed: list[Placed] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one line per chosen file that was not a LoRA
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Staged:
    pick: Pick
    path: Path
    verified: Verified
    card: dict[str, Any]
    images: list[Path]
    sidecars: list[tuple[Path, str]]  # (staged copy, suffix after the stem)
    card_file: Path | None = None  # the staged copy of lutnav's card, as carried


def pull(lib: Library, source: Source, opts: PullOptions, *, ask_files: Asker | None = None,
         ask_category: CategoryAsker | None = None) -> Work[PullReport]:
    """Pull the chosen LoRAs of ``source`` into ``lib``, yielding each of their files fetched.

    ``ask_files`` is asked before anything is fetched, ``ask_category`` after the
    LoRAs are fetched and verified (a front end drawing a bar pauses it to ask)."""
    if lib.read_only:
        raise IndexReadOnly("pulling needs the library's index, which cannot be written here; "
                            "nothing added", path=lib.index_path.parent)
    for value, what in ((opts.category, "category"), (opts.theme, "theme"), (opts.name, "name")):
        if value is not None:
            user_component(value, what)
    picks = choose(source.label, source.files, opts.files, opts.take_all, ask_files)
    if opts.name and len(picks) > 1:
        raise PullError(f"--name names one entry, but {len(picks)} were chosen",
                        hint="pull them one at a time with --file, or leave --name out")
    need = sum(p.size or 0 for p in picks)
    free = shutil.disk_usage(lib.index_dir).free
    if need > free:
        raise PullError(f"{source.label}: the chosen files take {human_size(need)}, but only "
                        f"{human_size(free)} is free in {lib.root}", hint="free some space and retry")
    report = PullReport()
    with staging(lib) as stage:
        exported = _manifest(source, stage)
        card = _readme(source, stage, report)
        staged, fetched, files = [], 0, sum(len(p.files) for p in picks)
        for i, pick in enumerate(picks):
            item = yield from within(_stage(source, pick, stage / str(i), report), fetched, files)
            fetched += len(pick.files)
            if item is not None:
                staged.append(item)
        if not staged:
            if len(picks) == 1:
                raise NotALora(report.refused[0], hint=_refused_hint(source))
            raise NoLoraFound(f"{source.label}: none of the chosen files is a LoRA — "
                              + "; ".join(report.refused), hint=_refused_hint(source))
        shared = widget_images(source, card, stage / "widget", report.warnings)
        category = (opts.category or (exported.category if exported else None)
                    or _category(source, card, staged[0].verified, ask_category))
        theme = opts.theme or (exported.theme if exported else None) or source.default_theme
        for item in staged:
            stem = opts.name or clean_stem(item.pick.name or source.default_name)
            report.placed.append(_place(lib, source, item, card, shared, category, theme, stem, opts,
                                        stage, exported))
    lib.scan_all()
    return report


def _refused_hint(source: Source) -> str:
    """What became of a refused file: a download is thrown away, a user's own file is not touched."""
    if isinstance(source, HubSource):
        return "the downloaded copy was deleted; nothing was added to the library"
    return f"{source.label} was only read and is left as it is; nothing was added to the library"


def _category(source: Source, card: HubCard | None, verified: Verified,
              ask: CategoryAsker | None) -> str:
    """From the model card's tags (an LLM adapter: industry), else asked, else uncategorized."""
    tags = [*(card.tags if card else []), *source.tags]
    pipeline_tag = (card.pipeline_tag if card else None) or source.pipeline_tag
    found = category_for(tags, pipeline_tag, verified.base_model) or (ask() if ask else None)
    return user_component(found, "category") if found else "uncategorized"


def _manifest(source: Source, stage: Path) -> ExportManifest | None:
    """The manifest of a ``lutnav export`` zip (or its unpacked folder); None for anything else."""
    if not any(f.path == MANIFEST for f in source.files):
        return None
    dest = stage / MANIFEST
    source.fetch(MANIFEST, dest)
    with open(dest, "rb") as fh:
        return parse_manifest(fh.read(), source.label)


def _readme(source: Source, stage: Path, report: PullReport) -> HubCard | None:
    listed = [f for f in source.files if f.path == "README.md"]
    if not listed:
        return None
    if (listed[0].size or 0) > MAX_README_BYTES:
        report.warnings.append(f"README.md is over {MAX_README_BYTES} bytes; not read")
        return None
    dest = stage / "README.md"
    try:
        source.fetch("README.md", dest)
    except PullError as exc:  # a card is welcome, not required
        report.warnings.append(f"README.md not read: {exc.message}")
        return None
    card = read_readme(dest)
    report.warnings += card.problems
    return card


def fetch_verified(source: Source, pick: Pick, dest: Path) -> Work[tuple[Path, Verified]]:
    """Fetch one pick into the empty folder ``dest``, yielding each file fetched, and verify
    it; raises ``NotALora``."""
    weights = dest / (pick.name or "adapter") if pick.is_folder else dest / "weights.safetensors"
    if pick.is_folder:
        weights.mkdir()
    for n, f in enumerate(pick.files, 1):
        source.fetch(f.path, weights / f.path.rsplit("/", 1)[-1] if pick.is_folder else weights)
        yield Progress(n, len(pick.files), f.path)
    config = weights / PEFT_CONFIG if pick.is_folder else None
    return weights, verify(weights, config, f"{source.label}/{pick.path}".rstrip("/"))


def _stage(source: Source, pick: Pick, dest: Path, report: PullReport) -> Work[_Staged | None]:
    """Fetch one pick and its own sidecars; ``None`` (and a refusal line) if it is not a LoRA."""
    dest.mkdir()
    try:
        weights, verified = yield from fetch_verified(source, pick, dest)
    except NotALora as exc:
        report.refused.append(exc.message)
        return None
    card: dict[str, Any] = {}
    card_file: Path | None = None
    images: list[Path] = []
    sidecars: list[tuple[Path, str]] = []
    sizes = {f.path: f.size for f in source.files}
    for ref, kind in _carried(pick):
        if ref not in sizes or (sizes[ref] or 0) > MAX_SIDECAR_BYTES:
            continue
        local = dest / f"carried{len(images) + len(sidecars)}-{kind}"
        source.fetch(ref, local)
        if kind == "card":
            card_file = local.rename(local.with_suffix(".toml"))
            try:
                card = read_card(card_file)[0].to_dict()
            except SidecarError as exc:
                report.warnings.append(f"{ref}: card not carried over ({exc.message})")
                card_file = None
        elif kind == "image":
            if image_suffix(local):
                images.append(local)
        elif (problem := sidecar_problem(local)) is not None:
            report.refused.append(f"{source.label}/{ref}: {problem}")
        else:
            sidecars.append((local, kind))
    report.refused += [f"{source.label}/{p}: a pickle (can run code when loaded); not copied"
                       for p in _pickles_beside(source, pick)]
    return _Staged(pick, weights, verified, card, images, sidecars, card_file)


def _pickles_beside(source: Source, pick: Pick) -> list[str]:
    """Pickled files that ship with the pick (its own stem, or inside its PEFT folder).

    They are never fetched; saying so tells the user what was left behind."""
    if pick.is_folder:
        prefix = f"{pick.path}/" if pick.path else ""
        mine = [f.path for f in source.files if f.path.startswith(prefix) and "/" not in f.path[len(prefix):]]
    else:
        stem = pick.path[: -len(".safetensors")]
        mine = [f.path for f in source.files if f.path.startswith(stem + ".")]
    return [p for p in mine if p.lower().endswith(PICKLE_SUFFIXES)]


def _carried(pick: Pick) -> list[tuple[str, str]]:
    """Sidecars that travel with a pick, as (path, kind): lutnav's card ("card"), preview
    images ("image"), and for a file the ecosystem's cards (kind: their suffix)."""
    if pick.is_folder:
        prefix = f"{pick.path}/" if pick.path else ""
        return [(prefix + "lutnav.toml", "card"), *((f"{prefix}preview{s}", "image") for s in IMAGE_SUFFIXES)]
    stem = pick.path[: -len(".safetensors")]
    return [(f"{stem}.toml", "card"), *((f"{stem}.preview{s}", "image") for s in IMAGE_SUFFIXES),
            *((stem + suffix, suffix) for _, suffix, _ in JSON_SIDECARS)]


def _place(lib: Library, source: Source, item: _Staged, card: HubCard | None, shared: list[Path],
           category: str, theme: str, stem: str, opts: PullOptions, stage: Path,
           exported: ExportManifest | None = None) -> Placed:
    names = lib.names()
    target, status = choose_target(lib, category, theme, stem, is_folder=item.pick.is_folder,
                                   staged=item.path, overwrite=opts.overwrite, taken_names=names)
    rel = lib.relpath(target.weights)
    if status == "same" and (target.card.exists() or target.card.is_symlink()):
        return Placed(rel, "unchanged", item.verified)
    if status == "new" and not opts.force:  # (--overwrite of an entry asks for that place)
        twin = same_tensors(lib, item.path)
        if twin is not None:
            return Placed(twin, "duplicate", item.verified)
    slot = None if target.is_folder else claim_card(target.weights, replace=status == "replace", is_folder=False)
    if status != "same":
        move_into_place(item.path, target, stage)
    previews = place_previews(target, [*item.images, *shared], replace=status == "replace")
    for staged_sidecar, suffix in item.sidecars if not target.is_folder else ():
        dest = target.folder / f"{target.stem}{suffix}"
        if status == "replace" or not dest.exists():
            shutil.copyfile(staged_sidecar, dest)
    status_word = {"new": "new", "replace": "replaced", "same": "unchanged"}[status]
    if exported is not None and (not target.card.exists() or target.is_folder):
        _place_exported(target, item, exported)
        return Placed(rel, status_word, item.verified, previews)
    triggers = header_triggers(item.verified.header_fields, item.verified.metadata)
    values = card_fields(card, triggers, source=source.origin, previews=previews)
    values = {**values, **{k: v for k, v in item.card.items() if k not in ("previews", "source")}}
    if item.card.get("source") and not source.origin:
        values["source"] = item.card["source"]
    if slot is not None:
        write_card(slot.path, values, expected_digest=slot.digest, base=slot.values)
    else:  # a PEFT folder: its card (carried over from a replaced folder) is inside it
        current = target.card.read_bytes() if target.card.is_file() else None
        write_card(target.card, values, expected_digest=hashlib.sha256(current).hexdigest() if current else None)
    return Placed(rel, status_word, item.verified, previews)


def _place_exported(target, item: _Staged, exported: ExportManifest) -> None:
    """A lutnav export lands as it left: its card byte for byte, no card made up where it had
    none, and its section of the folder README added to the README here."""
    if exported.readme_section:
        section = exported.readme_section
        if target.stem != exported.name:  # landed under another name: the heading follows it
            heading = target.weights.name
            section = f"### {heading}\n" + section.split("\n", 1)[1] if "\n" in section else section
        add_readme_section(target.folder, target.stem, section)
    if item.card_file is not None and not target.card.exists():
        with atomic_write(target.card) as fh, open(item.card_file, "rb") as src:
            shutil.copyfileobj(src, fh)

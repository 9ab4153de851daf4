"""``lutnav outdated`` and ``pull --update-all``: entries whose Hub repo moved on.

An entry pulled from the Hub carries ``source = "<repo>@<commit>"`` in its card;
the repo's current commit says whether it is behind.  Updating replaces the
weights only after the new file verified, keeping the old one as
``<name>.prev.safetensors`` until the new one is in place and read back, and
refreshes only the card fields the user did not edit: a field still equal to
what the old model card said is lutnav's to refresh, anything else is the user's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from catalog.cards.card_file import read_card, write_card
from catalog.errors import CatalogError
from catalog.files.header import read_header
from catalog.index.library import Library
from catalog.progress import Work
from catalog.cards.sidecars import card_path
from catalog.index.entry import Entry

from . import hub
from .choose import candidates
from .errors import PullError, UpdateError
from .modelcard import HubCard, card_fields, header_triggers, read_readme
from .pipeline import HubSource, fetch_verified
from .place import carry_extras, clean_stem
from .staging import staging
from .verify import verify

SOURCE_RE = re.compile(r"^(?P<repo>[\w.\-]+(?:/[\w.\-]+)?)@(?P<commit>[0-9a-f]{40})$")
PREV_SUFFIX = ".prev.safetensors"


@dataclass(frozen=True)
class Outdated:
    rel: str
    name: str
    repo_id: str
    commit: str  # what the card says was pulled
    latest: str  # what the repo's main branch is at now


def tracked(lib: Library) -> list[tuple[Entry, str, str]]:
    """(entry, repo, commit) for every entry whose card names a Hub commit."""
    out = []
    for entry in lib.entries():
        match = SOURCE_RE.match(entry.source or "")
        if match and entry.format != "pickle":
            out.append((entry, match["repo"], match["commit"]))
    return out


def find_outdated(lib: Library) -> tuple[list[Outdated], list[str], int]:
    """Outdated entries, one problem line per repo that could not be asked, and how many
    entries were checked (their repo answered)."""
    items = tracked(lib)
    latest: dict[str, str | None] = {}
    problems: list[str] = []
    for _, repo, _ in items:
        if repo not in latest:
            try:
                latest[repo] = hub.latest_commit(repo)
            except PullError as exc:
                latest[repo] = None
                problems.append(str(exc))
    out = [Outdated(e.path, e.name, repo, commit, latest[repo])  # type: ignore[arg-type]
           for e, repo, commit in items if latest[repo] and latest[repo] != commit]
    return out, problems, sum(1 for _, repo, _ in items if latest[repo])


def update_entry(lib: Library, item: Outdated, *, keep_prev: bool = False) -> Work[str]:
    """Bring one entry to ``item.latest``, yielding each file fetched; returns its library path.
    Raises ``PullError``."""
    snap = hub.fetch_snapshot(item.repo_id, item.latest)
    source = HubSource(snap)
    weights = lib.abspath(item.rel)
    pick = _match(item, snap, weights.is_dir())
    with staging(lib) as stage:
        (stage / "new").mkdir()
        staged, verified = yield from fetch_verified(source, pick, stage / "new")
        old_card = _readme(hub.Snapshot(item.repo_id, item.commit, item.commit, ()), stage / "old.md")
        new_card = _readme(snap, stage / "new.md")
        old_triggers = _triggers(weights)
        _swap(staged, weights, stage, keep_prev)
        _refresh_card(weights, old_card, old_triggers, new_card,
                      header_triggers(verified.header_fields, verified.metadata), snap.source)
    lib.scan_all()
    return item.rel


def _match(item: Outdated, snap: hub.Snapshot, is_folder: bool):
    picks = [p for p in candidates(snap.files)[0] if p.is_folder == is_folder]
    base = re.sub(r"_\d+$", "", item.name)
    named = [p for p in picks if clean_stem(p.name or item.repo_id.rsplit("/", 1)[-1]) in (item.name, base)]
    if len(named) == 1:
        return named[0]
    if len(picks) == 1:
        return picks[0]
    raise UpdateError(f"{item.rel}: cannot tell which of {item.repo_id}'s {len(picks)} LoRAs it is",
                      hint=f"run `lutnav pull {item.repo_id} --file NAME --overwrite` with its "
                           "category, theme and name instead")


def _readme(snap: hub.Snapshot, dest: Path) -> HubCard | None:
    try:
        cached = hub.download(snap, "README.md")
    except PullError:
        return None
    dest.write_bytes(cached.read_bytes()[: 1024 * 1024 + 1])
    return read_readme(dest)


def _triggers(weights: Path) -> list[str]:
    path = weights / "adapter_model.safetensors" if weights.is_dir() else weights
    try:
        header = read_header(path)
    except (CatalogError, OSError):
        return []
    from catalog.detect.classify import classify

    return header_triggers(classify(header).header_fields, header.metadata)


def _swap(staged: Path, weights: Path, stage: Path, keep_prev: bool) -> None:
    """New weights in, old ones kept aside until the new ones read back as a LoRA."""
    is_folder = weights.is_dir()
    if is_folder:
        carry_extras(weights, staged)
        prev = stage / "previous"
    else:
        prev = weights.with_name(weights.name[: -len(".safetensors")] + PREV_SUFFIX)
    os.replace(weights, prev)
    try:
        os.replace(staged, weights)
        verify(weights, weights / "adapter_config.json" if is_folder else None, str(weights))
    except BaseException:
        if is_folder and weights.exists():
            os.replace(weights, stage / "rejected")
        os.replace(prev, weights)
        raise
    if not keep_prev and not is_folder:
        prev.unlink()


def _refresh_card(weights: Path, old: HubCard | None, old_triggers: list[str], new: HubCard | None,
                  new_triggers: list[str], source: str) -> None:
    path = card_path(weights)
    try:
        current, digest = read_card(path)
    except CatalogError as exc:
        raise UpdateError(f"weights updated, but the card could not be read ({exc})") from None
    mine = current.to_dict()
    before = card_fields(old, old_triggers, source=None, previews=[]) if old else {}
    after = card_fields(new, new_triggers, source=None, previews=[])
    updates: dict = {"source": source}
    for key in (set(before) | set(after)) - {"previews", "source"}:
        untouched = mine.get(key) == before.get(key)
        if untouched and mine.get(key) != after.get(key):
            updates[key] = after.get(key)
    write_card(path, updates, expected_digest=digest, base=mine)

"""Turning header facts + sidecar cards into one index row.

The row keeps the header-derived card fields too, so a sidecar edit re-merges
the sources without reading the (possibly large) weights file again.
"""

from __future__ import annotations

import gc
import time

import orjson

from catalog.cards.sidecars import read_entry_cards
from catalog.index.analyze import analyze
from catalog.index.analyze import forget as forget_headers
from catalog.index.db import JSON_COLUMNS, decode  # noqa: F401  (decode: re-exported for callers of rows)
from catalog.index.entry import CARD_FIELDS, LIST_FIELDS, blank_facts
from catalog.detect.metadata_claims import claim_family
from catalog.index.library_folder import LibraryFolder
from catalog.detect.registry import sdxl_variant
from catalog.index.stored_metadata import bounded_field
from catalog.index.walk import Candidate, category_theme, entry_name
from catalog.index.row_codec import deflate, fact_sources, pack


#: per-process cache of parsed folder READMEs and folder listings, for one scan
_README_CACHE: dict = {}


def index_rows(cands: list[Candidate]) -> list[dict]:
    """Finished rows for stale entries: header facts and sidecar cards together.

    The unit of work of a scan (inline or in a worker process: one pickle round
    trip per chunk, and the parent only writes to SQLite).
    """
    # Headers make tens of thousands of short-lived containers and none in a cycle:
    # letting the collector walk them while the chunk is read costs a fifth of the scan.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return [build_row(c, analyze(str(c.abs), c.kind)) for c in cands]
    finally:
        if collecting:
            gc.enable()


def forget() -> None:
    """Release per-process caches once a scan is over."""
    _README_CACHE.clear()
    forget_headers()


def build_row(cand: Candidate, facts: dict) -> dict:
    """The ``entries`` row of one entry (its header metadata stays in the file: ``show`` reads it)."""
    category, theme = category_theme(cand.rel)
    row = {
        "path": cand.rel, "kind": cand.kind, "category": category, "theme": theme,
        "name": entry_name(cand.rel), "size": cand.size, "mtime_ns": cand.mtime_ns,
        "inode": cand.inode, "sidecar_sig": cand.sidecar_sig, **blank_facts(),
    }
    facts.pop("metadata", None)
    row.update(facts)
    row["warnings"] = list(row["warnings"] or [])
    _merge_cards(cand, row)
    return _encode(row)


def reread_cards(lib: LibraryFolder, cand: Candidate) -> dict | None:
    """Re-merge sidecars of an entry whose weights did not change."""
    found = list(lib.db.query("select * from entries where path = ?", [cand.rel]))
    if not found:
        return None
    row = decode(found[0])
    row["sidecar_sig"] = cand.sidecar_sig
    row["warnings"] = [w for w in row["warnings"] if not w.startswith(_CARD_WARNING_MARKS)]
    _merge_cards(cand, row)
    return _encode(row)


_CARD_WARNING_MARKS = ("sidecar: ", "card says ")


def _merge_cards(cand: Candidate, row: dict) -> None:
    result = read_entry_cards(cand.abs, row["header_fields"] or {}, row["header_sources"] or {},
                              readme_cache=_README_CACHE)
    sources: dict[str, str] = {}
    for name in CARD_FIELDS:
        value, source = result.fields.get(name, (None, None))
        row[name] = value if value is not None else ([] if name in LIST_FIELDS else None)
        if source:
            sources[name] = source
    folder = cand.rel.rsplit("/", 1)[0] if "/" in cand.rel else ""
    if cand.kind == "folder":
        folder = cand.rel
    row["previews"] = [f"{folder}/{p}" if folder else p for p in result.previews]
    _claim_picks(row)
    sources.update(fact_sources(row))
    row["sources"] = sources
    row["card_digest"] = result.card_digest
    row["warnings"] = row["warnings"] + [f"sidecar: {w}" for w in result.warnings]
    row["base_variant"] = sdxl_variant(row["base_model"], row.get("base_model_claim"), row.get("base_model_name")) \
        or row.get("base_variant")
    claim = claim_family(row.get("base_model_claim"))
    if claim and row["base_model"] not in ("unknown", None, claim, "llm") and row["format"] != "pickle":
        row["warnings"].append(
            f"card says the base is {row['base_model_claim']!r} ({claim}) but the tensor shapes say "
            f"{row['base_model']} — the shapes win; fix the card")
    row["scanned_at"] = time.time()


_UNSETTLED = "base model unknown: the shapes fit "
_UNSETTLED_END = ") and nothing settles which"


def _claim_picks(row: dict) -> None:
    """A card's base-model claim picks among the families the shapes allow (never against them).

    The header alone said "flux or chroma"; a Civitai ``baseModel: Flux.1 D`` or a Hub card's
    ``base_model`` settles it, as header metadata would have. Re-run on every card change, so
    the shapes' words move between the warning (unsettled) and the evidence (picked).
    """
    candidates = row.get("base_candidates") or []
    if not candidates:
        return
    line = next((w for w in row["warnings"] if w.startswith(_UNSETTLED) and w.endswith(_UNSETTLED_END)), None)
    shapes = row.get("evidence") if line is None else line[line.index(" (") + 2: -len(_UNSETTLED_END)]
    claim = claim_family(row.get("base_model_claim"))
    if claim in candidates:
        row["warnings"] = [w for w in row["warnings"] if w is not line]
        row["base_model"], row["evidence"] = claim, shapes
    elif line is None:  # a claim that picked before is gone: back to unknown, with the reason
        row["base_model"], row["evidence"] = "unknown", None
        row["warnings"].append(f"{_UNSETTLED}{' or '.join(candidates)} ({shapes}{_UNSETTLED_END}")


#: columns whose values come from a file's header or sidecars, and so are bounded when stored
_FROM_FILES = (*CARD_FIELDS, "base_model_name", "header_fields", "header_sources", "warnings")


def _encode(row: dict) -> dict:
    out = dict(row)
    for col in _FROM_FILES:
        if col in out:
            out[col] = bounded_field(out[col])
    pack(out)
    for col in JSON_COLUMNS:
        if col in out and not isinstance(out[col], str | None):
            out[col] = orjson.dumps(out[col]).decode()
    deflate(out)
    return out

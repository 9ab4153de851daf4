"""What the index keeps of a file's header metadata: bounded, and whole again on ``show``.

A kohya ``ss_tag_frequency`` can be tens of megabytes; two such files made the
index 100 MB, and every scan paid to write it. The index keeps small values as
they are and a one-line stand-in for large ones; ``show`` reads the full
metadata back from the file when a stand-in is there, so ``show --json`` is
the same as before. Nothing else reads the stored metadata.

The fields derived from the header and the sidecars (title, description,
trigger words, training facts, …) are bounded the same way: long text is cut
with a note saying so, long lists and tables are shortened. What a user reads
in ``ls`` and ``show`` stays useful; the files keep the full text.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from catalog.errors import CatalogError
from catalog.files.header import read_header

#: a value longer than this (in characters) is kept as a stand-in
MAX_VALUE_CHARS = 64 * 1024
#: all stored keys and values together, at most
MAX_TOTAL_CHARS = 512 * 1024
#: stand-ins start with this; a file's own value that does only costs a re-read
MARK = "\u0000lutnav: not stored"


def bounded(metadata: dict[str, str]) -> dict[str, str]:
    """The metadata to store: small values as they are, stand-ins for large ones."""
    out = {k: (v if len(v) <= MAX_VALUE_CHARS else _stand_in(v)) for k, v in metadata.items()}
    if sum(len(k) + len(v) for k, v in out.items()) > MAX_TOTAL_CHARS:
        total = sum(len(k) + len(v) for k, v in metadata.items())
        return {MARK: f"{MARK}: {len(metadata)} keys, {total:,} characters; read from the file by show"}
    return out


def _stand_in(value: str) -> str:
    return f"{MARK}: {len(value):,} characters; read from the file by show"


def is_partial(stored: dict[str, str]) -> bool:
    return any(k.startswith(MARK) or v.startswith(MARK) for k, v in stored.items())


def full(stored_json: str | None, weights: Path, header_digest: str | None) -> tuple[dict, str | None]:
    """The metadata as ``show`` reports it, and a warning when it could not be made whole."""
    stored = orjson.loads(stored_json) if stored_json else {}
    if not is_partial(stored):
        return stored, None
    try:
        header = read_header(weights)
    except (CatalogError, OSError) as exc:
        return stored, f"large metadata values were not stored and the file cannot be read now ({exc})"
    if header_digest and header.fingerprint != header_digest:
        return stored, "the file changed since the last scan; run `lutnav scan` to see its metadata"
    return dict(header.metadata), None


#: a text field longer than this is cut (the file keeps all of it)
MAX_FIELD_CHARS = 32 * 1024
#: inside a list or a table: text per item, and items per list or table
MAX_ITEM_CHARS = 1024
MAX_ITEMS = 256


def bounded_field(value, *, top: bool = True):
    """``value`` (text, number, list or table from a header or sidecar) cut to a bounded size."""
    if isinstance(value, str):
        limit = MAX_FIELD_CHARS if top else MAX_ITEM_CHARS
        if len(value) <= limit:
            return value
        return value[:limit] + f"… [cut: {len(value):,} characters in the file]"
    if isinstance(value, list):
        return [bounded_field(v, top=False) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:MAX_ITEM_CHARS]: bounded_field(v, top=False)
                for k, v in list(value.items())[:MAX_ITEMS]}
    return value

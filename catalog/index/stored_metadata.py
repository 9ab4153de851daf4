"""What the index keeps of a file's header metadata: little, and whole again on ``show``.

Only ``show`` reads the stored metadata, and the file holds all of it: a kohya
``ss_tag_frequency`` can be tens of megabytes, and even a plain sd-scripts
header carries 2-4 KB of ``ss_*`` keys, which at a million entries would be
gigabytes of index that nothing lists or searches. So the index keeps a small
header's metadata as it is (diffusers' ``{"format": "pt"}``, a short modelspec)
and a one-line stand-in for the rest; ``show`` reads the full metadata back
from the file when a stand-in is there, so ``show --json`` is the same as
before, and says so when the file changed since the scan.

The fields derived from the header and the sidecars (title, description,
trigger words, training facts, …) are bounded differently: they are listed and
searched, so long text is cut with a note saying so and long lists and tables
are shortened. What a user reads in ``ls`` and ``show`` stays useful; the files
keep the full text.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from catalog.errors import CatalogError
from catalog.files.header import read_header

#: metadata of at most this many characters (keys and values together) is stored as it is
MAX_TOTAL_CHARS = 1024
#: stand-ins start with this; a file's own value that does only costs a re-read
MARK = "\u0000lutnav: not stored"


def bounded(metadata: dict[str, str]) -> dict[str, str]:
    """The metadata to store: a small one as it is, else one stand-in that says what is in the file."""
    total = sum(len(k) + len(v) for k, v in metadata.items())
    if total <= MAX_TOTAL_CHARS:
        return metadata
    return {MARK: f"{len(metadata)} keys, {total:,} characters; read from the file by show"}


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

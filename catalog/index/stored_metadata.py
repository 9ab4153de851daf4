"""A file's header metadata: not kept in the index, read whole from the file by ``show``.

Only ``show`` reports the metadata, and the file holds all of it: a kohya
``ss_tag_frequency`` can be tens of megabytes, and even a plain sd-scripts
header carries 2-4 KB of ``ss_*`` keys, which at a million entries would be
gigabytes of index that nothing lists or searches. So the index keeps none of
it; ``show`` reads it from the file (one header, a millisecond or two), so
``show --json`` is the same as before, and says so when the file changed since
the scan.

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

#: stand-ins that indexes of earlier versions hold start with this (the file is read instead)
MARK = "\u0000lutnav: not stored"


def is_partial(stored: dict[str, str]) -> bool:
    return any(k.startswith(MARK) or v.startswith(MARK) for k, v in stored.items())


def full(stored_json: str | None, weights: Path, header_digest: str | None) -> tuple[dict, str | None]:
    """The metadata as ``show`` reports it, and a warning when it could not be made whole.

    The index stores none (earlier versions stored some, and stand-ins for large values):
    a file with a valid header (``header_digest``) is read; pickles and broken files
    have none to show.
    """
    if stored_json is None and header_digest is None:
        return {}, None
    stored = orjson.loads(stored_json) if stored_json else {}
    if stored_json is not None and not is_partial(stored):
        return stored, None
    try:
        header = read_header(weights)
    except (CatalogError, OSError) as exc:
        return stored, f"the metadata is kept in the file, which cannot be read now ({exc})"
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

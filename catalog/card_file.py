"""Reading and writing lutnav's card file — atomically, and never over someone else's edit.

A card edit is a read-modify-write across two commands (``show`` then ``card
--set``) or across a TUI session, so the writer is told the digest of the bytes
the edit was based on and refuses when the file has changed since.  The new
bytes reach the disk through a temp file in the same folder, fsync and rename:
a crash or a schema error leaves the old card exactly as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from catalog.card import Card, FIELD_KINDS, card_schema, check_card_dict
from catalog.errors import CardConflict, CardError, SidecarError
from .durable import fsync_dir, temp_prefix

#: A card is a few hundred bytes; the bound is the one every sidecar read has.
MAX_CARD_BYTES = 4 * 1024 * 1024


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_card_bytes(path: Path) -> bytes | None:
    """The card's bytes, or ``None`` when there is no card; bounded."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise SidecarError("not a regular file", path=path)
    if st.st_size > MAX_CARD_BYTES:
        raise SidecarError(f"{st.st_size} bytes, over the {MAX_CARD_BYTES} byte limit for a card", path=path)
    with open(path, "rb") as fh:
        return fh.read(MAX_CARD_BYTES + 1)


def parse_card_bytes(path: Path, data: bytes) -> dict[str, Any]:
    """Decode TOML; errors name the line (tomllib puts it in the message)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SidecarError(f"not UTF-8 text (bad byte at offset {err.start})", path=path) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SidecarError(f"not valid TOML: {err}", path=path) from None


def read_card(path: str | Path) -> tuple[Card, str | None]:
    """The card and the digest of its bytes; ``(Card(), None)`` when there is none.

    Strict: a malformed file or a value that breaks the schema raises
    ``SidecarError`` naming the line or key.  (Scans read cards leniently through
    :mod:`catalog.sidecars` instead, keeping the good fields.)
    """
    path = Path(path)
    data = read_card_bytes(path)
    if data is None:
        return Card(), None
    clean, problems = check_card_dict(parse_card_bytes(path, data))
    if problems:
        raise SidecarError("; ".join(message for _, message in problems), path=path)
    return Card.from_dict(clean), digest(data)


def write_card(path: str | Path, updates: dict[str, Any], *, expected_digest: str | None) -> Card:
    """Merge ``updates`` into the card at ``path`` and write it atomically.

    ``expected_digest`` is the digest the caller read (``None``: it expected no
    card).  A ``None`` update clears a field; a dict update to ``training`` merges
    key by key.  Raises ``CardConflict`` if the file changed, ``CardError`` if the
    result breaks the schema, ``SidecarError`` if the current file cannot be read;
    in every such case the file on disk is left byte-for-byte as it was.
    """
    path = Path(path)
    if path.suffix != ".toml":
        raise CardError("a card is a .toml file; refusing to write anything else", path=path)
    if not path.parent.is_dir():
        raise CardError("the folder for this card does not exist", path=path)
    current = read_card_bytes(path)
    _check_unchanged(path, current, expected_digest)
    raw = parse_card_bytes(path, current) if current is not None else {}

    merged = _apply(raw, updates)
    clean, problems = check_card_dict(merged)
    if problems:
        messages = [m if key in updates else f"{m} (already in the file: fix or remove it there)"
                    for key, m in problems]
        raise CardError("; ".join(messages), path=path)
    card = Card.from_dict(clean)
    _validate_schema(path, card.to_dict())

    mode = stat.S_IMODE(path.stat().st_mode) if current is not None else 0o644
    _atomic_write(path, tomli_w.dumps(card.to_dict()).encode("utf-8"), mode, expected_digest)
    return card


def _check_unchanged(path: Path, current: bytes | None, expected: str | None) -> None:
    now = digest(current) if current is not None else None
    if now != expected:
        what = "was created" if expected is None else "was deleted" if now is None else "was edited"
        raise CardConflict(f"the card {what} since it was read; nothing written", path=path)


def _apply(raw: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    merged = dict(raw)
    for key, value in updates.items():
        if isinstance(value, dict) and FIELD_KINDS.get(key) == "table":
            base = merged.get(key) if isinstance(merged.get(key), dict) else {}
            value = {k: v for k, v in {**base, **value}.items() if v is not None} or None
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _validate_schema(path: Path, values: dict[str, Any]) -> None:
    """The shipped schema is the contract other tools read; check it too."""
    from jsonschema import Draft202012Validator  # only card writes pay for the import

    errors = sorted(Draft202012Validator(card_schema()).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.path) or "(card)"
        raise CardError(f"`{key}`: {err.message}", path=path)


def _atomic_write(path: Path, data: bytes, mode: int, expected: str | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        # The edit window between read and rename is short but real; look once more.
        _check_unchanged(path, read_card_bytes(path), expected)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)

"""Reading and writing lutnav's card file — atomically, one writer at a time, and never over
someone else's edit.

A card edit is a read-modify-write across two commands (``show`` then ``card
--set``), across a TUI session, or between two commands racing.  The writer is
told the digest of the bytes the edit was based on (and, when known, the values
it saw).  Under an exclusive lock on the card's folder it re-reads the file; when
another writer got there first it re-applies the edit to the new text as long as
the two edits touch different fields, and refuses with :class:`CardConflict`
naming the field when they do not.  The text is edited in place
(:mod:`catalog.cards.card_text`), so the user's comments and layout survive, and the
new bytes reach the disk through a temp file in the same folder, fsync and
rename: a crash or a schema error leaves the old card exactly as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from catalog.cards.card import Card, FIELD_KINDS, card_schema, check_card_dict, check_field
from catalog.cards.card_text import CardTextError, edit_text, plain
from catalog.errors import CardBusy, CardConflict, CardError, CardTaken, CardWriteError, SidecarError
from catalog.files.textfile import UTF8_BOM, decode_utf8, has_bom, loads_toml
from catalog.files.durable import atomic_write

#: A card is a few hundred bytes; the bound is the one every sidecar read has.
MAX_CARD_BYTES = 4 * 1024 * 1024
#: How long a card write waits for another writer in the same folder before giving up.
LOCK_WAIT_S = 30.0
#: Re-reads when a program that takes no lock (an editor) saves during a write.
_ATTEMPTS = 3


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


def card_text(path: Path | str, data: bytes) -> str:
    """The card's text (a BOM, as Notepad writes it, is dropped)."""
    try:
        return decode_utf8(data)
    except UnicodeDecodeError as err:
        raise SidecarError(f"not UTF-8 text (bad byte at offset {err.start})", path=path) from None


def parse_card_bytes(path: Path | str, data: bytes) -> dict[str, Any]:
    """Decode TOML; errors name the line (tomllib puts it in the message)."""
    try:
        return loads_toml(card_text(path, data))
    except tomllib.TOMLDecodeError as err:
        raise SidecarError(f"not valid TOML: {err}", path=path) from None


def read_card(path: str | Path) -> tuple[Card, str | None]:
    """The card and the digest of its bytes; ``(Card(), None)`` when there is none.

    Strict: a malformed file or a value that breaks the schema raises
    ``SidecarError`` naming the line or key.  (Scans read cards leniently through
    :mod:`catalog.cards.sidecars` instead, keeping the good fields.)
    """
    path = Path(path)
    data = read_card_bytes(path)
    if data is None:
        return Card(), None
    clean, problems = check_card_dict(parse_card_bytes(path, data), card_text(path, data))
    if problems:
        raise SidecarError("; ".join(message for _, message in problems), path=path)
    return Card.from_dict(clean), digest(data)


def indexed_card_values(row: dict[str, Any]) -> dict[str, Any]:
    """The card's values as the index last read them (an entry row or ``show --json``):
    the fields whose source is the card.  Previews are merged with the files found
    beside the LoRA, so they are left out (an edit of them is checked against the file)."""
    sources = row.get("sources") or {}
    return {k: row[k] for k in FIELD_KINDS
            if k != "previews" and sources.get(k) == "card" and row.get(k) is not None}


def write_card(path: str | Path, updates: dict[str, Any], *, expected_digest: str | None,
               base: dict[str, Any] | None = None, fresh: bool = False) -> Card:
    """Apply ``updates`` to the card at ``path`` and write it atomically.

    ``expected_digest`` is the digest of the bytes the caller read (``None``: it
    saw no card) and ``base`` the values it saw, when it knows them.  A ``None``
    update clears a field; a dict update to ``training`` merges key by key;
    ``fresh`` replaces the whole card instead (comments included).  When the file
    changed since it was read, the edit is applied to the new text unless a field
    it sets was changed too (or, without ``base``, holds another value now): then
    ``CardConflict``.  ``CardError`` if the result breaks the schema,
    ``SidecarError`` if the current file cannot be read, ``CardBusy`` if another
    writer holds the folder too long; in every such case the file on disk is left
    byte-for-byte as it was.
    """
    path = Path(path)
    if path.suffix != ".toml":
        raise CardError("a card is a .toml file; refusing to write anything else", path=path)
    if not path.parent.is_dir():
        raise CardError("the folder for this card does not exist", path=path)
    _refuse_link(path)
    seen_digest = expected_digest
    seen = {} if expected_digest is None else base
    with card_lock(path):
        for _ in range(_ATTEMPTS):
            _refuse_link(path)
            current = read_card_bytes(path)
            now_digest = digest(current) if current is not None else None
            now = parse_card_bytes(path, current) if current is not None else {}
            if now_digest != seen_digest:
                _check_rebase(path, seen, now, updates, fresh, changed=_what_changed(seen_digest, now_digest))
            data, card = _edited(path, current, updates, fresh)
            if data == current:
                return card
            mode = stat.S_IMODE(path.stat().st_mode) if current is not None else 0o644
            try:
                _atomic_write(path, data, mode, now_digest)
            except CardConflict:  # an editor that takes no lock saved meanwhile: look again
                seen_digest, seen = now_digest, now
                continue
            except OSError as err:  # a read-only folder, a full disk: one line, the old card intact
                raise CardWriteError(f"cannot write the card ({err.strerror or err})", path=path) from None
            return card
    raise CardConflict("the card kept changing while it was being written; nothing written", path=path)


def _refuse_link(path: Path) -> None:
    """A card that is a link is not read by a scan (its target may lie outside the library),
    so an edit through it could only be checked against nothing: replacing the link would copy
    the target's text into the library, and a clash would repeat on every retry."""
    if path.is_symlink():
        raise CardTaken("the card is a link; lutnav reads and writes cards only as files of their own, "
                        "nothing written", path=path,
                        hint="replace the link by a copy of the file it points at, then run the command again")


def _what_changed(before: str | None, now: str | None) -> str:
    return "was created" if before is None else "was deleted" if now is None else "was edited"


def _check_rebase(path: Path, seen: dict[str, Any] | None, now: dict[str, Any], updates: dict[str, Any],
                  fresh: bool, *, changed: str) -> None:
    """Refuse when re-applying the edit to the changed card would undo another edit."""
    if fresh:
        raise CardConflict(f"the card {changed} since it was read; nothing written", path=path,
                           fields=[(k, now.get(k), v) for k, v in updates.items()])
    clashes = []
    for key, value in updates.items():
        if isinstance(value, dict) and FIELD_KINDS.get(key) == "table":
            for sub, sub_value in value.items():
                clashes += _clash(f"{key}.{sub}", _sub(seen, key, sub), _sub(now, key, sub), sub_value,
                                  seen is None)
        else:
            clashes += _clash(key, _norm(key, (seen or {}).get(key)), _norm(key, now.get(key)),
                              _norm(key, value), seen is None)
    if clashes:
        names = ", ".join(f"`{k}`" for k, _, _ in clashes)
        detail = "; ".join(f"`{k}` is {_show(n)} on disk now, this edit sets {_show(w)}" for k, n, w in clashes)
        raise CardConflict(f"the card {changed} since it was read, and {names} changed there too "
                           f"({detail}); nothing written", path=path, fields=clashes)


def _clash(key: str, before: Any, now: Any, wanted: Any, unknown_base: bool) -> list[tuple[str, Any, Any]]:
    if plain(now) == plain(wanted):
        return []
    if unknown_base or plain(before) != plain(now):
        return [(key, now, wanted)]
    return []


def _sub(values: dict[str, Any] | None, key: str, sub: str) -> Any:
    table = (values or {}).get(key)
    return table.get(sub) if isinstance(table, dict) else None


def _norm(key: str, value: Any) -> Any:
    """Compare values the way the card reads them (``0.7`` and ``"0.7"`` alike)."""
    if value is None or key not in FIELD_KINDS:
        return value
    try:
        return check_field(key, value)
    except ValueError:
        return value


def _show(value: Any) -> str:
    return "unset" if value is None else repr(plain(value))


def _edited(path: Path, current: bytes | None, updates: dict[str, Any], fresh: bool) -> tuple[bytes, Card]:
    """The new bytes and the card they hold, checked as strictly as any read."""
    text = card_text(path, current) if current is not None else ""
    try:
        new_text = edit_text(text, updates, fresh=fresh)
    except CardTextError as err:
        raise SidecarError(f"not valid TOML: {err}", path=path) from None
    try:
        raw = loads_toml(new_text)
    except tomllib.TOMLDecodeError as err:  # an update lutnav could not place; never written
        raise CardError(f"the edited card would not be valid TOML ({err})", path=path) from None
    clean, problems = check_card_dict(raw, new_text)
    if problems:
        messages = [m if key in updates else f"{m} (already in the file: fix or remove it there)"
                    for key, m in problems]
        raise CardError("; ".join(messages), path=path)
    card = Card.from_dict(clean)
    _validate_schema(path, card.to_dict())
    bom = UTF8_BOM if current is not None and has_bom(current) and not fresh else b""
    return bom + new_text.encode("utf-8"), card


@contextlib.contextmanager
def card_lock(path: str | Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Exclusive lock for a read-check-write of the cards in ``path``'s folder.

    The lock is a ``flock`` on the folder itself: nothing extra is created beside
    the user's files, it works in a read-only ``.lutnav`` and outside any library,
    and it dies with its holder.  Where the folder cannot be opened or the file
    system has no locks (some network shares, Windows), the write goes on unlocked
    and the digest checks alone guard it.  A writer that holds it longer than
    ``wait_s`` (a stopped process) gets ``CardBusy``, not a hang.
    """
    fd = _lock_folder(Path(path).parent, wait_s)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing drops the lock


def _lock_folder(folder: Path, wait_s: float) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise CardBusy(f"waited {wait_s:g} s for another writer of cards in this folder",
                               path=folder) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        except OSError:  # no locks on this file system
            os.close(fd)
            return None


def _check_unchanged(path: Path, current: bytes | None, expected: str | None) -> None:
    now = digest(current) if current is not None else None
    if now != expected:
        raise CardConflict(f"the card {_what_changed(expected, now)} since it was read; nothing written",
                           path=path)


def _validate_schema(path: Path, values: dict[str, Any]) -> None:
    """The shipped schema is the contract other tools read; check it too."""
    from jsonschema import Draft202012Validator  # only card writes pay for the import

    errors = sorted(Draft202012Validator(card_schema()).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.path) or "(card)"
        raise CardError(f"`{key}`: {err.message}", path=path)


def _atomic_write(path: Path, data: bytes, mode: int, expected: str | None) -> None:
    # The edit window between read and rename is short but real; look once more.
    with atomic_write(path, mode=mode,
                      before_replace=lambda: _check_unchanged(path, read_card_bytes(path), expected)) as fh:
        fh.write(data)

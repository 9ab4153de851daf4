"""One error family for the catalog.

Every error names the file (and key or line) it is about, what was expected,
and what to do; the CLI prints ``str(err)`` as one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class CatalogError(Exception):
    """Base of every error the catalog raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        if hint is not None:
            self.hint = hint
        text = f"{self.path}: {message}" if self.path else message
        if self.hint:
            text = f"{text} — {self.hint}"
        super().__init__(text)


# --- library -----------------------------------------------------------------


class LibraryNotFound(CatalogError, FileNotFoundError):
    hint = "pass --library DIR (or set LUTNAV_LIBRARY), or run `lutnav demo` to create a demo library"


class PathOutsideLibrary(CatalogError, ValueError):
    hint = "give a path inside the library"


class EntryNotFound(CatalogError, LookupError):
    hint = "run `lutnav ls` or `lutnav search` to see the names, or `lutnav scan` if the file is new"


class AmbiguousName(CatalogError, LookupError):
    hint = "pass one of the paths instead of the name"


class IndexBusy(CatalogError):
    """Another process holds the library lock, and this caller asked not to wait."""

    hint = "try again when it finishes (readers such as ls, show and search never wait)"


class FolderNotWritable(CatalogError, PermissionError):
    hint = "pick a folder you can write, or fix its permissions"


class IndexReadOnly(CatalogError, PermissionError):
    """The library's index cannot be written by this user: browsing only."""

    hint = "browse it with ls, show and search; to edit, use a copy you can write or ask its owner"


# --- safetensors files ----------------------------------------------------------


class SafetensorsError(CatalogError, ValueError):
    """A file that the safetensors library would refuse to open."""

    hint = "the file is broken for every loader; download or export it again"


class HeaderTooLarge(SafetensorsError):
    pass


class HeaderJSONError(SafetensorsError):
    pass


class HeaderEntryError(SafetensorsError):
    pass


class TruncatedFile(SafetensorsError):
    pass


# --- sidecars and cards ---------------------------------------------------------


class SidecarError(CatalogError, ValueError):
    """A sidecar that cannot be read; scans record it as a warning, not a failure."""

    hint = "fix or delete the sidecar; the LoRA itself is still indexed"


class CardError(CatalogError, ValueError):
    """A card edit that does not fit the model-card schema."""

    hint = "see `lutnav card --help` for the keys and their types"


class CardConflict(CatalogError):
    hint = "the card changed on disk since it was read; run `lutnav show` and apply your edit again"

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


class IndexDamaged(CatalogError):
    """The index file is not a SQLite database lutnav can read (garbage bytes, a bad disk):
    it holds only what a scan rebuilds from the files, so the way out is to rebuild it."""

    hint = ("move that file away (it holds only what a scan rebuilds: the index and cached hashes; "
            "cards and sidecars are beside the LoRAs) and run `lutnav scan`")


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
    """The card changed on disk since it was read, in a field this edit also sets.

    ``fields`` holds ``(key, value on disk now, value this edit wanted)`` for each
    clash, so a front end can say exactly what to run.
    """

    hint = "read the card again and repeat the edit if it still applies"

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None,
                 fields: list[tuple[str, object, object]] | None = None):
        self.fields = list(fields or [])
        super().__init__(message, path=path, hint=hint)


class CardTaken(CatalogError, FileExistsError):
    """The name where a LoRA's card would go belongs to another file (another entry's card,
    a project file, a link): lutnav never writes there, whatever the flags."""

    hint = "choose another name for the output, or move that file away"


class CardExists(CatalogError, FileExistsError):
    """A card is already where the output's card would go, and replacing it was not asked for."""

    hint = "pass --overwrite to replace it, or choose another name for the output"


class CardWriteError(CatalogError, OSError):
    """The card could not be written (a read-only folder, a full disk); the old one is intact."""

    hint = "check the folder's permissions and free space; nothing was changed"


class CardBusy(CatalogError):
    hint = "another program is writing cards in this folder; try again when it finishes"

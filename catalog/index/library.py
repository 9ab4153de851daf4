"""A library: a folder tree of LoRAs plus its index in ``.lutnav/``, and what front ends ask of it.

The folder, its index, lock and config are :class:`LibraryFolder`; ``Library``
adds the verbs (scan, list, search, look up) as thin calls into
:mod:`catalog.index.scan` and :mod:`catalog.index.query`. Those take the folder
and never import this module, so the catalog has no import circle; they are
imported on first use, so opening a library stays cheap.
"""

from __future__ import annotations

from catalog.index.entry import Entry, EntryDetails
from catalog.index.library_folder import (  # noqa: F401  (the library's names, in one place)
    INDEX_DIR, INDEX_FILE, LibraryFolder, check_folder_writable, default_root,
)


class Library(LibraryFolder):
    """Entry point of the catalog: every front end goes through one of these."""

    def scan(self, **kwargs):
        from catalog.index.scan import scan

        return scan(self, **kwargs)

    def scan_all(self, **kwargs):
        from catalog.index.scan import run_scan

        return run_scan(self, **kwargs)

    def entries(self, **kwargs) -> list[Entry]:
        from catalog.index.query import list_entries

        return list_entries(self, **kwargs)

    def search(self, query: str, **kwargs) -> list[Entry]:
        from catalog.index.query import search

        return search(self, query, **kwargs)

    def resolve(self, name_or_path: str) -> str:
        from catalog.index.query import resolve

        return resolve(self, name_or_path)

    def names(self) -> set[str]:
        from catalog.index.query import entry_names

        return entry_names(self)

    def loadable_paths(self) -> list[str]:
        from catalog.index.query import loadable_paths

        return loadable_paths(self)

    def strength(self, rel: str) -> float | None:
        from catalog.index.query import strength

        return strength(self, rel)

    def get(self, name_or_path: str) -> Entry:
        """The entry given by its name or path, every column of it."""
        from catalog.index.query import get

        return get(self, name_or_path)

    def details(self, name_or_path: str) -> EntryDetails:
        """What ``show`` tells: the entry with its header metadata, hashes and reading warnings."""
        from catalog.index.query import show

        return show(self, name_or_path)

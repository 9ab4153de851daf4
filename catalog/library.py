"""A library: a folder tree of LoRAs plus its index in ``.lutnav/``."""

from __future__ import annotations

import fcntl
import os
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from . import db as dbmod
from .errors import LibraryNotFound, PathOutsideLibrary

INDEX_DIR = ".lutnav"


def default_root() -> Path:
    """``$LUTNAV_LIBRARY``, else ``./loras``."""
    return Path(os.environ.get("LUTNAV_LIBRARY") or "loras")


class Library:
    """Entry point of the catalog: every front end goes through one of these."""

    def __init__(self, root: str | Path):
        root = Path(root).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise LibraryNotFound(f"library {what}", path=root)
        self.root = root.resolve()
        self._thread_lock = threading.RLock()
        self._lock_depth = 0

    # --- storage -------------------------------------------------------------

    @property
    def index_dir(self) -> Path:
        path = self.root / INDEX_DIR
        path.mkdir(exist_ok=True)
        return path

    @cached_property
    def db(self) -> "dbmod.sqlite_utils.Database":
        with self.lock():
            return dbmod.connect(self.index_dir / "catalog.db")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive inter-process lock: one scan (or migration) at a time.

        Re-entrant within this object (a scan opens the db under the lock), and
        serialised between threads of this process by an ``RLock``.
        """
        with self._thread_lock:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            with open(self.index_dir / "lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)

    @cached_property
    def config(self) -> dict:
        """``.lutnav/config.toml`` (mix guards, preview models); empty when absent."""
        path = self.root / INDEX_DIR / "config.toml"
        if not path.is_file():
            return {}
        from .errors import CatalogError

        try:
            return tomllib.loads(path.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CatalogError(f"config is not valid TOML ({exc})", path=path,
                               hint="fix the file or delete it to use the defaults") from None

    # --- paths ---------------------------------------------------------------

    def abspath(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def relpath(self, path: str | Path) -> str:
        """Library-relative '/'-path of ``path``; refuses anything outside."""
        p = Path(path).expanduser()
        p = (p if p.is_absolute() else Path.cwd() / p)
        full = Path(os.path.normpath(p))
        try:
            rel = full.relative_to(self.root)
        except ValueError:
            try:
                rel = full.resolve().relative_to(self.root)
            except ValueError:
                raise PathOutsideLibrary(f"not inside the library {self.root}", path=path) from None
        return rel.as_posix()

    # --- operations (thin delegates so front ends need one object) -------------

    def scan(self, **kwargs):
        from .scan import scan

        return scan(self, **kwargs)

    def scan_all(self, **kwargs):
        from .scan import run_scan

        return run_scan(self, **kwargs)

    def entries(self, **kwargs) -> list[dict]:
        from .query import list_entries

        return list_entries(self, **kwargs)

    def search(self, query: str, **kwargs) -> list[dict]:
        from .query import search

        return search(self, query, **kwargs)

    def resolve(self, name_or_path: str) -> str:
        from .query import resolve

        return resolve(self, name_or_path)

    def loadable_paths(self) -> list[str]:
        from .query import loadable_paths

        return loadable_paths(self)

    def strength(self, rel: str) -> float | None:
        from .query import strength

        return strength(self, rel)

    def get(self, name_or_path: str) -> dict:
        from .query import show

        return show(self, name_or_path)

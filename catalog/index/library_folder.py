"""A library's folder: the tree of LoRAs, its index in ``.lutnav/``, the lock and the config.

What reading and scanning modules need of a library, and nothing that calls
them: :class:`catalog.index.library.Library` adds the verbs on top, so the
modules it calls can take a library without importing it back.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from catalog.index import db as dbmod
from catalog.errors import (
    CatalogError, FolderNotWritable, IndexBusy, IndexReadOnly, LibraryNotFound, PathOutsideLibrary,
)
from catalog.files.textfile import loads_toml

INDEX_DIR = ".lutnav"
INDEX_FILE = "catalog.db"


def default_root() -> Path:
    """``$LUTNAV_LIBRARY``, else ``./loras``."""
    return Path(os.environ.get("LUTNAV_LIBRARY") or "loras")


def check_folder_writable(target: str | Path) -> Path:
    """``target`` made absolute, after refusing it when its folder is read-only for this user."""
    path = Path(target).expanduser().absolute()
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        raise FolderNotWritable("this folder is read-only for you; nothing written", path=path.parent)
    return path


class LibraryFolder:
    """A library's storage: its root, its index (opened and migrated), its lock and config."""

    def __init__(self, root: str | Path):
        root = Path(root).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise LibraryNotFound(f"library {what}", path=root)
        self.root = root.resolve()
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        #: told once, at once, when another process holds the lock and this one waits
        self.on_wait: Callable[[str], None] | None = None

    # --- storage -------------------------------------------------------------

    @property
    def index_dir(self) -> Path:
        path = self.root / INDEX_DIR
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise IndexReadOnly(f"cannot create the index folder ({exc.strerror})", path=path) from None
        return path

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_DIR / INDEX_FILE

    @cached_property
    def read_only(self) -> bool:
        """Whether the index cannot be written here (a read-only share, another user's folder).

        Such a library is still browsable: the index opens read-only and every
        writer refuses with one line instead of a traceback.
        """
        folder = self.root / INDEX_DIR
        if not folder.is_dir():
            return not os.access(self.root, os.W_OK)
        if not os.access(folder, os.W_OK):
            return True
        return self.index_path.exists() and not os.access(self.index_path, os.W_OK)

    @cached_property
    def db(self) -> "dbmod.sqlite_utils.Database":
        """The index. Readers never take the library lock: WAL lets them read while a
        scan writes, so ``ls``/``show``/``search`` never wait for one."""
        if self.read_only:
            return dbmod.connect_read_only(self.index_path)
        if self.index_path.exists():
            db = dbmod.connect(self.index_path, migrate=False)
            if not dbmod.pending(db):
                return db
            db.close()
        with self.lock():
            return dbmod.connect(self.index_path)

    @contextmanager
    def lock(self, *, wait: bool = True) -> Iterator[None]:
        """An exclusive inter-process lock: one scan (or migration) at a time.

        Re-entrant within this object (a scan opens the db under the lock), and
        serialised between threads of this process by an ``RLock``. When another
        process holds it, ``on_wait`` hears so before this one blocks (and who
        holds it: the holder's pid is in the lock file); with ``wait=False`` it
        raises ``IndexBusy`` instead.
        """
        if self.read_only:
            raise IndexReadOnly("the index cannot be written here", path=self.root / INDEX_DIR)
        with self._thread_lock:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            with self._open_lock_file() as fh:
                self._acquire(fh, wait)
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _open_lock_file(self):
        """The lock file, never through a link: the holder's pid is written into it, and a
        library from someone else must not make that write land on another file."""
        path = self.index_dir / "lock"
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            raise CatalogError(f"cannot open the lock file ({exc.strerror})", path=path,
                               hint="remove it if it is a link; lutnav makes a new one") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CatalogError("the lock file is not a regular file", path=path,
                               hint="remove it; lutnav makes a new one")
        return os.fdopen(fd, "r+")

    def _acquire(self, fh, wait: bool) -> None:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read(32).strip()
            who = f"another lutnav (pid {holder})" if holder.isdigit() else "another lutnav"
            if not wait:
                raise IndexBusy(f"{who} is scanning the library", path=self.root) from None
            if self.on_wait is not None:
                self.on_wait(f"{who} is scanning — waiting; Ctrl-C to stop")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()

    @cached_property
    def config(self) -> dict:
        """``.lutnav/config.toml`` (mix guards, preview models); empty when absent."""
        path = self.root / INDEX_DIR / "config.toml"
        if not path.is_file():
            return {}
        try:
            return loads_toml(path.read_text("utf-8"))
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

    def check_writable(self, target: str | Path) -> None:
        """Refuse, before any work, to write ``target``: its folder must be writable, and a
        file inside the library needs a writable index too (it is indexed right after)."""
        path = check_folder_writable(target)
        folder = path.parent
        inside = os.path.realpath(folder) + os.sep
        if self.read_only and inside.startswith(str(self.root) + os.sep):
            raise IndexReadOnly(f"writing {path.name} needs the library's index, which cannot be "
                                "written here; nothing written", path=self.root / INDEX_DIR)

"""Local sources for ``lutnav pull PATH``: a ``.safetensors`` file, a folder, or a zip.

They go through the same choice, verification and placement as a Hub repo; this
module only lists their files and copies one out.  A zip is checked as a whole
before anything is extracted: every member name must stay inside (no ``..``, no
absolute path, no symlink member), and sizes are bounded — the declared total,
the compression ratio of each large member (a zip bomb inflates a few kilobytes
into gigabytes), and the bytes actually inflated, which are counted while
extracting so a member that lies about its size is cut off.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from .errors import ArchiveError, PullError, UnsafeName
from .hub import RemoteFile
from .place import check_relative, theme_name

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 64 * 1024**3
#: a member above RATIO_FLOOR bytes that inflates more than MAX_RATIO times is a bomb
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024
MAX_FOLDER_FILES = 10_000


class LocalSource:
    """Files under a folder (or one file and its sidecars), read in place."""

    origin: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None

    def __init__(self, path: Path):
        path = Path(path).expanduser()
        self.label = str(path)
        if path.is_file():
            self.root = path.parent.resolve()
            stem = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.stem
            names = [p.name for p in self.root.iterdir() if p.is_file()
                     and (p.name == path.name or p.name.startswith(stem + "."))]
            self.files = tuple(RemoteFile(n, (self.root / n).stat().st_size) for n in sorted(names))
            self.default_name = stem
            self.default_theme = theme_name(self.root.name, "local")
        else:
            self.root = path.resolve()
            self.files = tuple(self._walk())
            self.default_name = path.name
            self.default_theme = theme_name(path.name, "local")

    def _walk(self) -> list[RemoteFile]:
        out: list[RemoteFile] = []
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                full = Path(folder, name)
                if name.startswith(".") or not full.is_file() or not _within(full, self.root):
                    continue
                out.append(RemoteFile(full.relative_to(self.root).as_posix(), full.stat().st_size))
                if len(out) > MAX_FOLDER_FILES:
                    raise PullError(f"{self.label}: more than {MAX_FOLDER_FILES} files; point at the "
                                    "LoRA's own folder", hint="pass the .safetensors file itself")
        return out

    def fetch(self, path: str, dest: Path) -> None:
        check_relative(path)
        src = self.root.joinpath(*path.split("/"))
        if not _within(src, self.root):
            raise UnsafeName(f"{self.label}: {path} points outside the folder (symlink)")
        shutil.copyfile(src, dest)


class ZipSource:
    """Members of a zip, validated before use and extracted with byte budgets."""

    origin: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None

    def __init__(self, path: Path):
        self.label = str(path)
        self.default_name = Path(path).stem
        self.default_theme = theme_name(self.default_name, "local")
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"not a readable zip ({exc})", path=path) from None
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"{len(infos)} members, over the {MAX_MEMBERS} limit", path=path)
        total = 0
        files = []
        for info in infos:
            name = info.filename.rstrip("/") if info.is_dir() else info.filename
            try:
                check_relative(name, "member")
            except UnsafeName as exc:
                raise ArchiveError(f"{exc.message} — a path-traversal archive", path=path) from None
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"member {name!r} is a symlink; refused", path=path)
            if info.is_dir():
                continue
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise ArchiveError(
                    f"member {name!r} inflates {info.compress_size} bytes into {info.file_size} "
                    f"(over {MAX_RATIO}x) — a zip bomb", path=path)
            total += info.file_size
            files.append(RemoteFile(name, info.file_size))
        if total > MAX_TOTAL_BYTES:
            raise ArchiveError(f"members total {total} bytes, over the {MAX_TOTAL_BYTES} byte limit",
                               path=path)
        self.files = tuple(files)

    def fetch(self, path: str, dest: Path) -> None:
        info = self.zip.getinfo(path)
        budget = info.file_size
        written = 0
        try:
            with self.zip.open(info) as src, open(dest, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    written += len(chunk)
                    if written > budget:
                        raise ArchiveError(f"member {path!r} inflates past its declared {budget} bytes",
                                           path=self.label)
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            if isinstance(exc, PullError):
                raise
            raise ArchiveError(f"member {path!r} cannot be extracted ({exc})", path=self.label) from None

    def close(self) -> None:
        self.zip.close()


def open_local(path: Path) -> LocalSource | ZipSource:
    path = Path(path).expanduser()
    if not path.exists():
        raise PullError(f"{path}: no such file or folder", hint="give a Hub repo id OWNER/NAME or a path")
    if path.is_file() and zipfile.is_zipfile(path):
        return ZipSource(path)
    return LocalSource(path)


def looks_local(text: str) -> bool:
    """A path rather than a repo id: spelt like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``),
    a ``.zip`` or ``.safetensors`` name, or an OWNER/NAME that exists here as a folder.

    A bare word is never taken for a path just because a file of that name sits in
    the current folder (the rule every verb follows); it is refused with both readings.
    """
    if (text.startswith((".", "/", "~")) or text.endswith((".zip", ".safetensors"))
            or text.count("/") > 1 or ("/" in text and os.path.exists(text))):
        return True
    if "/" not in text and os.path.exists(text):
        raise PullError(f"{text!r} is a bare word: write ./{text} for the file or folder here, "
                        "or OWNER/NAME for a Hugging Face repo")
    return False


def _within(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or root in real.parents

"""Content hashes: full-file sha256 (+ AutoV2), and a tensor-only hash.

Never on the scan path — a 20k-file library is terabytes. Both hashes come from
one streaming pass; results are cached by (size, mtime) in the index. The
tensor-only hash covers the data section alone, so it survives header edits
(metadata rewritten by other tools) and finds the same weights under any name.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from catalog.files.durable import open_regular
from catalog.errors import CatalogError
from catalog.index.library_folder import LibraryFolder
from catalog.progress import Progress, Work

CHUNK = 4 * 1024 * 1024


@dataclass
class Hashes:
    sha256: str
    autov2: str
    tensor_sha256: str


def weights_file(lib: LibraryFolder, rel: str) -> Path:
    """The file whose bytes identify an entry (the adapter file of a PEFT folder)."""
    path = lib.abspath(rel)
    return path / "adapter_model.safetensors" if path.is_dir() else path


def hash_file(path: Path) -> Generator[int, None, Hashes]:
    """Stream ``path`` once; yields bytes read so far, returns the hashes."""
    full = hashlib.sha256()
    tensors = hashlib.sha256()
    done = 0
    with open_regular(path) as fh:
        head = fh.read(8)
        full.update(head)
        done += len(head)
        data_start = None
        if len(head) == 8 and path.suffix == ".safetensors":
            data_start = 8 + struct.unpack("<Q", head)[0]
        while chunk := fh.read(CHUNK):
            full.update(chunk)
            if data_start is not None:
                offset = max(0, data_start - done)
                if offset < len(chunk):
                    tensors.update(memoryview(chunk)[offset:])
            done += len(chunk)
            yield done
    digest = full.hexdigest()
    return Hashes(digest, digest[:10], tensors.hexdigest() if data_start is not None else digest)


def cached(lib: LibraryFolder, rel: str) -> Hashes | None:
    """Hashes from the index when the file has not changed since."""
    row = _entry(lib, rel)
    for h in lib.db.query("select * from hashes where path = ?", [rel]):
        if h["size"] == row["size"] and h["mtime_ns"] == row["mtime_ns"]:
            return Hashes(h["sha256"], h["autov2"], h["tensor_sha256"])
    return None


def compute(lib: LibraryFolder, rels: list[str], *, force: bool = False
            ) -> Work[dict[str, Hashes]]:
    """Hash entries (cached ones are skipped unless ``force``), yielding progress."""
    results: dict[str, Hashes] = {}
    todo = []
    for rel in rels:
        hit = None if force else cached(lib, rel)
        if hit:
            results[rel] = hit
        else:
            todo.append(rel)
    rows = {rel: _entry(lib, rel) for rel in todo}
    total = sum(row["size"] or 0 for row in rows.values())
    base = 0
    for rel, row in rows.items():
        gen = hash_file(weights_file(lib, rel))
        try:
            while True:
                n = next(gen)
                yield Progress(base + n, total, rel)  # bytes hashed of all
        except StopIteration as stop:
            hashes = stop.value
        except OSError as exc:
            raise CatalogError(f"cannot read for hashing ({exc.strerror or exc})",
                               path=weights_file(lib, rel)) from None
        base += row["size"] or 0
        results[rel] = hashes
        if lib.read_only:
            continue  # computed, shown, just not cached
        with lib.db.atomic():
            lib.db["hashes"].upsert({
                "path": rel, "size": row["size"], "mtime_ns": row["mtime_ns"],
                "sha256": hashes.sha256, "autov2": hashes.autov2,
                "tensor_sha256": hashes.tensor_sha256, "computed_at": time.time(),
            }, pk="path")
    return results


def _entry(lib: LibraryFolder, rel: str) -> dict:
    rows = list(lib.db.query("select size, mtime_ns from entries where path = ?", [rel]))
    if not rows:
        raise CatalogError(f"{rel!r} is not in the index", hint="run `lutnav scan`")
    return rows[0]


def duplicate_candidates(lib: LibraryFolder) -> list[list[str]]:
    """Groups of entries that may hold the same tensors: same data-section size."""
    groups = lib.db.execute(
        "select group_concat(path, char(0)) from entries where data_size is not null "
        "and error is null group by data_size, tensor_count having count(*) > 1"
    ).fetchall()
    return [g[0].split("\0") for g in groups]


def find_duplicates(lib: LibraryFolder) -> Work[list[list[str]]]:
    """Entries with identical tensors: candidates by size, then tensor hash."""
    candidates = duplicate_candidates(lib)
    hashes = yield from compute(lib, [p for group in candidates for p in group])
    dupes = []
    for group in candidates:
        by_hash: dict[str, list[str]] = {}
        for path in group:
            by_hash.setdefault(hashes[path].tensor_sha256, []).append(path)
        dupes.extend(sorted(paths) for paths in by_hash.values() if len(paths) > 1)
    return sorted(dupes)


def same_tensors(lib: LibraryFolder, path: Path) -> str | None:
    """The library path of an entry that holds exactly ``path``'s tensors, if any.

    Only entries with the same data-section size and tensor count are hashed
    (their hashes are cached), so asking costs one pass over ``path`` and
    nothing for a library without a candidate.
    """
    from catalog.files.header import read_header

    file = path / "adapter_model.safetensors" if path.is_dir() else path
    header = read_header(file)
    rows = lib.db.execute("select path from entries where data_size = ? and tensor_count = ? "
                          "and error is null order by path",
                          [header.file_size - header.data_offset, len(header.tensors)]).fetchall()
    if not rows:
        return None
    mine = _run(hash_file(file)).tensor_sha256
    known = _run(compute(lib, [r[0] for r in rows]))
    return next((rel for rel, h in known.items() if h.tensor_sha256 == mine), None)


def _run(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value

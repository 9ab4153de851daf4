"""Talking to the Hugging Face Hub, through ``huggingface_hub`` only.

Two calls do the work: ``model_info(files_metadata=True)`` gives the commit and the
file list with sizes in one request (so nothing is downloaded before lutnav has
chosen), and ``hf_hub_download`` fetches a chosen file into the Hugging Face cache
at that exact commit (so a rerun finds it there, and offline mode can use it).
Settings are read when a call is made, not when the library was imported, so
``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` always apply.
Every client error becomes one :mod:`lutnav.pull.errors` error saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    LOGIN_HINT, DownloadFailed, GatedRepo, HubUnreachable, PullError, RepoNotFound, RevisionNotFound,
    UnsafeName,
)

@dataclass(frozen=True, slots=True)
class RemoteFile:
    path: str  # '/'-separated, relative to the repo root
    size: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A repo at one commit: what ``pull`` chooses from."""

    repo_id: str
    revision: str  # what was asked for ("main" unless --revision)
    commit: str  # the 40-hex commit it resolved to
    files: tuple[RemoteFile, ...]
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    from_cache: bool = False  # the Hub was not reached; listed from the local cache

    @property
    def source(self) -> str:
        """The card's ``source`` value."""
        return f"{self.repo_id}@{self.commit}"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode() or _truthy(os.environ.get("HF_HUB_OFFLINE"))


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UnsafeName(f"{repo_id!r} is not a Hub repo id (expected OWNER/NAME) nor an existing "
                         "local file or folder", hint="check the spelling or the path") from None


def quiet_client() -> None:
    """The client's own log lines and download bars off: lutnav reports every failure in one
    line of its own, and a pull's progress through its one bar (a pull yields each file)."""
    from huggingface_hub.utils import disable_progress_bars, logging

    logging.set_verbosity_error()
    disable_progress_bars()


def fetch_snapshot(repo_id: str, revision: str | None = None) -> Snapshot:
    """The repo's file list (with sizes) and commit; from the cache when the Hub is unreachable."""
    check_repo_id(repo_id)
    rev = revision or "main"
    if offline():
        cached = cached_snapshot(repo_id, rev)
        if cached is None:
            raise HubUnreachable(f"{repo_id}: offline mode is on (HF_HUB_OFFLINE) and revision {rev!r} "
                                 "is not in the Hugging Face cache",
                                 hint="unset HF_HUB_OFFLINE to download it")
        return cached
    from huggingface_hub import HfApi

    try:
        with hub_errors(repo_id, rev):
            info = HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    except HubUnreachable:
        cached = cached_snapshot(repo_id, rev)
        if cached is None:
            raise
        return cached
    files = tuple(RemoteFile(s.rfilename, s.size) for s in info.siblings or ())
    return Snapshot(repo_id, rev, info.sha or "", files, tuple(info.tags or ()), info.pipeline_tag)


def latest_commit(repo_id: str, revision: str | None = None) -> str:
    """The commit ``revision`` (default: main) points at now; raises when the Hub is unreachable."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    if offline():
        raise HubUnreachable(f"{repo_id}: offline mode is on (HF_HUB_OFFLINE); cannot ask for its "
                             "latest commit", hint="unset HF_HUB_OFFLINE")
    with hub_errors(repo_id, revision or "main"):
        return HfApi(endpoint=endpoint()).model_info(repo_id, revision=revision).sha or ""


def download(snap: Snapshot, path: str) -> Path:
    """One file of ``snap`` into the Hugging Face cache, at the snapshot's commit.

    A branch or tag is fetched by its name, so the client records where it points
    and offline mode finds it later; should it have moved since the listing, the
    file is fetched again at the listed commit, so every file of a pull belongs
    to one commit.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    offline_now = snap.from_cache or offline()
    by_name = not offline_now and snap.revision != snap.commit and bool(snap.commit)
    with hub_errors(snap.repo_id, snap.revision, path):
        local = Path(hf_hub_download(
            snap.repo_id, path, revision=snap.revision if by_name else snap.commit,
            cache_dir=cache_dir(), endpoint=endpoint(), local_files_only=offline_now,
        ))
        if by_name:
            at_commit = try_to_load_from_cache(snap.repo_id, path, cache_dir=cache_dir(),
                                               revision=snap.commit)
            if not isinstance(at_commit, str) or Path(at_commit) != local:
                local = Path(hf_hub_download(snap.repo_id, path, revision=snap.commit,
                                             cache_dir=cache_dir(), endpoint=endpoint()))
    return local


def cached_snapshot(repo_id: str, revision: str) -> Snapshot | None:
    """What the Hugging Face cache holds of ``repo_id`` at ``revision`` (files fetched before)."""
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        cache = scan_cache_dir(cache_dir())
    except (CacheNotFound, ValueError, OSError):  # no cache yet, or not a folder
        return None
    for repo in cache.repos:
        if repo.repo_id != repo_id or repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            if rev.commit_hash == revision or revision in rev.refs:
                files = sorted((RemoteFile(f.file_path.relative_to(rev.snapshot_path).as_posix(),
                                           f.size_on_disk) for f in rev.files), key=lambda f: f.path)
                return Snapshot(repo_id, revision, rev.commit_hash, tuple(files), from_cache=True)
    return None


@contextmanager
def hub_errors(repo_id: str, revision: str, path: str | None = None) -> Iterator[None]:
    """Turn the client's exceptions into lutnav's one-line errors."""
    import httpx2
    from huggingface_hub import errors as hf

    what = f"{repo_id}/{path}" if path else repo_id
    try:
        yield
    except PullError:
        raise
    except hf.GatedRepoError:
        raise GatedRepo(f"{repo_id}: the repo is gated and {_token_state()}") from None
    except hf.RepositoryNotFoundError:
        raise RepoNotFound(f"{repo_id}: no such repository on {endpoint()} (a private repo looks the "
                           f"same when {_token_state()})") from None
    except hf.RevisionNotFoundError:
        raise RevisionNotFound(f"{repo_id}: revision {revision!r} not found") from None
    except hf.RemoteEntryNotFoundError:
        raise DownloadFailed(f"{what}: the file is not in the repo at revision {revision!r}",
                             hint="run the command again without --file to see the repo's files") from None
    except (hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError):
        state = "offline mode is on (HF_HUB_OFFLINE)" if offline() else f"cannot reach {endpoint()}"
        raise HubUnreachable(f"{what}: {state} and the file is not in the Hugging Face cache") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise PullError(f"{repo_id}: the Hub refused the request (401 Unauthorized)",
                            hint=LOGIN_HINT) from None
        if path is None:
            raise HubUnreachable(f"{what}: the Hub answered {status}") from None
        raise DownloadFailed(f"{what}: the download failed (the Hub answered {status})") from None
    except (httpx2.ConnectError, httpx2.TimeoutException) as exc:
        if path is None:
            raise HubUnreachable(f"{what}: cannot reach {endpoint()} ({type(exc).__name__})") from None
        raise DownloadFailed(f"{what}: the connection broke off ({type(exc).__name__})") from None
    except httpx2.TransportError as exc:
        raise DownloadFailed(f"{what}: the download broke off ({type(exc).__name__})") from None
    except OSError as exc:
        if "Consistency check failed" in str(exc):
            raise DownloadFailed(f"{what}: the download arrived incomplete") from None
        raise DownloadFailed(f"{what}: {exc.strerror or exc}") from None


def _token_state() -> str:
    from huggingface_hub import get_token

    return "your token has no access to it" if get_token() else "no Hugging Face token is set"

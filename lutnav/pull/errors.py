"""Errors of pulling, exporting and linking: one line each, caught at the CLI boundary.

They subclass ``CatalogError`` so the CLI prints ``str(err)`` and exits 1; each
names the repo, file or folder, says what went wrong and what to do.
"""

from __future__ import annotations

from catalog.errors import CatalogError

LOGIN_HINT = "log in with `hf auth login`, or set HF_TOKEN"


class PullError(CatalogError):
    """Base of every error of ``lutnav pull``, ``outdated``, ``export`` and ``link``."""


# --- the Hub -------------------------------------------------------------------------


class RepoNotFound(PullError, LookupError):
    hint = f"check the name on https://huggingface.co; if the repo is private, {LOGIN_HINT}"


class GatedRepo(PullError, PermissionError):
    hint = f"accept the repo's conditions on its Hub page, then {LOGIN_HINT}"


class RevisionNotFound(PullError, LookupError):
    hint = "pass an existing branch, tag or commit with --revision (default: main)"


class HubUnreachable(PullError, ConnectionError):
    hint = ("check your connection (or HF_ENDPOINT); files pulled before are used from the "
            "Hugging Face cache when the Hub cannot be reached")


class DownloadFailed(PullError, OSError):
    hint = "nothing was added to the library; run the same command again to retry"


# --- what the repo or folder holds -------------------------------------------------------


class NoLoraFound(PullError):
    hint = "lutnav pulls LoRA .safetensors files and PEFT adapter folders"


class PickleOnly(NoLoraFound):
    hint = ("pickled .ckpt/.pt/.bin files can run code when loaded, so lutnav never downloads "
            "them; ask the author for a .safetensors version")


class NotALora(PullError, ValueError):
    hint = "nothing was added to the library"


class ChoiceNeeded(PullError):
    hint = "pick with --file NAME (repeatable) or take every one with --all"


class UnsafeName(PullError, ValueError):
    hint = "the name was refused, not rewritten; nothing was written"


class ArchiveError(PullError, ValueError):
    hint = "nothing was extracted; unpack the archive by hand if you trust it"


# --- outdated / update, export, link -------------------------------------------------------


class UpdateError(PullError):
    hint = "the entry was left as it was"


class ExportError(PullError):
    hint = "nothing was written"


class LinkError(PullError):
    hint = "nothing was changed"

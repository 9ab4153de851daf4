"""Where a base model lives: a local path, or a hub id already in the local HF cache.

Training and chat never download: a hub id is resolved to its cached snapshot
first, so the libraries that load it afterwards see a plain folder and make no
network request (some of their probes, e.g. for adapter configs, otherwise do).
"""

from __future__ import annotations

from pathlib import Path

from trainers.errors import ModelLoadError


def locate(base_model: str, source: Path | None = None) -> Path:
    """A local path for ``base_model``: the path itself, or the hub id's snapshot in the local cache."""
    path = Path(base_model).expanduser()
    if path.exists():
        return path
    if base_model.count("/") == 1 and not base_model.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(base_model, local_files_only=True))
        except Exception as err:  # LocalEntryNotFoundError, or an id the hub library refuses
            raise ModelLoadError(f"base_model {base_model!r} is not a local path and is not in the local "
                                 f"Hugging Face cache ({type(err).__name__})", path=source) from None
    raise ModelLoadError(f"base_model {base_model!r} does not exist", path=source)

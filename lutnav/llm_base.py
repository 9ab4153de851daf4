"""Which base model a text adapter runs on, decided before torch is imported.

``chat`` and the LLM blend need the adapter's base model. The order: ``--base``;
else the model the adapter names, when it is on this machine (a folder, or in the
Hugging Face cache); else ``[models] llm`` from the library config. When none is
found the answer comes in well under a second, since nothing heavy was loaded.
"""

from __future__ import annotations

from pathlib import Path

from catalog.index.library import Library


def llm_base(lib: Library | None, adapter: Path, base: str | None = None) -> str:
    """The base model path or id to load ``adapter`` on; raises ``ModelLoadError`` with what to do."""
    from trainers.errors import ModelLoadError
    from trainers.local_models import locate
    from trainers.text.chat import adapter_base

    if base:
        return base
    named = adapter_base(adapter)
    try:
        return str(locate(named))
    except ModelLoadError:
        pass
    configured = ((lib.config if lib is not None else {}).get("models") or {}).get("llm")
    if configured:
        path = Path(str(configured)).expanduser()
        path = path if path.is_absolute() else lib.root / path
        if not path.exists():
            raise ModelLoadError("[models] llm does not exist", path=path,
                                 hint="fix the path in .lutnav/config.toml, or pass --base MODEL_FOLDER")
        return str(path)
    raise ModelLoadError(f"the adapter's base model {named!r} is not on this machine, and no [models] llm "
                         "is configured", path=adapter,
                         hint=f"pass --base MODEL_FOLDER, set [models] llm in .lutnav/config.toml, "
                              f"or `hf download {named}`")

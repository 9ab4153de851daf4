"""A merged full model for tools that cannot load PEFT adapters (``--merge-into OUT_DIR``)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from trainers.errors import TrainerError
from trainers.text.chat import adapter_base


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, base: str | None = None,
                  overwrite: bool = False) -> Path:
    """Fold the adapter into the base weights (peft ``merge_and_unload``) and save model + tokenizer.

    The base is loaded in its own stored dtype, so the merged model has the
    base's size; the folder appears complete or not at all.
    """
    from peft import PeftModel

    from trainers.text.model import load_base_model, load_tokenizer

    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TrainerError("the folder for the merged model is not empty", path=out,
                           hint="choose a new folder for --merge-into")
    base = base or adapter_base(adapter_dir)
    model = PeftModel.from_pretrained(load_base_model(base, dtype="auto"), str(adapter_dir))
    merged = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        merged.save_pretrained(staging)
        load_tokenizer(base).save_pretrained(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out

"""Blending LLM adapters on one base with peft's weighted adapter (the engine behind ``lutnav mix``).

``linear`` averages the A and B matrices (needs equal ranks and targets; cheap,
approximate), ``cat`` concatenates along the rank (exact sum of the updates,
rank grows), ``svd`` sums the full updates and compresses them back to a rank
(exact up to the truncation).  The mix command applies its guards first; the
checks here are the ones peft itself would fail on, said in plain words.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from trainers.errors import TrainerError
from trainers.text.chat import adapter_base

COMBINATIONS = ("linear", "cat", "svd")


@dataclass
class Blended:
    path: Path
    rank: int
    combination_type: str
    weights: list[float]
    target_modules: list[str]


def _adapter_config(folder: Path) -> dict:
    adapter_base(folder)  # readable, names a base
    return json.loads((folder / "adapter_config.json").read_text("utf-8"))


def blend_adapters(base_path: str | Path | None, adapters: list[tuple[str | Path, float]], out_dir: str | Path, *,
                   combination_type: str = "linear", svd_rank: int | None = None) -> Blended:
    """Write a PEFT adapter folder at ``out_dir`` that is the weighted blend of ``adapters``.

    ``base_path`` None: the base named by the first adapter.  The result's
    ``adapter_config.json`` names that base.
    """
    from peft import PeftModel

    from trainers.text.model import load_base_model

    if combination_type not in COMBINATIONS:
        raise TrainerError(f"combination_type {combination_type!r}: expected one of {', '.join(COMBINATIONS)}")
    if len(adapters) < 2:
        raise TrainerError("a blend needs at least two adapters")
    folders = [Path(a) for a, _ in adapters]
    weights = [float(w) for _, w in adapters]
    configs = [_adapter_config(f) for f in folders]
    _check_compatible(folders, configs, combination_type)
    base = str(base_path) if base_path else configs[0]["base_model_name_or_path"]

    model = PeftModel.from_pretrained(load_base_model(base), str(folders[0]), adapter_name="a0")
    names = ["a0"]
    for i, folder in enumerate(folders[1:], 1):
        model.load_adapter(str(folder), adapter_name=f"a{i}")
        names.append(f"a{i}")
    kwargs = {"svd_rank": svd_rank} if combination_type == "svd" and svd_rank else {}
    model.add_weighted_adapter(names, weights, "blend", combination_type=combination_type, **kwargs)
    for name in names:
        model.delete_adapter(name)
    config = model.peft_config["blend"]
    config.base_model_name_or_path = base

    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        model.save_pretrained(str(staging), selected_adapters=["blend"])
        saved = staging / "blend" if (staging / "blend").is_dir() else staging
        (saved / "README.md").unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(saved, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Blended(out, int(config.r), combination_type, weights, sorted(config.target_modules))


def _check_compatible(folders: list[Path], configs: list[dict], combination_type: str) -> None:
    kinds = {c.get("peft_type", "LORA") for c in configs}
    if kinds != {"LORA"}:
        raise TrainerError(f"only LoRA adapters can be blended, got {', '.join(sorted(kinds))}", path=folders[0])
    if combination_type == "linear":
        ranks = {int(c["r"]) for c in configs}
        targets = {tuple(sorted(c.get("target_modules") or [])) for c in configs}
        if len(ranks) > 1 or len(targets) > 1:
            what = (f"ranks {', '.join(str(int(c['r'])) for c in configs)}" if len(ranks) > 1
                    else "different target modules")
            raise TrainerError(f"a linear blend needs equal ranks and targets; these have {what}",
                               path=folders[0], hint="use combination_type = \"cat\" (exact) or \"svd\"")

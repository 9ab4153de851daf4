"""Saved blends: a TOML recipe checked against ``schemas/mix-recipe.schema.json``.

A recipe is the command line written down (``[[lora]]`` tables with name and
weight, plus ``out``, ``rank``, ``force``, ``[preview]``), so it goes through the
same spec parser and guards. A misspelt key is the usual mistake: the error
names its line and the nearest valid key.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemas
from catalog.files.durable import open_regular
from catalog.files.toml_lines import line_of
from catalog.files.textfile import loads_toml
from lutnav.prompt_tags import Spec

from .errors import RecipeError

MAX_RECIPE_BYTES = 1024 * 1024


@dataclass
class Recipe:
    path: Path
    name: str
    specs: list[Spec]
    out: Path | None = None
    rank: int | None = None
    overwrite: bool = False
    force: bool = False
    comfy: bool = False
    description: str | None = None
    preview: dict[str, Any] = field(default_factory=dict)


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        with open_regular(path) as fh:  # bounded, and a FIFO never blocks the read
            data = fh.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read the recipe ({exc.strerror or exc})", path=path) from None
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError("larger than 1 MB; not a recipe", path=path)
    try:
        text = data.decode("utf-8")
        raw = loads_toml(text)
    except UnicodeDecodeError as exc:
        raise RecipeError(f"not UTF-8 text (bad byte at offset {exc.start})", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML: {exc}", path=path) from None
    check_recipe(raw, text, path)
    return _build(raw, path)


def check_recipe(raw: dict, text: str, path: Path) -> None:
    """Unknown keys first (line + nearest key), then the schema's types and bounds."""
    schema = schemas.load("mix-recipe")
    _unknown_keys(raw, schema, text, path, table=None)
    for index, item in enumerate(raw.get("lora") or []):
        if isinstance(item, dict):
            _unknown_keys(item, schema["properties"]["lora"]["items"], text, path,
                          table="lora", index=index)
    if isinstance(raw.get("preview"), dict):
        _unknown_keys(raw["preview"], schema["properties"]["preview"], text, path, table="preview")
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "(recipe)"
        leaf = next((p for p in reversed(list(err.path)) if isinstance(p, str)), None)
        line = line_of(text, leaf) if leaf else None
        at = f"line {line}: " if line else ""
        raise RecipeError(f"{at}`{where}`: {err.message}", path=path)
    for index, item in enumerate(raw["lora"]):
        weight = item.get("weight")
        if isinstance(weight, float) and not math.isfinite(weight):
            raise RecipeError(f"`lora.{index}.weight` must be a finite number, not {weight}",
                              path=path)


def _unknown_keys(values: dict, schema: dict, text: str, path: Path, *, table: str | None,
                  index: int = 0) -> None:
    valid = list(schema["properties"])
    for key in values:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else f"valid keys: {', '.join(valid)}"
        line = line_of(text, key, table=table, index=index)
        where = f"[{'[' + table + ']' if table == 'lora' else table}] " if table else ""
        at = f"line {line}: " if line else ""
        raise RecipeError(f"{at}unknown key {where}`{key}` — {hint}", path=path)


def _build(raw: dict, path: Path) -> Recipe:
    specs = [Spec(item["name"], float(item["weight"]) if "weight" in item else None)
             for item in raw["lora"]]
    out = raw.get("out")
    return Recipe(
        path=path,
        name=raw.get("name") or path.stem,
        specs=specs,
        out=(path.parent / out) if out else None,
        rank=raw.get("rank"),
        overwrite=bool(raw.get("overwrite", False)),
        force=bool(raw.get("force", False)),
        comfy=bool(raw.get("comfy", False)),
        description=raw.get("description"),
        preview=dict(raw.get("preview") or {}),
    )

"""Saved blends: a TOML recipe, declared as :class:`RecipeFile` and checked through the schema framework.

A recipe is the command line written down (``[[lora]]`` tables with name and
weight, plus ``out``, ``rank``, ``force``, ``[preview]``), so it goes through the
same spec parser and guards. A misspelt key is the usual mistake: the error
names its line and the nearest valid key.  ``schemas/mix-recipe.schema.json``
is generated from the declaration (``python -m lutnav.mix.recipe`` rewrites it;
a test keeps the two equal).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.files.durable import open_regular
from catalog.files.textfile import loads_toml
from catalog.schema import check_table, declared
from catalog.schema.json_schema import document, schema_text
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


@dataclass(kw_only=True)
class RecipeLora:
    """One ``[[lora]]`` table."""

    name: str = declared(doc="Entry name or library path, as `lutnav show` takes it.", min_length=1)
    weight: float | None = declared(None, "Strength; default the card's strength, else 1.0.")


@dataclass(kw_only=True)
class RecipePreview:
    """The ``[preview]`` table: the sampling options of ``lutnav mix --preview``."""

    prompt: str | None = declared(None, "Prompt (default: 'a picture' + the trigger words), as `--prompt`.")
    negative_prompt: str | None = declared(None, "Negative prompt (default: the card's), as `--negative`.")
    seed: int | None = declared(None, "Sampling seed, as `--seed`.")
    steps: int | None = declared(None, "Denoising steps, as `--steps`.", minimum=1)
    size: int | None = declared(None, "Image side in pixels, as `--size`.", minimum=64, multiple_of=8)
    guidance: float | None = declared(None, "CFG scale, as `--guidance`.", minimum=0)


@dataclass(kw_only=True)
class RecipeFile:
    """What a recipe file may hold: the declaration its checks and its JSON Schema come from."""

    name: str | None = declared(None, "Name of the blend (default: the recipe file's stem).")
    description: str | None = declared(None, "What the blend is for.")
    lora: list[RecipeLora] = declared(doc="The LoRAs, in order: [[lora]] tables.", min_items=1)
    out: str | None = declared(None, "Merged file to write (as `--out`), relative to the recipe's folder.",
                               pattern=(r"\.safetensors$", "a file name ending in .safetensors"), path=True)
    rank: int | None = declared(None, "SVD target rank (as `--rank`); leave out for the exact merge.",
                                minimum=1)
    overwrite: bool = declared(False, "Replace an existing `out` file.")
    force: bool = declared(False, "Pass the soft guards (total strength, count, weight range); "
                                  "the reasons are still printed.")
    comfy: bool = declared(False, "Print the ComfyUI LoraLoader chain instead of the tag line.")
    preview: RecipePreview | None = declared(None, "Sample images of each LoRA and of the blend.")


def recipe_schema() -> dict[str, Any]:
    """The recipe's JSON Schema (draft 2020-12), generated from :class:`RecipeFile`."""
    return document(
        RecipeFile, schema_id="https://lutnav.dev/schemas/mix-recipe.schema.json", title="lutnav mix recipe",
        description="A saved blend: `lutnav mix --recipe FILE.toml`. Paths are relative to the recipe's folder.")


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
    return _build(check_recipe(raw, text, path), path)


def check_recipe(raw: dict, text: str, path: Path) -> dict[str, Any]:
    """The recipe's clean values; every problem at once (line, key, nearest key) as one ``RecipeError``."""
    clean, findings = check_table(RecipeFile, raw, text=text, noun="recipe key")
    if findings:
        raise RecipeError("; ".join(str(f) for f in findings), path=path)
    return clean


def _build(raw: dict, path: Path) -> Recipe:
    specs = [Spec(item["name"], item.get("weight")) for item in raw["lora"]]
    out = raw.get("out")
    return Recipe(
        path=path,
        name=raw.get("name") or path.stem,
        specs=specs,
        out=(path.parent / out) if out else None,
        rank=raw.get("rank"),
        overwrite=raw.get("overwrite", False),
        force=raw.get("force", False),
        comfy=raw.get("comfy", False),
        description=raw.get("description"),
        preview=dict(raw.get("preview") or {}),
    )


if __name__ == "__main__":  # regenerate schemas/mix-recipe.schema.json
    target = Path(__file__).resolve().parents[2] / "schemas" / "mix-recipe.schema.json"
    target.write_text(schema_text(recipe_schema()), encoding="utf-8")
    print(f"wrote {target}")

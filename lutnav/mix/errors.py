"""The mix area's errors: refusals and bad inputs, each one readable line at the CLI edge."""

from __future__ import annotations

from catalog.errors import CatalogError


class MixError(CatalogError):
    """A blend, merge or conversion that cannot be done as asked."""


class MergeInputError(MixError, ValueError):
    """A LoRA file whose tensors cannot take part in a merge (LoHa, full deltas, odd shapes)."""

    hint = "merge plain LoRA/LoCon files (lora_down/lora_up or lora_A/lora_B); use the prompt tag for the rest"


class MixUsageError(MixError, ValueError):
    """Options of a mix that do not fit together (``--rank`` without ``--out``, LLM adapters
    without ``--out``): the command line shows it as a usage error, exit 2."""


class OutputExists(MixError, FileExistsError):
    hint = "pass --overwrite to replace it, or choose another --out"


class OutputDirMissing(MixError, FileNotFoundError):
    hint = "create the folder first, or choose another --out"


class RecipeError(MixError, ValueError):
    hint = "see schemas/mix-recipe.schema.json for the recipe keys"


class MissingExtra(MixError, ImportError):
    hint = "pip install 'lutnav[train]'"

"""What a mix is asked to do, and what it did: :class:`MixRequest` in, :class:`MixResult` out.

The command line, a recipe and the TUI all describe a blend the same way: the
LoRAs with their weights, one output (the tag line, a ComfyUI chain, an exact or
SVD merge, a bake into a checkpoint) and its options. :func:`lutnav.mix.runner.run`
takes the request, so every front end gets the same guards and the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from catalog.index.library import Library
from catalog.progress import Work
from lutnav.prompt_tags import Spec

from .errors import MixUsageError
from .guards import Verdict
from .preview import Settings

Output = Literal["tags", "comfy", "merge", "bake"]


def check_options(*, out: Path | None, rank: int | None, into_model: Path | None) -> None:
    """Refuse output options that do not fit together, before the library is even opened."""
    if rank is not None and out is None:
        raise MixUsageError("--rank needs --out (it sets the rank of the merged file)")
    if into_model is not None and (out is None or rank is not None):
        raise MixUsageError("--into-model needs --out and takes no --rank")


@dataclass(frozen=True)
class MixRequest:
    """A blend to run: the recipe's values and the command line's already merged.

    ``specs`` are ``NAME[:WEIGHT]`` (a weight of None takes the card's strength).
    With ``out`` the blend is merged into that file (exact, or SVD to ``rank``;
    baked into the checkpoint ``into_model``; for LLM adapters, a PEFT folder);
    without it, ``comfy`` chooses the ComfyUI chain over the A1111 tag line.
    ``preview`` asks for images of each LoRA and of the blend.
    """

    library: Library
    specs: Sequence[Spec]
    out: Path | None = None
    rank: int | None = None
    to: str | None = None  # key spelling of a transformer-family merge
    into_model: Path | None = None
    overwrite: bool = False
    force: bool = False  # pass the soft guards (their reasons are still said)
    comfy: bool = False
    checkpoint: str = "model.safetensors"  # ckpt_name of the ComfyUI chain's loader
    preview: Settings | None = None
    model: str | None = None  # checkpoint to sample the previews with

    def __post_init__(self) -> None:
        check_options(out=self.out, rank=self.rank, into_model=self.into_model)

    @property
    def output(self) -> Output:
        """Which output an image blend gets (LLM adapters always blend into a folder at ``out``)."""
        if self.into_model is not None:
            return "bake"
        if self.out is not None:
            return "merge"
        return "comfy" if self.comfy else "tags"


@dataclass(frozen=True)
class Line:
    """One thing to tell the user: ``err`` notes go to stderr, the rest (the tag line, the
    written path, the ComfyUI chain as ``json``) to stdout, where a script reads them."""

    text: str = ""
    err: bool = False
    json: object = None


@dataclass
class MixResult:
    """What a mix did. ``ok`` is False when the guards refused it (nothing was written)."""

    verdict: Verdict = field(default_factory=Verdict)
    lines: list[Line] = field(default_factory=list)  # everything said, in order
    written: Path | None = None  # the merged file, baked checkpoint or adapter folder
    #: the previews still to sample (each LoRA, then the blend): a long job of its own,
    #: so a front end shows it as its own progress; it returns the image paths
    sampling: Work[list[Path]] | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

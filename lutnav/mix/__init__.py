"""Blending LoRAs: guards, prompt tags, exact and SVD merges, key conversion, previews.

The submodules are small and import torch/diffusers only inside the functions
that need them, so the guard and tag code serves the TUI without the heavy stack.
A blend is run by ``run(MixRequest(...))`` (:mod:`.request`, :mod:`.runner`); those
names are loaded on first use, so ``import lutnav.mix.guards`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .request import Line, MixRequest, MixResult
    from .runner import run

__all__ = ["Line", "MixRequest", "MixResult", "run"]

_HOMES = {"Line": "request", "MixRequest": "request", "MixResult": "request", "run": "runner"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_HOMES[name]}", __name__), name)

"""Blending LoRAs: guards, prompt tags, exact and SVD merges, key conversion, previews.

The submodules are small and import torch/diffusers only inside the functions
that need them, so the guard and tag code serves the TUI without the heavy stack.
"""

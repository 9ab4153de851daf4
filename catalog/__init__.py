"""The LoRA library and its index.

Pure Python + sqlite-utils: never imports torch, numpy or textual, so every
front end (CLI, TUI, trainers) can use it without paying for the heavy stack.
"""

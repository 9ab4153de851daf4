"""lutnav: a terminal LoRA catalog and model manager."""

__version__ = "0.1.0"

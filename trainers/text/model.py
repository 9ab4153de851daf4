"""Loading the base model and its tokenizer — local files only, never a silent download."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from trainers.errors import MissingDependency, ModelLoadError, UnsupportedSetting


def _where(base_model: str) -> str:
    return "folder" if Path(base_model).exists() else "local Hugging Face cache"


def load_tokenizer(config_or_path: Any):
    """The base model's tokenizer (``pad_token`` falls back to EOS)."""
    from transformers import AutoTokenizer

    from trainers.local_models import checked

    path = getattr(config_or_path, "base_model", config_or_path)
    if Path(path).exists():
        checked(Path(path))  # a FIFO among its files would hang the loader
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load the tokenizer of {path!r} from the {_where(path)} "
                             f"({str(err).splitlines()[0]})") from None
    if not tok.is_fast:
        raise UnsupportedSetting(f"the tokenizer of {path!r} is not a fast (Rust) tokenizer; response masking "
                                 "needs character offsets", hint="install `tokenizers` or convert the tokenizer")
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return tok


def quantization_config(kind: str, compute_dtype):
    """A ``BitsAndBytesConfig`` for 4bit (NF4, double quantization) or 8bit; CUDA only."""
    import torch
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependency(f"quantization = \"{kind}\" needs bitsandbytes", hint="pip install bitsandbytes")
    if not torch.cuda.is_available():
        raise UnsupportedSetting(f"quantization = \"{kind}\" (QLoRA) runs on CUDA GPUs only, and this machine "
                                 "has none", hint="set quantization = \"none\" to train in full precision here")
    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_base_model(base_model: str, *, dtype=None, quantization: str = "none", device=None):
    """The causal LM at ``base_model``; weights in ``dtype`` (quantized when asked)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a local load is quick; lutnav draws its own progress
    # safetensors only: lutnav never unpickles, and a pytorch_model.bin is a pickle
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype or torch.float32, "use_safetensors": True}
    if quantization != "none":
        kwargs["quantization_config"] = quantization_config(quantization, dtype or torch.bfloat16)
        kwargs["device_map"] = {"": device if device is not None else 0}
    from trainers.local_models import locate

    folder = locate(base_model)
    try:
        return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load the base model {base_model!r} from the {_where(base_model)} "
                             f"({str(err).splitlines()[0]})") from None


def weight_dtype(mixed_precision: str, device_type: str):
    """Frozen base weights: half precision on a GPU when mixed precision is on, else float32.

    The LoRA weights stay float32 (peft keeps adapters in float32) so the
    optimizer updates stay exact; autocast runs the matmuls in half precision.
    """
    import torch

    if device_type == "cuda" and mixed_precision == "bf16":
        return torch.bfloat16
    if device_type == "cuda" and mixed_precision == "fp16":
        return torch.float16
    return torch.float32

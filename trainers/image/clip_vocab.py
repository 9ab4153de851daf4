"""CLIP's byte-level BPE vocabulary, written as the files transformers' ``CLIPTokenizer`` reads.

Single-file checkpoints carry no tokenizer, and Stable Diffusion's text encoders
(OpenAI CLIP-L and OpenCLIP bigG) both use CLIP's 49,408-token vocabulary. It is
shipped once, in CLIP's own compact form (a gzipped merge list, MIT licence,
``pipeline_configs/clip_bpe.LICENSE``), and expanded here: 256 byte characters,
the same with ``</w>``, one token per merge, then the two special tokens. That is
the exact construction CLIP's reference tokenizer uses, so token ids match the
ones the text encoders were trained on.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

SPECIAL = ("<|startoftext|>", "<|endoftext|>")
VOCAB_SIZE = 49408
#: the merges CLIP keeps: the vocabulary minus bytes, bytes+</w> and the two specials
MERGES = VOCAB_SIZE - 512 - len(SPECIAL)
BPE_FILE = Path(__file__).with_name("pipeline_configs") / "clip_bpe_simple_vocab_16e6.txt.gz"
_MAX_BPE_BYTES = 8 << 20  # the shipped file expands to about 1.7 MB


def byte_chars() -> list[str]:
    """CLIP's byte-to-character table in vocabulary order: printable bytes first, the rest moved
    above U+0100 so no token holds whitespace or control characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = [chr(b) for b in keep]
    moved = [b for b in range(256) if b not in keep]
    chars += [chr(256 + n) for n in range(len(moved))]
    return chars


def write_tokenizer_files(folder: Path, merges: list[str]) -> Path:
    """``vocab.json`` and ``merges.txt`` for ``merges`` (``"a b"`` lines, in rank order)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = byte_chars()
    tokens = base + [c + "</w>" for c in base] + [m.replace(" ", "") for m in merges] + list(SPECIAL)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    (folder / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", "utf-8")
    return folder


def clip_merges() -> list[str]:
    """The 48,894 merges of CLIP's released vocabulary, from the shipped file."""
    with gzip.open(BPE_FILE, "rb") as fh:
        text = fh.read(_MAX_BPE_BYTES).decode("utf-8")
    lines = text.split("\n")[1:MERGES + 1]  # the first line is a version header
    if len(lines) != MERGES:
        raise ValueError(f"{BPE_FILE} holds {len(lines)} merges, expected {MERGES}")
    return lines


def write_clip_tokenizer(folder: Path, *, pad_token: str = "<|endoftext|>") -> Path:
    """A complete ``CLIPTokenizer`` folder: SD's first encoder pads with ``<|endoftext|>``,
    SDXL's second (OpenCLIP bigG) with ``!``."""
    write_tokenizer_files(folder, clip_merges())
    special = {"bos_token": SPECIAL[0], "eos_token": SPECIAL[1], "unk_token": SPECIAL[1], "pad_token": pad_token}
    config = {**special, "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
              "errors": "replace", "add_prefix_space": False, "clean_up_tokenization_spaces": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), "utf-8")
    return folder

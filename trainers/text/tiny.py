"""A tiny random Llama and a word-level tokenizer, built by code for tests, benches and demos.

Training code is only believable when it runs on a real architecture, but a
test must not download anything; this writes a real ``LlamaForCausalLM``
folder (random weights) with a real fast tokenizer and chat template, a few
hundred kilobytes in all, plus a small instruction set it can learn.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
COLORS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
THINGS = ["apple", "leaf", "sky", "sun", "coal", "snow", "carrot", "grape", "lemon", "grass", "cloud", "plum"]
WORDS = (["what", "is", "the", "color", "of", "a", "an", "it", "tell", "me", "please", "answer", "short",
          "###", "Instruction", "Input", "Response", ":", ".", ",", "?", "you", "are", "helpful", "hello"]
         + COLORS + THINGS)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} "
    "{% if m['role'] == 'assistant' %}{{ eos_token }} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(words: list[str] = WORDS, *, chat_template: bool = True):
    """A ``PreTrainedTokenizerFast`` over ``words`` (whitespace/punctuation split)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(words) - set(SPECIALS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>",
                                  additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"])
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def write_tiny_llama(folder: str | Path, *, hidden: int = 64, layers: int = 2, heads: int = 4,
                     intermediate: int | None = None, words: list[str] = WORDS, chat_template: bool = True,
                     max_positions: int = 512, seed: int = 0) -> Path:
    """Save a random Llama causal LM and its tokenizer to ``folder``; returns the folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tok = build_tokenizer(words, chat_template=chat_template)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate or hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def color_facts(n: int, *, seed: int = 0) -> list[dict[str, str]]:
    """Instruction rows the tiny model can learn: a fixed colour for each thing."""
    rng = random.Random(seed)
    color_of = {thing: COLORS[i % len(COLORS)] for i, thing in enumerate(THINGS)}
    rows = []
    for _ in range(n):
        thing = rng.choice(THINGS)
        polite = rng.choice(["", "please ", "tell me "])
        rows.append({"instruction": f"{polite}what is the color of the {thing} ?",
                     "input": rng.choice(["", "answer short ."]),
                     "output": f"the {thing} is {color_of[thing]} ."})
    return rows


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path

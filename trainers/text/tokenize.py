"""Examples → token ids and labels, with the loss masked exactly to the response.

Each example is rendered to one string (the tokenizer's chat template, the
Alpaca layout, or plain text) together with the character spans that are the
response.  The string is tokenized once, with offsets, and a token is trained
on when its last character lies in a response span — so masking follows the
tokenizer's real segmentation, never a separate tokenization of the pieces.
A response that does not already end in a special token (``</s>``,
``<|im_end|>``, …) is followed by EOS, trained on too: the model must learn
to stop.  The first token of every example is never a target (nothing before
it predicts it), which also keeps packed examples from predicting each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainers.text.formats import Example

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]             # label[t] is the target *at* token t (ids[t] or IGNORE)
    truncated: bool = False
    positions: list[int] | None = None  # set on packed sequences: restarts at 0 per example

    def __len__(self) -> int:
        return len(self.input_ids)


def alpaca_prompt(instruction: str, input_text: str = "", system: str | None = None) -> str:
    """The Alpaca layout, used when the tokenizer has no chat template (and by ``lutnav chat``)."""
    head = f"{system}\n\n" if system else ""
    body = f"### Instruction:\n{instruction}\n\n"
    if input_text.strip():
        body += f"### Input:\n{input_text}\n\n"
    return f"{head}{body}### Response:\n"


def instruction_messages(example: Example, system: str | None) -> list[dict[str, str]]:
    instruction, input_text, output = example.parts
    user = f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


class Renderer:
    """Turns examples into strings and response spans for one tokenizer."""

    def __init__(self, tokenizer, *, system_prompt: str | None = None):
        self.tok = tokenizer
        self.system = system_prompt
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self.bos = tokenizer.bos_token or ""

    def layout(self, kind: str) -> str:
        if kind == "text":
            return "plain text + EOS"
        return "the tokenizer's chat template" if self.has_template else "Alpaca (### Instruction / ### Response)"

    def render(self, example: Example) -> tuple[str, list[tuple[int, int]], bool]:
        """``(text, response spans, append EOS at end)``."""
        if example.kind == "text":
            text = self.bos + example.parts[0]
            return text, [(len(self.bos), len(text))], True
        if example.kind == "instruction" and not self.has_template:
            instruction, input_text, output = example.parts
            prompt = self.bos + alpaca_prompt(instruction, input_text, self.system)
            return prompt + output, [(len(prompt), len(prompt) + len(output))], True
        messages = (instruction_messages(example, self.system) if example.kind == "instruction"
                    else [{"role": r, "content": c} for r, c in example.parts])
        return self._chat(messages)

    def _chat(self, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]], bool]:
        full = self._apply(messages, generation_prompt=False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(messages[:i], generation_prompt=True)
            upto = self._apply(messages[: i + 1], generation_prompt=False)
            if not (full.startswith(upto) and upto.startswith(before)):
                raise ValueError("the chat template renders earlier turns differently once later turns are "
                                 "added, so the response cannot be located")
            spans.append((len(before), len(upto)))
        return full, spans, False

    def _apply(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode_all(examples: list[Example], renderer: Renderer, *, max_len: int, train_on_prompt: bool,
               chunk: int = 512) -> list[Encoded]:
    """Tokenize in batches (fast tokenizers are much quicker that way)."""
    out: list[Encoded] = []
    tok = renderer.tok
    special = set(tok.all_special_ids)
    eos = tok.eos_token_id
    for start in range(0, len(examples), chunk):
        rendered = [renderer.render(e) for e in examples[start:start + chunk]]
        enc = tok([r[0] for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
        for (_, spans, add_eos), ids, offsets in zip(rendered, enc["input_ids"], enc["offset_mapping"]):
            out.append(_mask(list(ids), offsets, spans, add_eos, eos, special, max_len, train_on_prompt))
    return out


def _mask(ids, offsets, spans, add_eos, eos, special, max_len, train_on_prompt) -> Encoded:
    inside = [any(s <= (b - 1 if b > a else a) < e for s, e in spans) for a, b in offsets]
    new_ids, labels = [], []
    for i, (tid, trained) in enumerate(zip(ids, inside)):
        new_ids.append(tid)
        labels.append(tid if trained or train_on_prompt else IGNORE)
        run_ends = trained and (i + 1 == len(ids) or not inside[i + 1])
        if run_ends and not add_eos and eos is not None and not _run_has_special(ids, inside, i, special):
            new_ids.append(eos)
            labels.append(eos)
    if add_eos and eos is not None:
        new_ids.append(eos)
        labels.append(eos)
    if labels:
        labels[0] = IGNORE
    truncated = len(new_ids) > max_len
    return Encoded(new_ids[:max_len], labels[:max_len], truncated)


def _run_has_special(ids: list[int], inside: list[bool], end: int, special: set[int]) -> bool:
    i = end
    while i >= 0 and inside[i]:
        if ids[i] in special:
            return True
        i -= 1
    return False


def pack(encoded: list[Encoded], max_len: int) -> list[Encoded]:
    """Greedy packing in data order; each example keeps its own position ids."""
    packs: list[Encoded] = []
    current = Encoded([], [], positions=[])
    for item in encoded:
        if current.input_ids and len(current) + len(item) > max_len:
            packs.append(current)
            current = Encoded([], [], positions=[])
        current.input_ids += item.input_ids
        current.labels += item.labels
        current.positions += list(range(len(item)))
    if current.input_ids:
        packs.append(current)
    return packs

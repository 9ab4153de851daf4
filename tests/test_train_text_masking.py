"""Loss masking: the trained labels are exactly the response tokens plus EOS, for every format."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("transformers")

from trainers.text.formats import Example  # noqa: E402
from trainers.text.tiny import build_tokenizer  # noqa: E402
from trainers.text.tokenize import IGNORE, Renderer, encode_all, pack  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def plain_tok():
    return build_tokenizer(chat_template=False)


def encode(tokenizer, example: Example, *, max_len: int = 512, train_on_prompt: bool = False, system=None):
    renderer = Renderer(tokenizer, system_prompt=system)
    return encode_all([example], renderer, max_len=max_len, train_on_prompt=train_on_prompt)[0]


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def trained(enc) -> list[int]:
    return [label for label in enc.labels if label != IGNORE]


INSTRUCTION = Example("d.jsonl", 1, "instruction", ("what is the color of the sky ?", "answer short .",
                                                    "the sky is blue ."))


def test_instruction_with_chat_template(tok):
    enc = encode(tok, INSTRUCTION, system="you are helpful .")
    assert trained(enc) == ids(tok, "the sky is blue .") + [tok.eos_token_id]
    assert enc.input_ids[0] == tok.bos_token_id
    text = tok.decode(enc.input_ids)
    assert "<|system|> you are helpful ." in text and "answer short ." in text
    # the trained tokens are the tail of the sequence: nothing of the prompt is trained
    n = len(trained(enc))
    assert enc.labels[-n:] == enc.input_ids[-n:] and set(enc.labels[:-n]) == {IGNORE}


def test_instruction_without_template_uses_alpaca(plain_tok):
    enc = encode(plain_tok, INSTRUCTION)
    assert trained(enc) == ids(plain_tok, "the sky is blue .") + [plain_tok.eos_token_id]
    assert plain_tok.decode(enc.input_ids).split()[:4] == ["<s>", "###", "Instruction", ":"]
    assert "### Response :" in plain_tok.decode(enc.input_ids)


def test_multi_turn_chat_trains_every_assistant_turn_only(tok):
    chat = Example("c.jsonl", 1, "chat", (("system", "you are helpful ."), ("user", "hello"),
                                         ("assistant", "hello you ."), ("user", "what is the color of snow ?"),
                                         ("assistant", "white .")))
    enc = encode(tok, chat)
    eos = tok.eos_token_id
    assert trained(enc) == ids(tok, "hello you .") + [eos] + ids(tok, "white .") + [eos]
    first_turn = enc.input_ids.index(eos)
    assert enc.labels[first_turn] == eos and enc.labels[first_turn + 1] == IGNORE  # "<|user|>" is not trained


def test_text_trains_everything_after_bos(tok):
    enc = encode(tok, Example("t.txt", 3, "text", ("the apple is red .",)))
    assert enc.input_ids == [tok.bos_token_id] + ids(tok, "the apple is red .") + [tok.eos_token_id]
    assert enc.labels == [IGNORE] + enc.input_ids[1:]


def test_train_on_prompt_and_truncation(tok):
    enc = encode(tok, INSTRUCTION, train_on_prompt=True)
    assert enc.labels == [IGNORE] + enc.input_ids[1:]
    short = encode(tok, INSTRUCTION, max_len=8)
    assert short.truncated and len(short.input_ids) == len(short.labels) == 8
    assert trained(short) == []  # only the prompt fit: the check drops such examples


def test_packing_keeps_examples_apart(tok):
    a = encode(tok, INSTRUCTION)
    b = encode(tok, Example("t.txt", 1, "text", ("the sun is yellow .",)))
    packs = pack([a, b, a], max_len=len(a) + len(b))
    assert [len(p) for p in packs] == [len(a) + len(b), len(a)]
    assert packs[0].positions == list(range(len(a))) + list(range(len(b)))
    assert packs[0].labels[len(a)] == IGNORE  # the last token of `a` does not learn to predict `b`


def test_collate_shifts_labels_and_marks_packed_positions(tok):
    import torch

    from trainers.text.task import TextTask

    task = TextTask.__new__(TextTask)
    task.pad_id = tok.pad_token_id
    a = encode(tok, INSTRUCTION)
    b = encode(tok, Example("t.txt", 1, "text", ("the sun is yellow .",)))
    batch = task.collate([a, b])
    assert batch["input_ids"].shape == (2, len(a))
    assert batch["targets"][0, :-1].tolist() == a.labels[1:] and batch["targets"][0, -1] == IGNORE
    assert batch["attention_mask"][1].sum() == len(b) and task.count(batch) == len(trained(a)) + len(trained(b))
    packed = task.collate(pack([a, b], max_len=1024) + pack([a], max_len=1024))
    assert "attention_mask" not in packed
    assert packed["position_ids"][1, len(a):].tolist() == list(range(len(b)))  # padding: a block of its own
    assert torch.equal(packed["position_ids"][0, len(a):len(a) + 3], torch.tensor([0, 1, 2]))

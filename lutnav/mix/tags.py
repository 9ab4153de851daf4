"""A blend as text other tools take: the A1111/Forge tag line and a ComfyUI LoraLoader chain."""

from __future__ import annotations

from lutnav.prompt_tags import prompt_text, tag, tag_name

DEFAULT_CHECKPOINT = "model.safetensors"


def tag_line(items: list) -> str:
    """``<lora:ink_wash_v2:0.7> <lora:herocat:0.3>`` plus the trigger words the cards ask for."""
    tags = [tag(_file_stem(i.rel), i.weight) for i in items]
    words: list[str] = []
    for i in items:
        for word in i.entry.trigger_words or []:
            word = prompt_text(word).strip()
            if word and word not in words:
                words.append(word)
    return " ".join(tags + ([", ".join(words)] if words else []))


def comfy_chain(items: list, checkpoint: str = DEFAULT_CHECKPOINT) -> dict:
    """ComfyUI API-format graph: a checkpoint loader feeding one LoraLoader per LoRA.

    ``lora_name`` is the library path, which is what ComfyUI expects when its
    ``models/loras`` folder is (or links to) the library; it must name the file
    exactly, and JSON escapes whatever it holds. Titles are made one-line.
    """
    graph: dict[str, dict] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint},
              "_meta": {"title": "Load Checkpoint"}},
    }
    source = "1"
    for n, item in enumerate(items, start=2):
        graph[str(n)] = {
            "class_type": "LoraLoader",
            "inputs": {
                "model": [source, 0],
                "clip": [source, 1],
                "lora_name": item.rel,
                "strength_model": item.weight,
                "strength_clip": item.weight,
            },
            "_meta": {"title": f"LoRA {tag_name(item.name)}"},
        }
        source = str(n)
    return graph


def _file_stem(rel: str) -> str:
    """The name A1111 looks LoRAs up by: the file name without its suffix."""
    leaf = rel.rstrip("/").rsplit("/", 1)[-1]
    return leaf.rsplit(".", 1)[0] if "." in leaf else leaf

"""A library where no two files share a tensor table, as real collections are.

Real libraries come from many trainers and settings: each file has its own rank
(and sometimes its own conv rank), its own subset of modules (attention only,
some blocks left out, UNet only or with the text encoders), its own dtype, its own
key spelling (kohya, diffusers, LyCORIS) and metadata from none to a large tag
table. So a scan cannot reuse one file's validated table for the next: every
header is parsed and classified from scratch. A few files are broken or bend the
rules (truncated, a lying length, an overlapping offset, a duplicated key, a
non-string metadata value, escapes), so the slow exact reader is exercised too.

Headers average about 175 KB. The weights are holes (sparse files).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path

from lutnav.sample_loras import Module, lora_modules, lora_tensors
from catalog.files.safetensors_writer import write_safetensors

RANKS = (2, 4, 6, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128)
WORDS = ("mountain river mist pine tree cat cape robot neon city portrait smile girl boy sky cloud "
         "flower garden castle forest ocean wave sunset night rain snow street car armor sword book "
         "lamp window glass stone gold silver red blue green soft sharp bokeh film grain 1girl solo "
         "looking_at_viewer long_hair short_hair blush open_mouth outdoors indoors masterpiece").split()
#: one file in this many is broken or spelled unusually
ODD_EVERY = 97


def write_varied(folder: Path, stem: str, i: int, rng: random.Random, seen: set[bytes]) -> Path:
    """One LoRA file unlike every other file written with the same ``seen`` set."""
    path = folder / f"{stem}.safetensors"
    for _ in range(20):
        tensors, metadata = _varied_spec(stem, i, rng)
        digest = hashlib.blake2b(repr(sorted(tensors.items())).encode(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            break
    write_safetensors(path, {k: (dt, shape, None) for k, (dt, shape) in tensors.items()}, metadata,
                      sparse=True, fsync=False)
    if i % ODD_EVERY == ODD_EVERY // 2:
        _make_odd(path, (i // ODD_EVERY) % len(ODDITIES), rng)
    return path


def _varied_spec(stem: str, i: int, rng: random.Random):
    family = rng.choices(("sd1", "sdxl", "sd2"), (45, 45, 10))[0]
    style = rng.choices(("kohya", "diffusers"), (80, 20))[0]
    parts = rng.choice((("unet", "te"), ("unet",), ("unet",), ("unet", "te")))
    conv = style == "kohya" and rng.random() < 0.2
    modules = lora_modules(family, style=style, parts=parts, conv=conv)
    modules = _subset(modules, rng)
    rank = rng.choice(RANKS)
    dtype = rng.choices(("F16", "BF16", "F32"), (60, 30, 10))[0]
    network = "lora"
    if style == "kohya" and rng.random() < 0.08:
        network = rng.choice(("loha", "lokr"))
    conv_rank = rng.choice(RANKS) if conv and rng.random() < 0.5 else None
    alpha = None if style != "kohya" else float(rng.choice((1, rank // 2 or 1, rank)))
    tensors = lora_tensors(modules, rank, alpha, dtype, network=network, conv_rank=conv_rank)
    if rng.random() < 0.1 and network == "lora":  # one module at another rank (dynamic-rank resizes)
        name = next(k for k in tensors if k.endswith((".lora_down.weight", ".lora_A.weight")))
        dt, shape = tensors[name]
        other = max(1, shape[0] // 2)
        tensors[name] = (dt, (other, *shape[1:]))
        up = name.replace("lora_down", "lora_up").replace("lora_A", "lora_B")
        dt, shape = tensors[up]
        tensors[up] = (dt, (shape[0], other, *shape[2:]))
    return tensors, _metadata(stem, family, style, rank, alpha, rng)


def _subset(modules: list[Module], rng: random.Random) -> list[Module]:
    """What trainers leave out: attention-only, some blocks, or a random few percent."""
    pick = rng.random()
    if pick < 0.15:
        kept = [m for m in modules if "attn" in m.name or "self_attn" in m.name]
    elif pick < 0.3:
        skip = rng.sample(range(12), 3)
        kept = [m for m in modules if not any(f"_{b}_" in m.name or f".{b}." in m.name for b in skip)]
    elif pick < 0.6:
        kept = [m for m in modules if rng.random() > 0.08]
    else:
        kept = list(modules)
    return kept or modules[:4]


def _metadata(stem: str, family: str, style: str, rank: int, alpha: float | None,
              rng: random.Random) -> dict[str, str] | None:
    pick = rng.random()
    if pick < 0.1:
        return None
    if style == "diffusers" or pick < 0.2:
        meta = {"modelspec.title": stem.replace("_", " "), "modelspec.architecture":
                {"sd1": "stable-diffusion-v1", "sd2": "stable-diffusion-v2",
                 "sdxl": "stable-diffusion-xl-v1-base"}[family] + "/lora",
                "modelspec.trigger_phrase": ", ".join(rng.sample(WORDS, 2))}
        if style == "diffusers" and rng.random() < 0.5:
            meta["lora_adapter_metadata"] = json.dumps({"r": rank, "lora_alpha": rng.choice((rank, rank / 2))})
        return meta
    tags = {" ".join(rng.sample(WORDS, rng.randint(1, 3))): rng.randint(1, 300)
            for _ in range(int(rng.paretovariate(1.2) * 40))}
    return {
        "ss_output_name": stem, "ss_network_module": "networks.lora", "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha), "ss_base_model_version": {"sd1": "sd_v1", "sd2": "sd_v2",
                                                                  "sdxl": "sdxl_base_v1-0"}[family],
        "ss_resolution": "(1024, 1024)" if family == "sdxl" else "(512, 512)",
        "ss_learning_rate": str(rng.choice((1e-4, 5e-5, 2e-4))), "ss_seed": str(rng.randint(0, 2**31)),
        "ss_num_train_images": str(rng.randint(20, 4000)), "ss_num_epochs": str(rng.randint(1, 30)),
        "ss_tag_frequency": json.dumps({f"{rng.randint(1, 20)}_{stem}": tags}),
    }


def _rewrite_header(path: Path, edit) -> None:
    """Apply ``edit(header text) -> text`` and keep the data section where it was."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        body = edit(fh.read(n).decode()).encode()
    with open(path, "wb") as fh:  # the data section is a hole either way
        fh.write(struct.pack("<Q", len(body)) + body)
        fh.truncate(8 + len(body) + size - 8 - n)


def _truncate(path: Path, rng: random.Random) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - rng.randint(1, 64))


def _lying_length(path: Path, rng: random.Random) -> None:
    with open(path, "r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(0)
        fh.write(struct.pack("<Q", n + rng.choice((-9, -1, 3, 10**12))))


def _overlap(path: Path, rng: random.Random) -> None:
    _rewrite_header(path, lambda t: t.replace('"data_offsets":[0,', '"data_offsets":[2,', 1))


def _duplicate_key(path: Path, rng: random.Random) -> None:
    def edit(text: str) -> str:
        at = text.index('"dtype"')
        before = text.rfind(',"', 0, at)
        start = before + 1 if before >= 0 else 1  # the first entry follows the opening brace
        end = text.index("}", at) + 1
        return text[:end] + "," + text[start:end] + text[end:]
    _rewrite_header(path, edit)


def _number_metadata(path: Path, rng: random.Random) -> None:
    _rewrite_header(path, lambda t: t.replace('"__metadata__":{', '"__metadata__":{"ss_steps":100,', 1))


def _escaped_key(path: Path, rng: random.Random) -> None:  # legal: the exact reader accepts it
    _rewrite_header(path, lambda t: t.replace('.weight"', '.w\\u0065ight"', 1))


def _padded_spaces(path: Path, rng: random.Random) -> None:  # legal: whitespace inside JSON
    _rewrite_header(path, lambda t: t.replace('"dtype":', '"dtype" : ', 5))


def _negative_zero(path: Path, rng: random.Random) -> None:
    _rewrite_header(path, lambda t: t.replace('"shape":[', '"shape":[-0,', 1))


ODDITIES = (_truncate, _lying_length, _overlap, _duplicate_key, _number_metadata, _escaped_key,
            _padded_spaces, _negative_zero)


def _make_odd(path: Path, which: int, rng: random.Random) -> None:
    ODDITIES[which](path, rng)

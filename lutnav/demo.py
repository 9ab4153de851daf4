"""The demo library: a dozen tiny but real LoRAs that show every catalog feature.

Everything is generated here, at demo time, from a fixed seed: no download, no
binary in the repository, the same bytes on every run. The weights are small
(rank 4, a handful of real modules per file) but the module names and widths are
the real ones, so base-model detection, mixing and export behave as they would on
a LoRA from the wild. Each sidecar kind the catalog reads appears at least once.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from catalog.layouts import lora_modules, lora_tensors
from catalog.writer import encode_floats, write_safetensors

#: written at the root so a later `lutnav demo` may refresh the tree it made
MARKER = ".lutnav-demo"
#: entries the demo writes (library-relative; a PEFT adapter is its folder)
SEED = 20240607


@dataclass(frozen=True)
class DemoEntry:
    """One entry of the demo and what the catalog should find in it."""

    path: str
    format: str
    base_model: str
    broken: bool = False


ENTRIES = [
    DemoEntry("style/ink_wash/ink_wash_v2.safetensors", "kohya", "sd1"),
    DemoEntry("style/watercolor/watercolor_sdxl.safetensors", "kohya", "sdxl"),
    DemoEntry("style/anime/cute_anime_girl_zz.safetensors", "kohya", "sd1"),
    DemoEntry("style/anime/anime_lineart_2022.ckpt", "pickle", "unknown"),
    DemoEntry("style/pixel_art/pixel_locon.safetensors", "kohya", "sd1"),
    DemoEntry("style/oil_paint/oil_loha.safetensors", "lycoris", "sd1"),
    DemoEntry("character/cats/zzcat.safetensors", "diffusers", "sd1"),
    DemoEntry("character/cats/zzcat_broken.safetensors", "unknown", "unknown", broken=True),
    DemoEntry("character/heroes/herocat.safetensors", "kohya", "sd1"),
    DemoEntry("character/robots/flux_robot.safetensors", "kohya", "flux"),
    DemoEntry("industry/architecture/facade_sd2.safetensors", "kohya", "sd2"),
    DemoEntry("industry/medical/med_qa", "peft", "llm"),
    DemoEntry("industry/legal/contract_clauses", "peft", "llm"),
]

INK_WASH_README = """\
# 水墨风格

### ink_wash_v2.safetensors
- 类型:风格迁移
- 适用主题:自然风景、静物
- 推荐强度:0.6 ~ 0.8
- 触发词:无(全局生效)
- 注意事项:避免与强对比风格LoRA叠加使用
"""


def write_demo(root: Path) -> list[Path]:
    """Write the demo library under ``root``; return every file written, sorted.

    ``root`` may be missing, empty, or an earlier demo (its files are rewritten,
    anything a user added is left alone). Any other non-empty folder is refused,
    so a user's own LoRAs never get demo files mixed in.
    """
    root = Path(root)
    _check_target(root)
    root.mkdir(parents=True, exist_ok=True)
    out = _Out(root)
    out.text(MARKER, "lutnav demo library; `lutnav demo` may rewrite the files it made here.\n")
    for build in (_ink_wash, _watercolor, _anime, _pixel_locon, _oil_loha, _zzcat,
                  _herocat, _flux_robot, _facade, _med_qa, _contract_clauses):
        build(out)
    return sorted(out.written)


def _check_target(root: Path) -> None:
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder; choose another folder for the demo")
    if (root / MARKER).is_file():
        return
    if any(root.iterdir()):
        raise FileExistsError(
            f"{root}: folder is not empty and is not a lutnav demo library; "
            "choose an empty or new folder (e.g. `lutnav demo --into ./demo-loras`)"
        )


class _Out:
    """Writes files under the root and remembers them."""

    def __init__(self, root: Path):
        self.root = root
        self.written: list[Path] = []

    def path(self, rel: str) -> Path:
        path = self.root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(path)
        return path

    def bytes(self, rel: str, data: bytes) -> None:
        self.path(rel).write_bytes(data)

    def text(self, rel: str, text: str) -> None:
        self.bytes(rel, text.encode("utf-8"))

    def json(self, rel: str, data: object) -> None:
        self.text(rel, json.dumps(data, ensure_ascii=False, indent=2) + "\n")

    def toml(self, rel: str, data: dict) -> None:
        self.text(rel, tomli_w.dumps(data))

    def lora(self, rel: str, tensors: dict, metadata: dict[str, str]) -> None:
        write_safetensors(self.path(rel), tensors, metadata, fsync=False)

    def preview(self, rel: str, label: str, hue: int, shape: str) -> None:
        from lutnav.demo_art import draw_preview

        self.bytes(rel, draw_preview(label, hue, shape))

"""The demo library: a dozen tiny but real LoRAs that show every catalog feature.

Everything is generated at demo time from a fixed seed: no download, no binary in
the repository, the same bytes on every run. The weights are small (rank 4, a few
modules per file) but the module names and widths are the real ones, so base
detection, mixing and export behave as on LoRAs from the wild. Every sidecar kind
the catalog reads appears at least once; one file is broken on purpose, and one
is a pickle that must be listed and never opened.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import math
import os
import pickle
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catalog.layouts import LLMShape, lora_modules, lora_tensors
from catalog.writer import encode_floats, write_safetensors

#: written at the root so that a later `lutnav demo` may refresh the tree it made
MARKER = ".lutnav-demo"
SEED = 1337


@dataclass(frozen=True)
class DemoEntry:
    """One entry of the demo and what the catalog should find in it."""

    path: str  # library-relative; a PEFT adapter is its folder
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
    DemoEntry("style/sketch/pencil_lokr.safetensors", "lycoris", "sdxl"),
    DemoEntry("character/cats/zzcat.safetensors", "diffusers", "sd1"),
    DemoEntry("character/cats/broken_download.safetensors", "unknown", "unknown", broken=True),
    DemoEntry("character/heroes/herocat.safetensors", "kohya", "sd1"),
    DemoEntry("character/robots/flux_robot.safetensors", "kohya", "flux"),
    DemoEntry("industry/architecture/facade_sd2.safetensors", "kohya", "sd2"),
    DemoEntry("industry/medical/med_qa", "peft", "llm"),
    DemoEntry("industry/legal/contract_clauses", "peft", "llm"),
]

INK_WASH_README = """\
### ink_wash_v2.safetensors
- 类型:风格迁移
- 适用主题:自然风景、静物
- 推荐强度:0.6 ~ 0.8
- 触发词:无(全局生效)
- 注意事项:避免与强对比风格LoRA叠加使用
"""

# Module subsets (matched on the name with "." and "_" alike): a few real attention
# layers with their real widths (attn2.to_k reads the text width that names the
# base model) and the first text-encoder layer.
_SD_PICK = (r"(down_blocks_0_attentions_0|mid_block_attentions_0|up_blocks_3_attentions_2)"
            r"_transformer_blocks_0_attn[12]_to_(q|k|v|out_0)$|encoder_layers_0_self_attn_(q|v)_proj$")
_SDXL_PICK = (r"(input_blocks_4_1|middle_block_1)_transformer_blocks_0_attn2_to_(q|k|v|out_0)$"
              r"|encoder_layers_0_self_attn_(q|v)_proj$")
_FLUX_PICK = r"double_blocks_0_(img|txt)_attn_(qkv|proj)$|single_blocks_0_linear2$"
_CONV_PICK = r"down_blocks_0_(resnets_0_conv[12]|downsamplers_0_conv)$|up_blocks_3_resnets_0_conv2$"
_TINY_LLAMA = LLMShape(hidden=64, intermediate=172, layers=2, kv_width=32)


def write_demo(root: Path, *, overwrite: bool = False, note: Callable[[str], None] | None = None) -> list[Path]:
    """Write the demo library under ``root``; return every file written, sorted.

    ``root`` may be missing, empty, or an earlier demo (its files are rewritten;
    anything a user added there is left alone, and so is a demo card the user
    edited, unless ``overwrite``; ``note`` hears about each one kept). Any other
    non-empty folder is refused, so a user's own LoRAs never get demo files mixed in.
    """
    root = Path(root)
    _check_target(root)
    root.mkdir(parents=True, exist_ok=True)
    out = _Out(root, overwrite, note)
    out.text(MARKER, "lutnav demo library: `lutnav demo` may rewrite the files it made here.\n")
    _style(out)
    _character(out)
    _industry(out)
    return sorted(out.written)


def _check_target(root: Path) -> None:
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder; choose another place for the demo")
    if (root / MARKER).is_file() or not any(root.iterdir()):
        return
    raise FileExistsError(
        f"{root}: folder is not empty and is not a lutnav demo library; "
        "write the demo into a new or empty folder (lutnav demo --into DIR)"
    )


# --- the entries ------------------------------------------------------------------


def _style(out: _Out) -> None:
    out.lora("style/ink_wash/ink_wash_v2", "sd1", _SD_PICK, alpha=2.0, metadata=_kohya_meta(
        "ink_wash_v2", "sd_v1", 4, 2.0, {"ink wash painting": 38, "mountain": 21, "mist": 17, "pine tree": 9}))
    out.text("style/ink_wash/README.md", INK_WASH_README)
    out.preview("style/ink_wash/ink_wash_v2.preview.png", "ink", 0.0, "hills", grey=True)

    out.lora("style/watercolor/watercolor_sdxl", "sdxl", _SDXL_PICK, alpha=4.0, metadata=_kohya_meta(
        "watercolor_sdxl", "sdxl_base_v1-0", 4, 4.0, {"wtrclr": 60, "watercolor": 60, "flowers": 22}))
    out.json("style/watercolor/watercolor_sdxl.json", {
        "description": "Soft watercolor washes with paper texture.", "sd version": "SDXL",
        "activation text": "wtrclr, watercolor", "preferred weight": 0.7,
        "negative text": "photo, hard edges", "notes": "Works best at 1024 px."})
    out.preview("style/watercolor/watercolor_sdxl.preview.png", "wc", 0.55, "circles")

    anime = _kohya_meta("cute_anime_girl_zz", "sd_v1", 4, 2.0, {"zz_girl": 45, "1girl": 45, "smile": 30})
    anime.update({
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers", "modelspec.title": "Cute Anime Girl ZZ",
        "modelspec.trigger_phrase": "zz_girl", "modelspec.resolution": "512x512",
        "modelspec.date": "2024-11-02T09:30:00", "modelspec.author": "lutnav demo"})
    out.lora("style/anime/cute_anime_girl_zz", "sd1", _SD_PICK, alpha=2.0, metadata=anime)
    out.toml("style/anime/cute_anime_girl_zz.toml", {
        "title": "Cute anime girl (zz)", "description": "A cheerful anime character style.",
        "trigger_words": ["zz_girl"], "strength": 0.7, "strength_range": [0.5, 0.9],
        "negative_prompt": "lowres, bad hands", "themes": ["anime", "portrait"],
        "tags": ["anime", "girl", "cute"], "type": "character style", "license": "CreativeML Open RAIL-M",
        "previews": ["cute_anime_girl_zz.preview.png"], "training": {"steps": 1500, "rank": 4}})
    out.preview("style/anime/cute_anime_girl_zz.preview.png", "zz", 0.9, "star")
    # An old pickled checkpoint: listed by the catalog, never unpickled by anyone.
    out.bytes("style/anime/anime_lineart_2022.ckpt",
              pickle.dumps({"epoch": 12, "global_step": 4800, "note": "lineart lora, 2022"}, protocol=2))

    out.lora("style/pixel_art/pixel_locon", "sd1", _SD_PICK + "|" + _CONV_PICK, conv=True, alpha=1.0,
             conv_rank=2, metadata=_kohya_meta(
                 "pixel_locon", "sd_v1", 4, 1.0, {"pixel art": 50, "8bit": 31}, module="lycoris.kohya",
                 args={"algo": "locon", "conv_dim": "2", "conv_alpha": "1"}))
    lora_file = out.root / "style/pixel_art/pixel_locon.safetensors"
    out.json("style/pixel_art/pixel_locon.metadata.json", {
        "file_name": "pixel_locon", "model_name": "Pixel Art LoCon", "size": lora_file.stat().st_size,
        "sha256": hashlib.sha256(lora_file.read_bytes()).hexdigest(), "base_model": "SD 1.5",
        "preview_url": "pixel_locon.preview.png", "notes": "Upscale with nearest-neighbour.",
        "usage_tips": json.dumps({"strength": 0.9, "strength_min": 0.6, "strength_max": 1.0}),
        "tags": ["pixel art", "retro"], "modelDescription": "<p>Crisp 8-bit sprites.</p>",
        "from_civitai": False, "civitai": {"trainedWords": ["pixel art", "8bit"]}})
    out.preview("style/pixel_art/pixel_locon.preview.png", "px", 0.3, "pixels")

    # LoHa whose header claims SDXL: the shapes say SD1, and the shapes win.
    oil = _kohya_meta("oil_loha", "sdxl_base_v1-0", 4, 2.0, {"oil painting": 40, "impasto": 18},
                      module="lycoris.kohya", args={"algo": "loha"})
    out.lora("style/oil_paint/oil_loha", "sd1", _SD_PICK, alpha=2.0, network="loha", metadata=oil)
    out.json("style/oil_paint/oil_loha.cm-info.json", {
        "ModelName": "Oil Paint", "VersionName": "LoHa v3", "ModelId": 5501, "VersionId": 7702,
        "ModelType": "LORA", "BaseModel": "SD 1.5", "ModelDescription": "<p>Thick impasto strokes.</p>",
        "TrainedWords": ["oil painting", "impasto"], "Tags": ["oil", "painting"],
        "ImportedAt": "2024-05-01T12:00:00+00:00"})
    out.preview("style/oil_paint/oil_loha.preview.png", "oil", 0.08, "strokes")

    # LoKr splits each width into factors (2048 = 32 x 64): the catalog must multiply them back.
    out.lora("style/sketch/pencil_lokr", "sdxl", _SDXL_PICK, alpha=4.0, network="lokr", metadata=_kohya_meta(
        "pencil_lokr", "sdxl_base_v1-0", 4, 4.0, {"pencil sketch": 44, "monochrome": 30},
        module="lycoris.kohya", args={"algo": "lokr", "factor": "-1"}))
    out.preview("style/sketch/pencil_lokr.preview.png", "pen", 0.0, "strokes", grey=True)


def _character(out: _Out) -> None:
    adapter_meta = {"unet.r": 4, "unet.lora_alpha": 4, "unet.target_modules": ["to_q", "to_k", "to_v", "to_out.0"]}
    out.lora("character/cats/zzcat", "sd1", _SD_PICK, style="diffusers", parts=("unet",), alpha=4.0,
             metadata={"format": "pt", "lora_adapter_metadata": json.dumps(adapter_meta, sort_keys=True)})
    out.toml("character/cats/zzcat.toml", {
        "title": "zzcat", "description": "A grey tabby cat called zzcat.", "trigger_words": ["zzcat"],
        "strength": 0.8, "themes": ["cat", "pet"], "tags": ["cat"], "type": "character"})
    out.preview("character/cats/zzcat.png", "cat", 0.12, "cat")  # A1111's other preview spelling
    out.lora("character/cats/broken_download", "sd1", _SD_PICK, alpha=2.0, metadata={"ss_network_dim": "4"})
    broken = out.root / "character/cats/broken_download.safetensors"
    os.truncate(broken, broken.stat().st_size - 1024)  # an interrupted download

    out.lora("character/heroes/herocat", "sd1", _SD_PICK, alpha=2.0, metadata=_kohya_meta(
        "herocat", "sd_v1", 4, 2.0, {"herocat": 30, "red cape": 25, "flying": 12}))
    out.json("character/heroes/herocat.civitai.info", {
        "id": 104501, "modelId": 98765, "name": "v1.0", "baseModel": "SD 1.5",
        "trainedWords": ["herocat", "red cape"], "description": "<p>First release.</p>",
        "model": {"name": "Hero Cat", "type": "LORA", "nsfw": False, "tags": ["cat", "superhero"],
                  "description": "<p>A cat in a <b>red cape</b>.</p>"},
        "images": [{"url": "herocat.preview.png", "width": 64, "height": 64, "nsfw": "None"}]})
    out.preview("character/heroes/herocat.preview.png", "hero", 0.0, "cat")

    flux = _kohya_meta("flux_robot", "flux1", 4, 4.0, {"rbt": 20, "robot": 20}, module="networks.lora_flux")
    flux.update({"modelspec.architecture": "flux-1-dev/lora", "modelspec.title": "Tin Robot",
                 "modelspec.trigger_phrase": "rbt"})
    out.lora("character/robots/flux_robot", "flux", _FLUX_PICK, parts=("unet",), alpha=4.0, dtype="BF16",
             metadata=flux)
    out.preview("character/robots/flux_robot.preview.png", "rbt", 0.62, "grid")


def _industry(out: _Out) -> None:
    sd2 = _kohya_meta("facade_sd2", "sd_v2", 4, 4.0, {"facade": 33, "glass": 14, "brutalism": 6})
    sd2.update({"ss_v2": "True", "ss_resolution": "(768, 768)"})
    out.lora("industry/architecture/facade_sd2", "sd2", _SD_PICK, alpha=4.0, metadata=sd2)
    out.json("industry/architecture/facade_sd2.json", {
        "description": "Clean architectural facades.", "sd version": "SD2", "activation text": "",
        "preferred weight": 0.6, "notes": "Pair with a 768 px SD 2.1 checkpoint."})
    out.preview("industry/architecture/facade_sd2.preview.png", "arc", 0.15, "grid")

    out.adapter("industry/medical/med_qa", ("q_proj", "k_proj", "v_proj", "o_proj"), rank=8, alpha=16)
    out.toml("industry/medical/med_qa/lutnav.toml", {
        "title": "Medical Q&A", "description": "Answers patient questions in plain words.",
        "trigger_words": [], "themes": ["medical", "question answering"], "tags": ["llm", "qa"],
        "type": "instruction tuning", "notes": "Not medical advice; a demo adapter on a tiny model."})
    out.preview("industry/medical/med_qa/preview.png", "med", 0.45, "cross")
    out.adapter("industry/legal/contract_clauses", ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
                rank=4, alpha=8)
    out.text("industry/legal/contract_clauses/README.md", (
        "---\nbase_model: lutnav-demo/tiny-llama-2l-h64\nlibrary_name: peft\nlicense: apache-2.0\n"
        "tags:\n- legal\n- contracts\n---\n\n# Contract clauses\n\nDrafts standard contract clauses.\n"))


# --- writing ------------------------------------------------------------------------


def _kohya_meta(name: str, version: str, rank: int, alpha: float, tags: dict[str, int], *,
                module: str = "networks.lora", args: dict[str, str] | None = None) -> dict[str, str]:
    """The ``ss_*`` block sd-scripts writes, with the training details a user looks for."""
    meta = {
        "ss_output_name": name, "ss_network_module": module, "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha), "ss_base_model_version": version, "ss_mixed_precision": "fp16",
        "ss_learning_rate": "0.0001", "ss_num_epochs": "10", "ss_num_train_images": str(max(tags.values())),
        "ss_resolution": "(1024, 1024)" if version.startswith(("sdxl", "flux")) else "(512, 512)",
        "ss_tag_frequency": json.dumps({f"10_{name}": tags}), "ss_training_started_at": "1717750000.0",
    }
    if args:
        meta["ss_network_args"] = json.dumps(args)
    return meta


class _Out:
    """Writes files under the root and remembers them."""

    def __init__(self, root: Path, overwrite: bool = False, note: Callable[[str], None] | None = None):
        self.root = root
        self.written: list[Path] = []
        self.overwrite = overwrite
        self.note = note or (lambda text: None)

    def _path(self, rel: str) -> Path:
        path = self.root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(path)
        return path

    def bytes(self, rel: str, data: bytes) -> None:
        self._path(rel).write_bytes(data)

    def text(self, rel: str, text: str) -> None:
        self.bytes(rel, text.encode("utf-8"))

    def json(self, rel: str, data: object) -> None:
        self.text(rel, json.dumps(data, ensure_ascii=False, indent=2) + "\n")

    def toml(self, rel: str, data: dict) -> None:
        """A card, through the catalog's card writer: one the user edited is kept unless told."""
        from catalog.card_file import write_card
        from catalog.card_slot import card_slot, claim_card
        from catalog.sidecars import PEFT_CARD_NAME

        path = self.root.joinpath(*rel.split("/"))
        in_folder = path.name == PEFT_CARD_NAME
        lora = path.parent if in_folder else path.with_suffix(".safetensors")
        slot = card_slot(lora, is_folder=in_folder)
        if slot.digest is not None and slot.values == data and slot.taken_by is None:
            self._path(rel)
            return  # the demo's values already: the user's comments and layout stay
        if slot.digest is not None and slot.values != data and not self.overwrite:
            self.note(f"kept {rel}: it differs from the demo's card (`lutnav demo --overwrite` resets it)")
            return
        slot = claim_card(lora, replace=True, is_folder=in_folder, fresh=True)
        self._path(rel)
        write_card(path, data, expected_digest=slot.digest, fresh=True)

    def lora(self, stem: str, family: str, pick: str, *, style: str = "kohya", parts=("unet", "te"),
             conv: bool = False, rank: int = 4, alpha: float, dtype: str = "F16", network: str = "lora",
             conv_rank: int | None = None, metadata: dict[str, str]) -> None:
        modules = [m for m in lora_modules(family, style=style, parts=parts, conv=conv)
                   if re.search(pick, m.name.replace(".", "_"))]
        specs = lora_tensors(modules, rank, alpha, dtype, network=network, conv_rank=conv_rank)
        rng = random.Random(f"{SEED}:{stem}")
        tensors = {key: (dt, shape, _values(key, dt, shape, alpha, rng)) for key, (dt, shape) in specs.items()}
        write_safetensors(self._path(stem + ".safetensors"), tensors, metadata, fsync=False)

    def adapter(self, folder: str, targets: tuple[str, ...], *, rank: int, alpha: float) -> None:
        """A PEFT ``save_pretrained`` folder for a 2-layer, 64-wide Llama (the size text-trainer tests use)."""
        modules = [m for m in lora_modules("llm", style="peft-llm", llm=_TINY_LLAMA)
                   if m.name.rsplit(".", 1)[-1] in targets]
        specs = lora_tensors(modules, rank, alpha, "F32")
        rng = random.Random(f"{SEED}:{folder}")
        tensors = {key: (dt, shape, _values(key, dt, shape, alpha, rng)) for key, (dt, shape) in specs.items()}
        write_safetensors(self._path(f"{folder}/adapter_model.safetensors"), tensors, {"format": "pt"},
                          fsync=False)
        self.json(f"{folder}/adapter_config.json", {
            "base_model_name_or_path": "lutnav-demo/tiny-llama-2l-h64", "bias": "none",
            "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
            "lora_alpha": alpha, "lora_dropout": 0.05, "modules_to_save": None, "peft_type": "LORA",
            "r": rank, "target_modules": sorted(targets), "task_type": "CAUSAL_LM",
            "use_dora": False, "use_rslora": False})

    def preview(self, rel: str, label: str, hue: float, motif: str, *, grey: bool = False) -> None:
        self.bytes(rel, _draw_preview(label, hue, motif, grey))


def _values(key: str, dtype: str, shape: tuple[int, ...], alpha: float, rng: random.Random) -> bytes:
    """Plausible trained weights: down/A at fan-in scale, up/B small and non-zero."""
    if key.endswith(".alpha"):
        return encode_floats([alpha], dtype)
    down = re.search(r"(lora_down|lora_A|hada_w\d_b|lokr_w1|lokr_w2_b)\b", key) is not None
    scale = 1.0 / math.sqrt(math.prod(shape[1:]) or 1) if down else 0.01
    return _random_floats(math.prod(shape), dtype, scale, rng)


#: dtype -> (bits, mantissa bits, exponent bias)
_FLOAT_LAYOUTS = {"F16": (16, 10, 15), "BF16": (16, 7, 127), "F32": (32, 23, 127)}


def _random_floats(count: int, dtype: str, scale: float, rng: random.Random) -> bytes:
    """``count`` floats of random sign and a magnitude within 4x of ``scale``, from random bits.

    Sign and mantissa bits are random, the exponent is pinned but for its lowest
    bit, so every value is finite and in range. Done on one big integer, so the
    ~1.5 M values of the demo cost milliseconds instead of a Python loop each.
    """
    bits, mantissa, bias = _FLOAT_LAYOUTS[dtype]
    width = bits // 8
    exponent = (math.floor(math.log2(scale)) + bias) & ~1
    keep = (1 << (bits - 1)) | (1 << (mantissa + 1)) - 1  # sign, lowest exponent bit, mantissa
    keep_all = int.from_bytes(keep.to_bytes(width, "little") * count, "little")
    set_all = int.from_bytes((exponent << mantissa).to_bytes(width, "little") * count, "little")
    raw = int.from_bytes(rng.randbytes(count * width), "little")
    return ((raw & keep_all) | set_all).to_bytes(count * width, "little")


def _draw_preview(label: str, hue: float, motif: str, grey: bool) -> bytes:
    """A 64x64 PNG: a gradient sky, a motif that hints at the LoRA, and a label."""
    from PIL import Image, ImageDraw

    size = 64
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):
        sat = 0.0 if grey else 0.35 + 0.4 * y / size
        r, g, b = colorsys.hsv_to_rgb(hue, sat, 0.95 - 0.45 * y / size)
        draw.line([(0, y), (size, y)], fill=(int(r * 255), int(g * 255), int(b * 255)))
    ink = (30, 30, 30) if grey else tuple(int(c * 255) for c in colorsys.hsv_to_rgb((hue + 0.5) % 1, 0.7, 0.8))
    if motif == "hills":
        draw.polygon([(0, 50), (18, 22), (34, 44), (48, 16), (64, 46), (64, 64), (0, 64)], fill=ink)
    elif motif == "circles":
        for i in range(4):
            draw.ellipse([6 + 12 * i, 10 + 8 * (i % 2), 26 + 12 * i, 30 + 8 * (i % 2)], outline=ink, width=2)
    elif motif == "star":
        pts = [(32 + 20 * math.cos(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45),
                26 + 20 * math.sin(a * math.pi / 5 - math.pi / 2) * (1 if a % 2 == 0 else 0.45)) for a in range(10)]
        draw.polygon(pts, fill=ink)
    elif motif == "pixels":
        for i in range(0, 48, 8):
            draw.rectangle([8 + i, 40 - i // 2, 15 + i, 47 - i // 2], fill=ink)
    elif motif == "strokes":
        for i in range(6):
            draw.line([(4, 8 + 7 * i), (60, 14 + 6 * i)], fill=ink, width=4)
    elif motif == "cat":
        draw.ellipse([16, 14, 48, 46], fill=ink)
        draw.polygon([(18, 22), (20, 6), (30, 16)], fill=ink)
        draw.polygon([(46, 22), (44, 6), (34, 16)], fill=ink)
    elif motif == "cross":
        draw.rectangle([26, 8, 38, 44], fill=ink)
        draw.rectangle([14, 20, 50, 32], fill=ink)
    else:  # grid
        for x in range(10, 56, 12):
            for y in range(8, 44, 12):
                draw.rectangle([x, y, x + 7, y + 7], outline=ink, width=2)
    draw.rectangle([0, 50, size, size], fill=(0, 0, 0))
    draw.text((3, 51), label, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()

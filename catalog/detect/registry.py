"""The family registry: one home for what lutnav knows about each base model.

A family is named once here, in the one vocabulary (lower-case, hyphens) that
``ls --base``, the TUI tree, search, the guards and the merged files' metadata
use. Each entry says which versions it covers, its text encoders, which module
names its own checkpoints use (what kohya ``lora_unet_`` and ComfyUI
``diffusion_model.`` keys flatten), and which key spellings each client loads.
The block layouts and widths that detection matches live beside it, in
:mod:`catalog.detect.dit_layouts` (transformer families) and :mod:`lutnav.sample_loras`
(the SD UNets); adding a family is one entry here, its layouts there, and tests.

A spelling is ``<prefix kind>:<names>``: the prefix kind is ``kohya``
(``lora_unet_``), ``kohya-transformer`` (``lora_transformer_``, OneTrainer),
``lycoris`` (``lycoris_``), ``diffusers`` (``transformer.``), ``peft``
(``base_model.model.``), ``comfyui`` (``diffusion_model.``) or ``bare`` (no
prefix); the names are ``original``, ``diffusers`` or ``xlabs``. What each
client loads was read from ComfyUI's ``comfy/lora.py`` + ``lora_convert.py`` and
diffusers' ``lora_conversion_utils.py``; ``None`` marks a spelling whose support
lutnav has not established (reported as "not checked", never as loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLIENTS = ("comfyui", "a1111", "diffusers")
PREFIXES = (("lora_unet_", "kohya"), ("lora_transformer_", "kohya-transformer"), ("lycoris_", "lycoris"),
            ("model.diffusion_model.", "comfyui"), ("diffusion_model.", "comfyui"),
            ("base_model.model.", "peft"), ("transformer.", "diffusers"))
#: what ``convert --to`` accepts, and the prefix each target writes
TARGET_PREFIX = {"kohya": "lora_unet_", "comfyui": "diffusion_model.", "diffusers": "transformer.",
                 "peft": "base_model.model."}


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    versions: str
    media: str  # image | video | llm
    text_encoders: tuple[str, ...] = ()
    native: str = "original"  # names of the family's own checkpoints (ComfyUI's model and kohya flatten them)
    loads: dict[str, dict[str, bool | None]] = field(default_factory=dict)  # client -> spelling -> loads fully
    claims: tuple[str, ...] = ()  # words in metadata/sidecar claims that name it (lower-case)
    ss_base: str | None = None  # ss_base_model_version / modelspec.architecture a merged file gets
    architecture: str | None = None

    def loaded_by(self, client: str, spelling: str) -> bool | None:
        """True/False where the client's loader is known to map/drop ``spelling``; None where unknown."""
        table = self.loads.get(client)
        if table is None:
            return False if client == "a1111" else None
        return table.get(spelling, table.get("*"))

    @property
    def targets(self) -> tuple[str, ...]:
        """The spellings ``convert --to`` can write for this family (those some client loads fully)."""
        out = []
        for target in TARGET_PREFIX:
            names = self.native if target in ("kohya", "comfyui") else "diffusers"
            spelling = f"{target}:{names}"
            if any(self.loaded_by(c, spelling) for c in CLIENTS):
                out.append(target)
        return tuple(out)


def _comfy(native: str, *extra: str, dropped: tuple[str, ...] = ()) -> dict[str, bool | None]:
    """ComfyUI maps lora_unet_/diffusion_model. over its own model's names for every model, plus per-model extras."""
    out: dict[str, bool | None] = {f"kohya:{native}": True, f"comfyui:{native}": True}
    out.update(dict.fromkeys(extra, True))
    out.update(dict.fromkeys(dropped, False))
    return out


_SD_COMFY = {"kohya:original": True, "diffusers:diffusers": True, "bare:diffusers": True, "lycoris:diffusers": True}
_SD = {"comfyui": _SD_COMFY, "a1111": {"kohya:original": True, "*": False},
       "diffusers": {"kohya:original": True, "diffusers:diffusers": True, "peft:diffusers": True}}
_FLUX_COMFY = _comfy("original", "diffusers:diffusers", "lycoris:diffusers", "kohya-transformer:diffusers",
                     dropped=("xlabs:xlabs", "bare:xlabs", "peft:diffusers", "peft:original"))

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("sd1", "Stable Diffusion 1.x", "SD 1.4, 1.5 and their fine-tunes", "image", ("CLIP-L",), loads=_SD,
           claims=("sd_v1", "stable-diffusion-v1", "sd 1", "sd1", "1.5"), ss_base="sd_v1",
           architecture="stable-diffusion-v1/lora"),
    Family("sd2", "Stable Diffusion 2.x", "SD 2.0, 2.1 (512 and 768-v)", "image", ("OpenCLIP-H",), loads=_SD,
           claims=("sd_v2", "stable-diffusion-v2", "sd 2", "sd2", "2.1"), ss_base="sd_v2",
           architecture="stable-diffusion-v2-768-v/lora"),
    Family("sdxl", "Stable Diffusion XL", "SDXL 1.0 base and fine-tunes (variants: pony, illustrious, noobai)",
           "image", ("CLIP-L", "OpenCLIP-bigG"), loads=_SD, claims=("sdxl", "stable-diffusion-xl", "sd_xl"),
           ss_base="sdxl_base_v1-0", architecture="stable-diffusion-xl-v1-base/lora"),
    Family("sd3", "Stable Diffusion 3 / 3.5", "SD3 Medium, SD3.5 Medium/Large/Large Turbo", "image",
           ("CLIP-L", "OpenCLIP-bigG", "T5-XXL"),
           loads={"comfyui": _comfy("original", "diffusers:diffusers", "peft:diffusers",
                                    "kohya-transformer:diffusers", "lycoris:diffusers"),
                  "diffusers": {"diffusers:diffusers": True}},
           claims=("stable-diffusion-3", "stable-diffusion-v3", "sd3", "sd 3"), ss_base="sd3",
           architecture="stable-diffusion-v3-medium/lora"),
    Family("flux", "FLUX.1", "FLUX.1 dev, schnell, Kontext, Krea dev, Fill/Depth/Canny", "image",
           ("CLIP-L", "T5-XXL"), loads={
               "comfyui": _FLUX_COMFY, "a1111": _FLUX_COMFY,  # Forge reuses ComfyUI's loader for Flux
               "diffusers": {"kohya:original": True, "xlabs:xlabs": True, "bare:xlabs": True,
                             "diffusers:diffusers": True, "comfyui:original": True}},
           claims=("flux-1", "flux.1", "flux1", "flux"), ss_base="flux1", architecture="flux-1-dev/lora"),
    Family("chroma", "Chroma", "Chroma (Flux.1-schnell derived, no modulation layers)", "image", ("T5-XXL",),
           loads={"comfyui": _FLUX_COMFY, "diffusers": {"diffusers:diffusers": True}},
           claims=("chroma",), ss_base="chroma", architecture="chroma/lora"),
    Family("flux2", "FLUX.2", "FLUX.2 dev, klein 4B/9B", "image", ("Mistral Small 3 / Qwen3",),
           loads={"comfyui": _comfy("original"),
                  "diffusers": {"diffusers:diffusers": True, "comfyui:original": True}},
           claims=("flux-2", "flux.2", "flux2"), ss_base="flux2", architecture="flux-2-dev/lora"),
    Family("flux3", "FLUX.3", "Flux3Transformer2DModel of diffusers (mode blocks)", "image", (),
           native="diffusers", loads={"diffusers": {"diffusers:diffusers": True}}, claims=("flux-3", "flux.3", "flux3"),
           ss_base="flux3", architecture="flux-3/lora"),
    Family("qwen-image-2.1", "Qwen-Image 2.1", "Qwen-Image 2.1 (diffusers QwenImage21Transformer2DModel)", "image",
           ("Qwen VL",), native="diffusers", loads={"diffusers": {"diffusers:diffusers": True}},
           claims=("qwen-image-2.1", "qwen_image_2.1", "qwenimage21"), ss_base="qwen_image_2.1",
           architecture="qwen-image-2.1/lora"),
    Family("qwen-image", "Qwen-Image", "Qwen-Image, Qwen-Image-Edit (2509, 2511)", "image", ("Qwen2.5-VL 7B",),
           native="diffusers",
           loads={"comfyui": _comfy("diffusers", "diffusers:diffusers", "bare:diffusers", "lycoris:diffusers"),
                  "diffusers": {"diffusers:diffusers": True, "kohya:diffusers": True, "comfyui:diffusers": True,
                                "bare:diffusers": True}},
           claims=("qwen-image", "qwen_image", "qwenimage", "qwen"), ss_base="qwen_image", architecture="qwen-image/lora"),
    Family("z-image", "Z-Image", "Z-Image Turbo, Z-Image base", "image", ("Qwen3 4B",),
           loads={"comfyui": _comfy("original", "comfyui:diffusers", "kohya:diffusers"),
                  "diffusers": {"diffusers:diffusers": True, "comfyui:diffusers": True, "kohya:diffusers": True}},
           claims=("z-image", "z_image", "zimage"), ss_base="z_image", architecture="z-image/lora"),
    Family("lumina2", "Lumina Image 2.0", "Lumina-Image-2.0 (and Neta Lumina)", "image", ("Gemma 2 2B",),
           loads={"comfyui": _comfy("original"),
                  "diffusers": {"diffusers:diffusers": True, "comfyui:original": True}},
           claims=("lumina",), ss_base="lumina2", architecture="lumina-2/lora"),
    Family("hidream", "HiDream-I1", "HiDream-I1 Full/Dev/Fast, E1", "image",
           ("CLIP-L", "OpenCLIP-bigG", "T5-XXL", "Llama 3.1 8B"), native="diffusers",
           loads={"comfyui": _comfy("diffusers", "diffusers:diffusers", "lycoris:diffusers"),
                  "diffusers": {"diffusers:diffusers": True, "comfyui:diffusers": True}},
           claims=("hidream",), ss_base="hidream", architecture="hidream-i1/lora"),
    Family("krea2", "Krea 2", "Krea 2 (original krea-ai names and diffusers Krea2Transformer2DModel)", "image",
           ("Qwen3",), loads={"diffusers": {"diffusers:diffusers": True, "comfyui:original": True,
                                            "peft:original": True}}, claims=("krea-2", "krea2", "krea 2"),
           ss_base="krea2", architecture="krea-2/lora"),
    Family("anima", "Anima", "Anima (Cosmos-Predict2 2B network; Cosmos-Predict2 2B LoRAs fit it too)", "image",
           ("Qwen3 0.6B + LLM adapter",), loads={"comfyui": _comfy("original"), "diffusers": {"diffusers:diffusers": True}},
           claims=("anima", "cosmos"), ss_base="anima", architecture="anima/lora"),
    Family("hunyuan-image", "HunyuanImage 2.1", "HunyuanImage 2.1", "image", ("Qwen2.5-VL 7B", "ByT5"),
           loads={"diffusers": {"diffusers:diffusers": True}}, claims=("hunyuanimage", "hunyuan-image"),
           ss_base="hunyuan_image", architecture="hunyuan-image-2.1/lora"),
    Family("sana", "Sana", "Sana 600M, 1600M (1.0, 1.5, Sprint)", "image", ("Gemma 2 2B",), native="diffusers",
           loads={"diffusers": {"diffusers:diffusers": True}}, claims=("sana",), ss_base="sana",
           architecture="sana/lora"),
    Family("pixart", "PixArt-α/Σ", "PixArt-alpha, PixArt-Sigma", "image", ("T5-XXL",), native="diffusers",
           loads={"diffusers": {"diffusers:diffusers": True}}, claims=("pixart",), ss_base="pixart",
           architecture="pixart/lora"),
    Family("cogview", "CogView", "CogView4 6B, CogView3-Plus 3B, GLM-Image (one block design)", "image",
           ("GLM-4 9B / T5-XXL",), native="diffusers", loads={"diffusers": {"diffusers:diffusers": True}},
           claims=("cogview", "glm-image"), ss_base="cogview", architecture="cogview/lora"),
    Family("auraflow", "AuraFlow", "AuraFlow 0.1-0.3 (diffusers names)", "image", ("Pile-T5",), native="diffusers",
           loads={"comfyui": {"diffusers:diffusers": True}, "diffusers": {"diffusers:diffusers": True}},
           claims=("auraflow",), ss_base="auraflow", architecture="auraflow/lora"),
    Family("wan", "Wan 2.x", "Wan 2.1 (1.3B, 14B, T2V/I2V/VACE), Wan 2.2 (5B, A14B)", "video", ("umT5-XXL",),
           loads={"comfyui": _comfy("original"),
                  "diffusers": {"diffusers:diffusers": True, "comfyui:original": True, "kohya:original": True}},
           claims=("wan2", "wan-2", "wan_2", "wan 2", "wan21", "wan22", "wan video"), ss_base="wan", architecture="wan-2/lora"),
    Family("hunyuan-video", "HunyuanVideo", "HunyuanVideo (T2V, I2V, FramePack)", "video", ("Llama 3 8B", "CLIP-L"),
           loads={"comfyui": _comfy("original", "diffusers:diffusers", "diffusers:original", "comfyui:diffusers",
                                    "peft:diffusers"),
                  "diffusers": {"diffusers:diffusers": True, "kohya:original": True, "diffusers:original": True,
                                "comfyui:original": True}},
           claims=("hunyuan-video", "hunyuan_video", "hunyuanvideo", "hunyuan video"), ss_base="hunyuan_video",
           architecture="hunyuan-video/lora"),
    Family("ltx", "LTX-Video / LTX-2", "LTX-Video 2B/13B (0.9.x), LTX-2", "video", ("T5-XXL / Gemma 3",),
           native="diffusers", loads={"comfyui": _comfy("diffusers"),
                                      "diffusers": {"diffusers:diffusers": True, "comfyui:diffusers": True}},
           claims=("ltx",), ss_base="ltx", architecture="ltx-video/lora"),
    Family("llm", "LLM adapter", "causal language models: llama, mistral, qwen2/3, gemma, phi, gpt2, gpt-neox, "
           "opt, bloom/falcon", "llm"),
)}
#: the image/video families: a blend of one of these with an LLM adapter is refused as "cannot blend"
IMAGE_FAMILIES = frozenset(name for name, f in FAMILIES.items() if f.media != "llm")
#: SDXL fine-tune lines users sort by; the shapes are SDXL's, so base_model stays sdxl
SDXL_VARIANTS = (("pony", "pony"), ("illustrious", "illustrious"), ("noobai", "noobai"), ("noob", "noobai"))


def family(name: str | None) -> Family | None:
    return FAMILIES.get(name or "")


def spelling_prefix(key: str) -> tuple[str, str]:
    """(prefix kind, the key without it): ``lora_unet_…`` → ("kohya", "…")."""
    for prefix, kind in PREFIXES:
        if key.startswith(prefix):
            return kind, key[len(prefix):]
    return "bare", key


def variant_of(text: str | None) -> str | None:
    """The SDXL variant a claim names ("Pony", "Illustrious XL", "NoobAI-XL"), if any."""
    if not text or not isinstance(text, str):
        return None
    low = text.lower()
    return next((variant for word, variant in SDXL_VARIANTS if word in low), None)


def sdxl_variant(base_model: str | None, *claims: object) -> str | None:
    """Pony / Illustrious / NoobAI when a claim names one and the shapes say SDXL; else None."""
    if base_model != "sdxl":
        return None
    return next((v for text in claims if (v := variant_of(text if isinstance(text, str) else None))), None)


#: every name ``ls --base`` and the TUI's base filter accept: families, SDXL variants, unknown
VARIANTS = tuple(dict.fromkeys(v for _, v in SDXL_VARIANTS))
BASE_NAMES = (*FAMILIES, *VARIANTS, "unknown")


def base_filter(value: str) -> tuple[str, str]:
    """(column, value) for a base filter: a variant filters ``base_variant``, anything else ``base_model``."""
    return ("base_variant", value) if value in VARIANTS else ("base_model", value)


def base_words(query: str) -> tuple[str, str | None]:
    """A search's text without a word that names a family or variant, and that name (``flux ink`` → ink, flux)."""
    words = query.split()
    named = [w for w in words if w.lower() in BASE_NAMES and w.lower() != "unknown"]
    if len(named) != 1:
        return query, None
    rest = " ".join(w for w in words if w is not named[0])
    return rest, named[0].lower()

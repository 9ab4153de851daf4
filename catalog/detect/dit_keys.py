"""LoRA key names of the transformer (DiT) families: read any spelling, write the one a client loads.

A key is a writer prefix (:data:`catalog.detect.registry.PREFIXES`), the model's own
module name (dotted, or flattened with ``_`` by kohya-style writers) and a role
suffix. Modules are identified by their flattened name without the prefix, so
``lora_unet_double_blocks_0_img_attn_qkv`` and
``diffusion_model.double_blocks.0.img_attn.qkv`` are one module; which names a
module uses (a family's ``original`` checkpoint names, its ``diffusers`` names,
or XLabs' processor names) comes from the family's layouts. Writing dotted names
from flattened ones splits on ``_`` and re-joins the multi-word identifiers
listed in :data:`WORDS`, longest first. Pure Python: the catalog may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from catalog.detect.dit_layouts import LAYOUTS
from catalog.detect.dit_specs import parse_block
from catalog.detect.registry import TARGET_PREFIX, spelling_prefix

#: role suffixes, longest first (the role ends the key)
ROLES = (
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"), (".lora_linear_layer.down.weight", "down"),
    (".lora_linear_layer.up.weight", "up"), (".lora_down.weight", "down"), (".lora_up.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".down.weight", "down"), (".up.weight", "up"), (".alpha", "alpha"), (".dora_scale", "dora_scale"),
    (".lora_magnitude_vector.weight", "magnitude"), (".lora_magnitude_vector", "magnitude"), (".magnitude", "magnitude"),
    *((f".{r}", r) for r in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                             "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_w1", "lokr_w2", "lokr_t2",
                             "diff_b", "diff")),
)
#: identifiers with an underscore in the families' module names (flattened names are split on "_")
WORDS = (
    "double_blocks", "single_blocks", "img_attn", "txt_attn", "img_mlp", "txt_mlp", "img_mod", "txt_mod", "img_in",
    "txt_in", "time_in", "vector_in", "guidance_in", "final_layer", "transformer_blocks", "single_transformer_blocks",
    "joint_transformer_blocks", "to_q", "to_k", "to_v", "to_out", "to_add_out", "add_q_proj", "add_k_proj",
    "add_v_proj", "norm1_context", "ff_context", "proj_mlp", "proj_out", "norm_out", "x_embedder",
    "context_embedder", "time_text_embed", "distilled_guidance_layer", "in_layer", "out_layer", "in_proj",
    "out_proj", "joint_blocks", "x_block", "context_block", "adaLN_modulation", "self_attn", "cross_attn", "k_img",
    "v_img", "q_proj", "k_proj", "v_proj", "o_proj", "output_proj", "adaln_modulation_self_attn",
    "adaln_modulation_cross_attn", "adaln_modulation_mlp", "feed_forward", "noise_refiner", "context_refiner",
    "double_stream_blocks", "single_stream_blocks", "to_q_t", "to_k_t", "to_v_t", "to_out_t", "ff_i", "ff_t",
    "shared_experts", "text_fusion", "layerwise_blocks", "refiner_blocks", "to_gate", "linear_in", "linear_out",
    "to_qkv_mlp_proj", "conv_inverted", "conv_point", "linear_1", "linear_2", "linear_3", "token_refiner",
    "individual_token_refiner", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn",
    "audio_ff", "out_projection", "qkv_lora1", "qkv_lora2", "proj_lora1", "proj_lora2", "qkv_lora", "proj_lora",
    "txtfusion", "mode_blocks", "txt_mode_blocks", "image_cond", "gate_layer",
)
_VOCAB: dict[str, list[tuple[str, ...]]] = {}
for _word in sorted((tuple(w.split("_")) for w in WORDS), key=len, reverse=True):
    _VOCAB.setdefault(_word[0], []).append(_word)
#: (family, group, layer) -> the names each spelling of that family uses for it
_NAMES: dict[tuple[str, str, str], str] = {}
for _layout in LAYOUTS:
    for _group, (_count, _layers) in _layout.groups.items():
        for _layer in _layers:
            _NAMES.setdefault((_layout.family, _group, _layer), _layout.spelling)


@dataclass(frozen=True, slots=True)
class DitKey:
    prefix: str  # kohya | kohya-transformer | lycoris | comfyui | peft | diffusers | bare
    module: str  # the module name as written, without the prefix
    role: str  # down | up | alpha | dora_scale | magnitude | hada_* | lokr_* | diff | diff_b

    @property
    def flat(self) -> str:
        """The module's identity across spellings: ``_`` for ``.``, XLabs' ``.processor.`` dropped."""
        return self.module.replace(".processor.", ".").replace(".", "_")


@lru_cache(maxsize=1 << 16)
def parse_dit_key(key: str) -> DitKey | None:
    """Prefix, module and role of any LoRA key; None when no role suffix is recognised."""
    for suffix, role in ROLES:
        if key.endswith(suffix):
            prefix, module = spelling_prefix(key[: -len(suffix)])
            return DitKey(prefix, module, role) if module else None
    return None


@lru_cache(maxsize=1 << 16)
def names_of(flat: str, family: str) -> str:
    """``original``, ``diffusers`` or ``xlabs``: which names a module of ``family`` uses ("unknown" if none)."""
    parsed = parse_block(flat)
    if parsed is None:
        return "unknown"
    return _NAMES.get((family, parsed[0], parsed[2]), "unknown")


def dotted(flat: str) -> str | None:
    """``double_blocks_0_img_attn_qkv`` → ``double_blocks.0.img_attn.qkv``; None when a piece is unknown."""
    pieces, out, i = flat.split("_"), [], 0
    while i < len(pieces):
        for word in _VOCAB.get(pieces[i], ()):
            if tuple(pieces[i:i + len(word)]) == word:
                out.append("_".join(word))
                i += len(word)
                break
        else:
            if "_" in pieces[i] or not pieces[i]:
                return None
            out.append(pieces[i])
            i += 1
    return ".".join(out)


def render(key: DitKey, target: str) -> str | None:
    """The module name of ``key`` in ``target`` spelling (kohya, comfyui, diffusers, peft); None if unknown."""
    if target == "kohya":
        return TARGET_PREFIX[target] + key.flat
    name = key.module.replace(".processor.", ".") if "." in key.module else dotted(key.flat)
    return None if name is None else TARGET_PREFIX[target] + name

"""The one key-name mapper between kohya and diffusers/PEFT LoRA names (SD1, SD2, SDXL).

Every LoRA key names an adapted layer and a role (down, up, alpha, …). Writers
disagree on how to spell both: kohya flattens the module path with ``_`` and, for
SDXL, uses the original LDM block names (``input_blocks_4_1_…``); diffusers and
PEFT keep the dotted diffusers path under ``unet.``/``text_encoder.``. Mixing,
exporting, conversion and the trainers all go through :func:`parse_key` (any
spelling → :class:`KeyName`, whose ``path`` is always the dotted diffusers path)
and :func:`kohya_key` / :func:`diffusers_key` (back out), so a name is
translated in exactly one place. Pure Python: the catalog may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

UNET, TE1, TE2 = "unet", "te1", "te2"

# Identifiers that occur in module paths; a kohya name is split back into them,
# longest match first, so ``to_out_0`` becomes ``to_out.0`` and ``proj_in`` stays whole.
_UNET_WORDS = (
    "down_blocks", "up_blocks", "mid_block", "attentions", "resnets", "transformer_blocks",
    "attn1", "attn2", "to_q", "to_k", "to_v", "to_out", "ff", "net", "proj", "proj_in",
    "proj_out", "norm", "norm1", "norm2", "norm3", "conv1", "conv2", "conv_shortcut",
    "time_emb_proj", "downsamplers", "upsamplers", "conv", "conv_in", "conv_out",
    "conv_norm_out", "time_embedding", "linear_1", "linear_2", "add_embedding",
    # LDM spellings (kohya SDXL, A1111)
    "input_blocks", "middle_block", "output_blocks", "in_layers", "out_layers", "emb_layers",
    "skip_connection", "op", "time_embed", "label_emb", "out",
)
_TE_WORDS = (
    "text_model", "encoder", "layers", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj",
    "mlp", "fc1", "fc2", "embeddings", "token_embedding", "position_embedding",
    "final_layer_norm", "layer_norm1", "layer_norm2", "text_projection",
)
_LDM_ROOTS = {"input_blocks", "middle_block", "output_blocks", "time_embed", "label_emb", "out"}

KOHYA_ROLES = {"down": "lora_down.weight", "up": "lora_up.weight", "alpha": "alpha",
               "mid": "lora_mid.weight"}
_KOHYA_ROLE_OF = {v: k for k, v in KOHYA_ROLES.items()}
DIFFUSERS_ROLES = {"down": "lora_A.weight", "up": "lora_B.weight"}
_DIFFUSERS_SUFFIXES = (  # longest first: the role ends the key
    ("lora_linear_layer.down.weight", "down"), ("lora_linear_layer.up.weight", "up"),
    ("lora_A.default.weight", "down"), ("lora_B.default.weight", "up"),
    ("lora.down.weight", "down"), ("lora.up.weight", "up"),
    ("lora_A.weight", "down"), ("lora_B.weight", "up"), ("alpha", "alpha"),
)
_KOHYA_PREFIXES = (("lora_unet_", UNET), ("lora_te1_", TE1), ("lora_te2_", TE2), ("lora_te_", TE1))
_DIFFUSERS_PREFIXES = (("unet.", UNET), ("text_encoder_2.", TE2), ("text_encoder.", TE1),
                       ("diffusion_model.", UNET), ("base_model.model.", None), ("", None))


@dataclass(frozen=True, slots=True)
class KeyName:
    """One tensor key, understood: which model, which layer, which role, how it was spelt.

    ``part`` is ``unet``, ``te1`` or ``te2``; ``path`` the dotted diffusers path in that
    model (text encoders always with ``text_model.``); ``role`` ``down``/``up``/``alpha``/
    ``mid`` or the writer's own suffix (``hada_w1_a``, ``dora_scale``, …); ``style``
    ``kohya``, ``kohya-ldm`` or ``diffusers``.
    """

    part: str
    path: str
    role: str
    style: str

    @property
    def module(self) -> tuple[str, str]:
        return (self.part, self.path)


@dataclass(frozen=True, slots=True)
class UNetBlocks:
    """Which UNet levels hold attention: what placing an upsampler in LDM names needs."""

    down_attn: tuple[bool, ...]
    up_attn: tuple[bool, ...]


UNET_BLOCKS = {
    "sd1": UNetBlocks((True, True, True, False), (False, True, True, True)),
    "sd2": UNetBlocks((True, True, True, False), (False, True, True, True)),
    "sdxl": UNetBlocks((False, True, True), (True, True, False)),
}
#: families whose kohya files use LDM block names (as sd-scripts writes them)
LDM_FAMILIES = frozenset({"sdxl"})
#: families with two text encoders (kohya: lora_te1_/lora_te2_)
TWO_ENCODERS = frozenset({"sdxl"})


def _vocab(words: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Words split on ``_``, indexed by their first piece, longest first."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for word in sorted((tuple(w.split("_")) for w in words), key=len, reverse=True):
        index.setdefault(word[0], []).append(word)
    return index


_UNET_VOCAB, _TE_VOCAB = _vocab(_UNET_WORDS), _vocab(_TE_WORDS)


def _unflatten(text: str, vocab: dict[str, list[tuple[str, ...]]]) -> str | None:
    """``down_blocks_0_attentions_0_proj_in`` → ``down_blocks.0.attentions.0.proj_in``."""
    pieces, out, i = text.split("_"), [], 0
    while i < len(pieces):
        for word in vocab.get(pieces[i], ()):
            if len(word) == 1 or tuple(pieces[i:i + len(word)]) == word:
                out.append("_".join(word))
                i += len(word)
                break
        else:
            if not pieces[i].isdigit():
                return None
            out.append(pieces[i])
            i += 1
    return ".".join(out)


def _te_path(path: str) -> str:
    """Accept paths with and without ``text_model.`` (transformers 5 drops it for CLIPTextModel)."""
    if path.startswith(("text_model.", "text_projection")):
        return path
    return "text_model." + path


def _known(path: str, vocab: dict[str, list[tuple[str, ...]]]) -> bool:
    return all(p.isdigit() or tuple(p.split("_")) in vocab.get(p.split("_")[0], ()) for p in path.split("."))


@lru_cache(maxsize=1 << 16)
def parse_key(key: str) -> KeyName | None:
    """Read any SD UNet / CLIP text-encoder LoRA key; ``None`` for anything else (Flux, LLMs, …).

    Cached: blends and scans meet the same few thousand names over and over.
    """
    for prefix, part in _KOHYA_PREFIXES:
        if key.startswith(prefix):
            module, _, role = key[len(prefix):].partition(".")
            return _named(part, module, _KOHYA_ROLE_OF.get(role, role), flat=True)
    for suffix, role in _DIFFUSERS_SUFFIXES:
        # "_lora.up.weight": the attention-processor spelling, attn1.processor.to_q_lora.up.weight
        if key.endswith("." + suffix) or (suffix.startswith("lora.") and key.endswith("_" + suffix)):
            module = key[: -len(suffix) - 1]
            break
    else:
        module, _, role = key.rpartition(".")
        if not module:
            return None
    if ".processor." in module:
        module = module.replace(".processor.", ".")
        module += ".0" if module.endswith(".to_out") else ""
    for prefix, part in _DIFFUSERS_PREFIXES:
        if module.startswith(prefix):
            return _named(part, module[len(prefix):], role, flat=False)
    return None


def _named(part: str | None, module: str, role: str, *, flat: bool) -> KeyName | None:
    if part in (None, TE1, TE2):
        te = _unflatten(module, _TE_VOCAB) if flat else module
        bare_ok = part is not None or te is None or te.startswith(("text_model.", "encoder."))
        if te is not None and bare_ok and _known(te, _TE_VOCAB):
            return KeyName(part or TE1, _te_path(te), role, "kohya" if flat else "diffusers")
        if part is not None:
            return None
    unet = _unflatten(module, _UNET_VOCAB) if flat else module
    if unet is None or not _known(unet, _UNET_VOCAB):
        return None
    ldm = unet.split(".")[0] in _LDM_ROOTS
    path = ldm_to_diffusers(unet) if ldm else unet
    if path is None:
        return None
    return KeyName(UNET, path, role, ("kohya-ldm" if ldm else "kohya") if flat else "diffusers")


def kohya_module(part: str, path: str, *, family: str | None = None, ldm: bool | None = None) -> str:
    """The kohya module name: SD1/SD2 keep diffusers blocks, SDXL uses LDM blocks, as sd-scripts does."""
    if part == UNET:
        use_ldm = (family in LDM_FAMILIES) if ldm is None else ldm
        body = diffusers_to_ldm(path, family or "sdxl") if use_ldm else path
        return "lora_unet_" + body.replace(".", "_")
    if part == TE2:
        prefix = "lora_te2_"
    else:  # a lone text encoder is lora_te_ (SD1/SD2); SDXL numbers both
        prefix = "lora_te1_" if family in TWO_ENCODERS else "lora_te_"
    return prefix + _te_path(path).replace(".", "_")


def kohya_key(name: KeyName, *, family: str | None = None, ldm: bool | None = None) -> str:
    module = kohya_module(name.part, name.path, family=family, ldm=ldm)
    return f"{module}.{KOHYA_ROLES.get(name.role, name.role)}"


def diffusers_module(part: str, path: str) -> str:
    root = {UNET: "unet", TE1: "text_encoder", TE2: "text_encoder_2"}[part]
    return f"{root}.{_te_path(path) if part != UNET else path}"


def diffusers_key(name: KeyName) -> str:
    """``lora_A``/``lora_B`` spelling; an ``alpha`` role has no diffusers key (see convert)."""
    return f"{diffusers_module(name.part, name.path)}.{DIFFUSERS_ROLES.get(name.role, name.role)}"


# --- UNet block names: diffusers ↔ LDM (layers_per_block = 2 in SD1, SD2 and SDXL) ---------

_RESNET_TO_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                  "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_RESNET_FROM_LDM = {v: k for k, v in _RESNET_TO_LDM.items()}
_TOP_TO_LDM = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
               "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
               "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
_TOP_FROM_LDM = {v: k for k, v in _TOP_TO_LDM.items()}
_MID = {"resnets.0": "middle_block.0", "attentions.0": "middle_block.1", "resnets.1": "middle_block.2"}
_MID_FROM_LDM = {v: k for k, v in _MID.items()}


def _resnet_ldm(rest: list[str]) -> str:
    head = ".".join(rest[:1])
    return ".".join([_RESNET_TO_LDM.get(head, head), *rest[1:]])


def diffusers_to_ldm(path: str, family: str = "sdxl", *, layers_per_block: int = 2) -> str:
    """``down_blocks.1.attentions.0.proj_in`` → ``input_blocks.4.1.proj_in``.

    ``layers_per_block`` is 2 in every released SD model; smaller test UNets use 1.
    """
    n = layers_per_block + 1  # LDM blocks per level: the layers plus the down/up sampler
    for top, ldm in _TOP_TO_LDM.items():
        if path == top or path.startswith(top + "."):
            return ldm + path[len(top):]
    t = path.split(".")
    if t[0] == "mid_block":
        mid = _MID[".".join(t[1:3])]
        return f"{mid}.{_resnet_ldm(t[3:]) if t[1] == 'resnets' else '.'.join(t[3:])}".rstrip(".")
    i, kind, j, rest = int(t[1]), t[2], int(t[3]), t[4:]
    if t[0] == "down_blocks":
        if kind == "downsamplers":
            return ".".join([f"input_blocks.{n * i + n}.0.op", *rest[1:]])
        block = f"input_blocks.{1 + n * i + j}"
    else:
        if kind == "upsamplers":
            slot = 2 if UNET_BLOCKS[family].up_attn[i] else 1
            return ".".join([f"output_blocks.{n * i + n - 1}.{slot}", *rest])
        block = f"output_blocks.{n * i + j}"
    if kind == "resnets":
        return f"{block}.0.{_resnet_ldm(rest)}"
    return ".".join([f"{block}.1", *rest])


def ldm_to_diffusers(path: str) -> str | None:
    """Inverse of :func:`diffusers_to_ldm`; ``None`` for a path that is not an SD UNet layer."""
    for ldm, top in _TOP_FROM_LDM.items():
        if path == ldm or path.startswith(ldm + "."):
            return top + path[len(ldm):]
    t = path.split(".")
    if t[0] == "middle_block" and len(t) > 2:
        mid = _MID_FROM_LDM.get(".".join(t[:2]))
        if mid is None:
            return None
        return f"mid_block.{mid}.{_resnet_from_ldm(t[2:]) if mid.startswith('r') else '.'.join(t[2:])}"
    if len(t) < 3 or not t[1].isdigit() or not t[2].isdigit():
        return None
    n, slot, rest = int(t[1]), int(t[2]), t[3:]
    if t[0] == "input_blocks" and n > 0:
        i, j = divmod(n - 1, 3)
        if j == 2:
            return ".".join([f"down_blocks.{i}.downsamplers.0.conv", *rest[1:]]) if rest[:1] == ["op"] else None
        head = f"down_blocks.{i}"
    elif t[0] == "output_blocks":
        i, j = divmod(n, 3)
        head = f"up_blocks.{i}"
        if slot > 0 and rest[:1] == ["conv"]:
            return ".".join([f"{head}.upsamplers.0.conv", *rest[1:]])
    else:
        return None
    if slot == 0:
        return f"{head}.resnets.{j}.{_resnet_from_ldm(rest)}"
    return ".".join([f"{head}.attentions.{j}", *rest]) if slot == 1 else None


def _resnet_from_ldm(rest: list[str]) -> str:
    head = ".".join(rest[:2])
    if head in _RESNET_FROM_LDM:
        return ".".join([_RESNET_FROM_LDM[head], *rest[2:]])
    return ".".join([_RESNET_FROM_LDM.get(rest[0], rest[0]), *rest[1:]]) if rest else ""

"""Which base model a LoRA was trained on, proven from layer names and widths.

Names alone cannot tell the families apart (SDXL reuses SD1's block names,
Flux.2 and HunyuanVideo reuse Flux's), and header metadata is often missing or
wrong; the widths of a few telling layers can. Each clue below yields the set of
families it allows; the answer is their intersection, and anything but a single
family is reported as ``unknown`` with the reason, because a confident wrong
family makes a LoRA silently do nothing on the base it is used with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_

from catalog.detect.dit_specs import dit_findings
from catalog.detect.llm_arch import llm_arch
from catalog.detect.module_keys import LoraKeys

CROSS_WIDTH = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
ALL_TE1 = frozenset({"sd1", "sdxl", "flux", "sd3"})  # families whose (first) text encoder is CLIP-L
_UNET_WORDS = ("down_blocks", "up_blocks", "input_blocks", "output_blocks", "mid_block", "middle_block")
_UNET_BLOCKS = _UNET_WORDS[:4]
_LEVEL0 = ((0, "down_blocks", "attentions"), (3, "up_blocks", "attentions"), (1, "input_blocks", "1"),
           (2, "input_blocks", "1"), (9, "output_blocks", "1"), (10, "output_blocks", "1"),
           (11, "output_blocks", "1"))
#: attention at the 320-channel level, in kohya and dotted spelling: SD1/SD2 have it, SDXL does not
_LEVEL0_ATTENTION = tuple(f"{blocks}{sep}{n}{sep}{child}{sep}" for n, blocks, child in _LEVEL0 for sep in "_.")


@dataclass(frozen=True, slots=True)
class Finding:
    text: str  # the key pattern and width, in words
    families: frozenset[str]


@dataclass(slots=True)
class Verdict:
    family: str = "unknown"
    evidence: str | None = None
    warnings: list[str] = field(default_factory=list)
    arch: str | None = None  # causal-LM architecture of an ``llm`` adapter, when the layers say
    candidates: list[str] = field(default_factory=list)  # families the shapes allow when they allow several
    shape_evidence: str | None = None


def flat(name: str) -> str:
    """A module name with '.' as '_' and diffusers' LoRA container suffixes removed."""
    s = name.replace(".", "_").replace("_processor_", "_")
    for tail in ("_lora_linear_layer", "_lora"):
        if s.endswith(tail):
            return s[: -len(tail)]
    return s


def detect(keys: LoraKeys, *, kohya: bool, claims: Sequence[tuple[str, str, str]] = (),
           base_name: str | None = None, strict: bool = True) -> Verdict:
    """Decide the family from the modules of ``keys``: their names and widths.

    Denoiser layers decide; a text encoder only corroborates a transformer family
    (a Flux LoRA that also trains CLIP-L and T5 stays Flux). ``base_name`` is the
    base model an adapter config names (for an LLM's architecture); ``strict=False``
    is for full models, whose blocks hold layers no LoRA adapts.
    """
    roles = _roles(keys)
    cross, q_proj = [], []
    for i in compress(range(len(roles)), roles):  # only the modules that name a telling layer
        role = roles[i]
        if role.cross:
            cross.append(i)
        else:
            q_proj.append((role, i))
    findings = _unet_findings(keys, cross, roles)
    unet_seen = bool(findings)
    te = _te_finding(q_proj, keys, kohya)
    notes: list[str] = []
    arch = None
    llm = [(role.flat, i) for role, i in q_proj if role.llm]
    if llm and not unet_seen:
        modules = [(flat(m), i) for i, m in enumerate(keys.modules()) if not m.startswith(_TE_PREFIXES)]
        arch, words, notes = llm_arch(modules, keys.widths, base_name)
        q_proj_hits = [i for f, i in llm if "self_attn_q_proj" in f]
        if q_proj_hits:  # Llama-style names: the evidence reads as it always has
            hidden = sorted({w for i in q_proj_hits if (w := keys.in_width(i))})
            words = f"q_proj under model.layers (hidden {'/'.join(map(str, hidden))})"
        findings.append(Finding(words, frozenset({"llm"})))
    elif not unet_seen:
        modules = [(m, i) for i, m in enumerate(keys.modules()) if not m.startswith(_TE_PREFIXES)]
        dit = [Finding(text, fams) for text, fams in dit_findings(modules, keys.widths, strict=strict)]
        if dit and te is not None and dit[0].families and not dit[0].families & te.families:
            notes.append(f"the text encoders ({te.text}) do not fit "
                         f"{'/'.join(sorted(dit[0].families))}; the transformer blocks decide")
            te = None
        findings += dit
    if te is not None:
        findings.append(te)
    verdict = decide(findings, claims)
    verdict.warnings += notes
    verdict.arch = arch if verdict.family == "llm" else None
    return verdict


def _spellings(*leaves: str) -> tuple[str, ...]:
    """A layer's name endings in kohya, dotted and older diffusers spellings."""
    out = []
    for leaf in leaves:
        dotted = leaf.replace("_to_", ".to_").replace("attn_", "attn.").replace("attn2_", "attn2.")
        out += [leaf, dotted, dotted + ".lora", dotted + "_lora", dotted + ".lora_linear_layer",
                dotted.replace("attn2.", "attn2.processor.") + "_lora"]
    return tuple(dict.fromkeys(out))


_CROSS = _spellings("attn2_to_k", "attn2_to_v")
_Q_PROJ = _spellings("self_attn_q_proj") + ("SelfAttention_q", "SelfAttention.q")
#: fused attention inputs of causal LMs that have no q_proj (GPT-2, GPT-NeoX, Bloom/Falcon, Phi-3)
_LLM_ENDINGS = ("attn.c_attn", "attn_c_attn", "query_key_value", "self_attn.qkv_proj", "self_attn_qkv_proj")
_PROJ_IN = _spellings("proj_in")


def _ending_hits(keys: LoraKeys, endings: tuple[str, ...]) -> list[int]:
    """Numbers of the modules whose names end in one of ``endings`` (one C-level pass)."""
    full = tuple(e + s for e in endings for s in keys.suffixes)
    anchors = keys.anchors
    return list(compress(range(len(anchors)), map(str.endswith, anchors, repeat(full))))


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: lists of them are searched for None
class _Role:
    """What one module's name tells detection: a UNet cross-attention input, or a
    q_proj-like layer (text encoder, T5 or causal LM); modules that tell nothing get 0."""
    cross: bool
    flat: str  # the module name as :func:`flat` gives it
    unet: bool  # the name sits in a UNet block (cross-attention of a UNet, not of a transformer)
    te: str | None  # te / te1 / te2 / te3 (+ "-t5") for a text-encoder layer
    llm: bool  # a causal-LM decoder layer


#: (anchor suffixes, cut) -> anchor key -> its _Role or 0, for every file of a process: libraries
#: repeat the same module names in file after file even when no two tables are alike
_ROLES: dict[tuple, dict[str, _Role | int]] = {}
_ROLES_SIZE = 1 << 17


def _roles(keys: LoraKeys) -> list:
    """Each anchor's _Role (0 for most), looked up by name; only names not seen before are read."""
    memo_key = (keys.suffixes, keys.cuts if isinstance(keys.cuts, int) else -1)
    memo = _ROLES.get(memo_key)
    if memo is None or len(memo) >= _ROLES_SIZE:
        if len(_ROLES) >= 64:  # PEFT files name their adapter in the suffix: a few per library
            _ROLES.clear()
        memo = _ROLES[memo_key] = {}
    anchors = keys.anchors
    roles = list(map(memo.get, anchors))
    if None in roles:
        telling = tuple(e + s for e in _CROSS + _Q_PROJ + _LLM_ENDINGS for s in keys.suffixes)
        cross = tuple(e + s for e in _CROSS for s in keys.suffixes)
        for i in compress(range(len(roles)), map(is_, roles, repeat(None))):
            roles[i] = memo[anchors[i]] = _role(anchors[i], keys.module(i), telling, cross)
    return roles


def _role(anchor: str, module: str, telling: tuple[str, ...], cross: tuple[str, ...]) -> _Role | int:
    if not anchor.endswith(telling):
        return 0
    f = flat(module)
    if anchor.endswith(cross):
        return _Role(True, f, _is_unet(f), None, False)
    te = _te_part(f) + ("-t5" if "SelfAttention" in f else "") if _is_te(f) else None
    return _Role(False, f, False, te, _is_llm(f))


def decide(findings: list[Finding], claims: Sequence[tuple[str, str, str]] = ()) -> Verdict:
    """Intersect the clues; metadata may only pick among families the shapes allow."""
    v = Verdict()
    if not findings:
        v.warnings.append("base model unknown: no layer whose width identifies it "
                          "(cross-attention, text-encoder or transformer-block layers)")
    else:
        allowed = frozenset.intersection(*(f.families for f in findings))
        evidence = "; ".join(f.text for f in sorted(findings, key=lambda f: len(f.families))[:3])
        if len(allowed) == 1:
            v.family, v.evidence = next(iter(allowed)), evidence
        elif not allowed:
            v.warnings.append("base model unknown: the shapes disagree — " + "; ".join(
                f"{f.text} → {'/'.join(sorted(f.families)) or 'no known family'}" for f in findings))
        else:
            picked = {fam for _, _, fam in claims} & allowed
            if len(picked) == 1:
                v.family = picked.pop()
                key, text, _ = next(c for c in claims if c[2] == v.family)
                v.evidence = f"{evidence} (fits {'/'.join(sorted(allowed))}; {key}={text!r} picks {v.family})"
            else:
                v.candidates = sorted(allowed)
                v.shape_evidence = evidence
                v.warnings.append(f"base model unknown: the shapes fit {' or '.join(sorted(allowed))} "
                                  f"({evidence}) and nothing settles which")
    for key, text, fam in claims:
        if v.family != "unknown" and fam != v.family:
            v.warnings.append(f"metadata {key}={text!r} says {fam} but the tensor shapes say "
                              f"{v.family} ({v.evidence}); the shapes win")
    return v


def _unet_findings(keys: LoraKeys, hits: list[int], roles: list) -> list[Finding]:
    """Cross-attention width decides; structure speaks only for LoRAs without attn2.to_k/to_v."""
    if hits and not (roles[hits[0]].unet and roles[hits[-1]].unet):
        hits = []  # attn2 of a transformer model (Wan, PixArt), not of a UNet
    cross = {w for w in keys.in_widths(hits) if w}
    if len(cross) > 1:
        return [Finding(f"attn2.to_k/to_v input widths {sorted(cross)} disagree", frozenset())]
    if cross:
        width = cross.pop()
        fam = CROSS_WIDTH.get(width)
        text = f"attn2.to_k input {width} (UNet cross-attention)"
        return [Finding(text if fam else f"{text}, which no SD1/SD2/SDXL UNet has", frozenset({fam} if fam else ()))]
    blob = "\n".join(keys.anchors)
    if not any(word in blob for word in _UNET_WORDS):
        return []
    out = []
    if "transformer_blocks_1" in blob or "transformer_blocks.1" in blob:
        out.append(Finding("UNet attention with transformer_blocks.1 (SDXL depth)", frozenset({"sdxl"})))
    if any(mark in blob for mark in _LEVEL0_ATTENTION):
        out.append(Finding("attention at the 320-channel level (SD1/SD2 layout)", frozenset({"sd1", "sd2"})))
    dims = {w[2] for i in _ending_hits(keys, _PROJ_IN) if (w := keys.widths(i)) and w[2]}
    if dims == {4}:
        out.append(Finding("proj_in is a 1x1 conv (SD1)", frozenset({"sd1"})))
    elif dims == {2}:
        out.append(Finding("proj_in is linear (SD2/SDXL)", frozenset({"sd2", "sdxl"})))
    if not out:
        out.append(Finding("UNet layers without attn2, proj_in or depth clues", frozenset({"sd1", "sd2", "sdxl"})))
    return out


def _te_finding(q_proj: list[tuple[_Role, int]], keys: LoraKeys, kohya: bool) -> Finding | None:
    by_part: dict[str, set[int]] = {}
    te = [(role.te, i) for role, i in q_proj if role.te]
    for (part, _), w in zip(te, keys.in_widths([i for _, i in te])):
        if w:
            by_part.setdefault(part, set()).add(w)
    if not by_part:
        return None
    for part, ws in by_part.items():
        if len(ws) > 1:
            return Finding(f"text encoder {part} q_proj widths {sorted(ws)} disagree", frozenset())
    w = {part: next(iter(ws)) for part, ws in by_part.items()}
    if "te" in w and "te2" in w:
        w["te1"] = w.pop("te")
    te1, te2, te = w.get("te1"), w.get("te2"), w.get("te")
    clip_ok = te1 in (None, 768) and te2 in (None, 1280)
    words = "text encoder " + " + ".join(f"{p.removesuffix('-t5')} {x}" for p, x in sorted(w.items()))
    if any(p.startswith("te3") for p in w) and clip_ok:
        if te2 == 1280:
            return Finding(f"{words}: CLIP-L, bigG and T5 (SD3)", frozenset({"sd3"}))
        return Finding(f"{words}: a third encoder without bigG (SD3 or Flux numbering)", frozenset({"sd3", "flux"}))
    if w.get("te2-t5") and te1 in (None, 768) and len(w) <= 2:
        return Finding(f"{words}: CLIP-L and T5 (Flux)", frozenset({"flux"}))
    if set(w) == {"te1", "te2"} and te1 == 768 and te2 == 1280:
        # SD3 has this pair too, but its LoRAs carry the MMDiT or T5 beside them
        return Finding(f"{words}: CLIP-L and bigG (SDXL)", frozenset({"sdxl"}))
    if set(w) == {"te2"} and te2 == 1280:
        return Finding(f"{words}: bigG alone", frozenset({"sdxl", "sd3"}))
    if set(w) in ({"te"}, {"te1"}) and (te or te1) == 1024:
        return Finding(f"{words}: OpenCLIP-H (SD2)", frozenset({"sd2"}))
    if set(w) == {"te"} and te == 768 and kohya:
        return Finding(f"{words}: CLIP-L alone under lora_te_ (SD1)", frozenset({"sd1"}))
    if set(w) in ({"te"}, {"te1"}) and (te or te1) == 768:
        return Finding(f"{words}: CLIP-L, which SD1, SDXL, Flux and SD3 share", ALL_TE1)
    return Finding(f"{words}, which no known family has", frozenset())


def _is_unet(f: str) -> bool:
    return "mid_block" in f or "middle_block" in f or ("blocks_" in f and any(b in f for b in _UNET_BLOCKS))


_TE_PREFIXES = ("lora_te", "text_encoder", "cond_stage_model", "conditioner")


def _is_llm(f: str) -> bool:
    """A causal-LM decoder layer (``model.layers.N.self_attn…``, ``transformer.h.N.attn.c_attn``, …)."""
    if _is_te(f):
        return False
    if ("layers_" in f and ("self_attn_q_proj" in f or "self_attn_qkv_proj" in f or "query_key_value" in f
                            or "self_attn_o_proj" in f or "mlp_gate_proj" in f or "mlp_down_proj" in f)):
        return True
    return "h_" in f and ("attn_c_attn" in f or "query_key_value" in f or "mlp_c_fc" in f or "attn_c_proj" in f
                          or "mlp_dense_h_to_4h" in f or "self_attention_dense" in f)


def _is_te(f: str) -> bool:
    """A text-encoder layer; CLIP as transformers 5 names it has no ``text_model.`` but ``encoder.layers``."""
    return f.startswith(("lora_te", "text_encoder", "encoder_layers_")) or "text_model_" in f


def _te_part(f: str) -> str:
    if f.startswith("lora_te"):
        return {"_": "te", "1": "te1", "2": "te2", "3": "te3"}.get(f[7:8], "te")
    if f.startswith("text_encoder_") and f[13:14].isdigit():
        return "te" + f[13:14]
    return "te"

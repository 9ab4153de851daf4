"""What a safetensors file is, read from its header alone: format, rank, alpha, base model.

This runs for every file of a scan (10,000 headers, half of them SDXL LoRAs with
~3,000 keys, in a few seconds), so it never runs a regex over every key: a few
keys pick the key layout (``lora_keys``), the modules come out as one strided
slice, and the base-model clues (``families``) are found with a single C-level
``endswith`` pass plus lookups beside known keys.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter, le
from typing import Any

from catalog.detect.alphas import alpha_from_config, alpha_from_metadata, alpha_from_tensors
from catalog.detect.families import Finding, Verdict, decide, detect
from catalog.files.header import Header, read_scalars
from catalog.detect.metadata_claims import base_model_claims, header_fields
from catalog.detect.module_keys import KeyIndex, LoraKeys, checkpoint_layout, find_layout
from catalog.detect.model_kinds import ip_adapter_finding, model_kind, vae_finding
from catalog.detect.registry import sdxl_variant

SD_UNETS = frozenset({"sd1", "sd2", "sdxl"})
_EMBEDDING_KEYS = frozenset({"emb_params", "clip_l", "clip_g"})


@dataclass(slots=True)
class Classification:
    format: str = "unknown"  # kohya | diffusers | peft | lycoris | checkpoint | embedding | unknown
    network: str | None = None  # lora | locon | loha | lokr | ia3 | other
    rank: int | None = None
    alpha: float | None = None
    alpha_source: str | None = None
    base_model: str = "unknown"
    base_model_name: str | None = None
    evidence: str | None = None
    dtype: str | None = None
    tensor_count: int = 0
    parts: list[str] = field(default_factory=list)
    has_conv: bool = False
    conv_rank: int | None = None  # LoCon's 3x3 convs often train at their own rank and alpha
    conv_alpha: float | None = None
    warnings: list[str] = field(default_factory=list)
    header_fields: dict[str, Any] = field(default_factory=dict)
    header_sources: dict[str, str] = field(default_factory=dict)
    arch: str | None = None  # llm adapters: llama, qwen2, gpt2, … when the layers (and config) say
    model_kind: str | None = None  # full models: checkpoint | unet | transformer | vae | text-encoder | …
    base_variant: str | None = None  # sdxl fine-tune line (pony, illustrious, noobai) a claim names
    base_candidates: list[str] = field(default_factory=list)  # what the shapes allow when base_model is unknown


def classify(header: Header, adapter_config: dict | None = None) -> Classification:
    """Everything the header says about the file; never raises for odd contents.

    A header this code misreads must not stop a scan of 20,000 files: it is listed
    as ``unknown`` with the reason, like any file that is not a LoRA.
    """
    try:
        return _classify(header, adapter_config)
    except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        c = Classification(tensor_count=len(header.tensors))
        c.warnings.append(f"header not understood ({type(exc).__name__}: {exc}); listed as unknown")
        return c


def _classify(header: Header, adapter_config: dict | None) -> Classification:
    names, dtypes, shapes = _columns(header.tensors)
    meta = header.metadata or {}
    c = Classification(tensor_count=len(names))
    if dtypes:  # counted on an even sample of ~512: a file's dtype mix never hinges on a few keys
        if dtypes.count(dtypes[0]) == len(dtypes):  # one dtype throughout, as most files are
            c.dtype = dtypes[0]
        else:
            step = max(1, len(dtypes) // 512)
            c.dtype = Counter(dtypes[::step]).most_common(1)[0][0]
    c.header_fields, c.header_sources = header_fields(meta)
    claims = base_model_claims(meta)
    if adapter_config:
        c.base_model_name = _text(adapter_config.get("base_model_name_or_path"))
    c.base_model_name = c.base_model_name or _text(meta.get("ss_sd_model_name"))
    index, keys = _layout(header, names, shapes, dtypes, adapter_config)
    if keys is None:
        _not_a_lora(c, index, claims)
        return c
    c.format, c.network = keys.format, keys.network
    c.has_conv, c.warnings = keys.has_conv, list(keys.warnings)
    c.rank, c.conv_rank = _ranks(keys, c.warnings)
    _apply(c, _detect(header.tensors, keys, claims, c.base_model_name if adapter_config else None))
    c.parts = _parts(keys.anchors, c.base_model)
    c.base_variant = sdxl_variant(c.base_model, meta.get("modelspec.architecture"),
                                  meta.get("ss_base_model_version"), meta.get("ss_sd_model_name"))
    if adapter_config is not None:
        c.alpha, c.alpha_source = alpha_from_config(adapter_config, c.rank, c.warnings)
        return c
    found = alpha_from_tensors(header, keys, read_scalars, c.rank, meta, c.warnings)
    if found is not None:
        c.alpha, c.alpha_source, c.conv_alpha = found
        return c
    found = alpha_from_metadata(meta, c.warnings) if keys.format in ("diffusers", "peft") else None
    c.alpha, c.alpha_source = found or (None, "missing: loaders assume alpha = rank")
    return c


#: shape findings per tensor table: a scan's header cache hands the same table
#: object to every file of one trainer, so the key analysis is done once for them
_MEMO: dict[tuple, tuple[Any, Any]] = {}
_MEMO_SIZE = 256


def _remember(key: tuple, table: Any, value: Any) -> Any:
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()
    _MEMO[key] = (table, value)  # the table is kept so its id() cannot be reused
    return value


def forget() -> None:
    """Drop the memo (a long-lived process calls this after each scan)."""
    _MEMO.clear()


def _recall(key: tuple, table: Any) -> Any:
    hit = _MEMO.get(key)
    return hit[1] if hit is not None and hit[0] is table else None


def _layout(header: Header, names, shapes, dtypes, adapter_config: dict | None):
    """KeyIndex and key layout of the header, memoised per table (not for PEFT configs)."""
    key = ("layout", id(header.tensors))
    if adapter_config is None and (hit := _recall(key, header.tensors)) is not None:
        return hit
    index = KeyIndex(names, shapes, dtypes, getattr(header.tensors, "position", None))
    found = (index, find_layout(index, adapter_config))
    return _remember(key, header.tensors, found) if adapter_config is None else found


def _detect(table: Any, keys: LoraKeys, claims: Any, base_name: str | None) -> Verdict:
    key = ("family", id(table), repr(claims), base_name)
    if (hit := _recall(key, table)) is not None:
        return hit
    verdict = detect(keys, kohya=keys.format in ("kohya", "lycoris"), claims=claims, base_name=base_name)
    return _remember(key, table, verdict)


def _columns(tensors: Any) -> tuple[Sequence[str], Sequence[str], Sequence[tuple[int, ...]]]:
    """Parallel name/dtype/shape lists; the header's TensorTable already holds them."""
    if hasattr(tensors, "names") and hasattr(tensors, "shapes"):
        return tensors.names, tensors.dtypes, tensors.shapes
    names = list(tensors)
    infos = [tensors[n] for n in names]
    return names, [t.dtype for t in infos], [tuple(t.shape) for t in infos]


def _ranks(keys: LoraKeys, warnings: list[str]) -> tuple[int | None, int | None]:
    """Most common rank of the linear layers, and of the 3x3 convs when they differ."""
    ranks = keys.ranks
    linear = Counter({ranks[0]: len(ranks)}) if ranks and ranks.count(ranks[0]) == len(ranks) else Counter(ranks)
    convs = Counter(keys.conv_ranks)
    rank = (linear or convs).most_common(1)[0][0] if (linear or convs) else None
    conv_rank = convs.most_common(1)[0][0] if convs else None
    if len(linear) > 1:
        low, high = min(linear), max(linear)
        warnings.append(f"rank varies per module: {low}-{high} (most common {rank}, in "
                        f"{linear[rank]} of {sum(linear.values())} modules)")
    return rank, conv_rank


def _apply(c: Classification, verdict: Verdict) -> None:
    c.base_model, c.evidence = verdict.family, verdict.evidence
    c.warnings += verdict.warnings
    c.arch = verdict.arch
    c.base_candidates = list(verdict.candidates)  # so a sidecar's claim can still pick (catalog.index.rows)


def _parts(anchors: Sequence[str], family: str) -> list[str]:
    """unet / te / te1 / te2 / te3 / transformer / llm, from the modules' leading names."""
    # sorted, as writers store them: each prefix is one bisectable run
    if all(map(le, anchors, islice(anchors, 1, None))):
        raw, covered = set(), 0
        for prefix, part in _PREFIXES:
            count = bisect_left(anchors, prefix + "\U0010ffff") - bisect_left(anchors, prefix)
            if count:
                raw.add(part)
                covered += count
        if covered < len(anchors):
            raw.add("denoiser")
    else:
        raw = {_part(head) for head in set(map(_HEAD, anchors))}
    out = set()
    for part in raw:
        if family == "llm" and not part.startswith("te"):
            part = "llm"
        elif part in ("denoiser", "base"):
            part = "unet" if family in SD_UNETS else "transformer"
        elif part == "unet" and family not in SD_UNETS and family != "unknown":
            part = "transformer"
        out.add(part)
    if "te" in out and "te2" in out:
        out.discard("te")
        out.add("te1")
    return sorted(out)


#: leading names of each component; anything else is the denoiser under its own names
_PREFIXES = (
    ("lora_unet_", "unet"), ("lora_te_", "te"), ("lora_te1_", "te1"), ("lora_te2_", "te2"),
    ("lora_te3_", "te3"), ("lora_transformer_", "transformer"), ("lycoris_", "unet"), ("unet.", "unet"),
    ("text_encoder.", "te"), ("text_encoder_2.", "te2"), ("text_encoder_3.", "te3"),
    ("transformer.", "transformer"), ("diffusion_model.", "unet"), ("model.diffusion_model.", "unet"),
    ("base_model.model.", "base"), ("cond_stage_model.", "te"), ("conditioner.", "te"),
)
_HEAD = itemgetter(slice(0, 22))  # long enough for every prefix above


def _part(head: str) -> str:
    return next((part for prefix, part in _PREFIXES if head.startswith(prefix)), "denoiser")


def _not_a_lora(c: Classification, index: KeyIndex, claims: list) -> None:
    """Embeddings, full models and the rest: listed and named, never treated as LoRAs."""
    names, shapes = index.names, index.shapes
    finding = _embedding(names, shapes)
    if finding is not None:
        c.format = "embedding"
        _apply(c, decide([finding], claims))
        return
    kind = model_kind(names)
    # names that only hint (a top-level "blocks" or "layers") still need the size of a real model
    keys = checkpoint_layout(index, known=kind in ("vae", "controlnet", "ip-adapter", "checkpoint"))
    if keys is None:
        sample = ", ".join(repr(n) for n in names[:3]) or "none"
        c.warnings.append(f"no LoRA tensor pairs (lora_down/lora_up, lora_A/lora_B, LyCORIS) found; keys: {sample}")
        return
    c.format, c.model_kind = "checkpoint", kind or "checkpoint"
    what = "a full model" if c.model_kind == "checkpoint" else f"a full model ({c.model_kind})"
    c.warnings.append(f"{what}, not a LoRA ({len(names)} tensors, e.g. {names[0]!r}); "
                      "keep base models outside the LoRA library")
    special = vae_finding(names, shapes) if kind == "vae" else \
        ip_adapter_finding(names, shapes) if kind == "ip-adapter" else None
    if special is not None:
        _apply(c, decide([special], claims))
    else:
        _apply(c, detect(keys, kohya=False, claims=claims, strict=False))
        c.parts = _parts(keys.anchors, c.base_model)
    c.arch = None


#: token embeddings are as wide as the text encoder they extend
_EMBEDDING_WIDTHS = {768: "sd1", 1024: "sd2"}
_TOKEN_WIDTHS = frozenset({768, 1024, 1280, 2048, 4096})


def _embedding(names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> Finding | None:
    """Textual inversion in A1111 (``emb_params``/``string_to_param``), SDXL (``clip_l``+``clip_g``)
    or diffusers (``{"<token>": vectors}``) layout, placed by its width; None for anything else."""
    if not names or len(names) > 8:
        return None
    emb = {n: s for n, s in zip(names, shapes) if n in _EMBEDDING_KEYS or n.startswith("string_to_param")}
    if not emb:  # diffusers: every tensor one vector or a few, as wide as a text encoder
        if not all(1 <= len(s) <= 2 and s[-1] in _TOKEN_WIDTHS and "." not in n for n, s in zip(names, shapes)):
            return None
        emb = dict(zip(names, shapes))
        layout = f"diffusers textual inversion {names[0]!r}"
    else:
        layout = "textual inversion"
    widths = {key: s[-1] for key, s in emb.items() if s}
    if widths.get("clip_l") == 768 and widths.get("clip_g") == 1280:
        return Finding(f"{layout} clip_l 768 + clip_g 1280", frozenset({"sdxl"}))
    width = next(iter(widths.values()), 0)
    fam = _EMBEDDING_WIDTHS.get(width) if "clip_l" not in widths else None
    return Finding(f"{layout} vectors {width} wide", frozenset({fam} if fam else ()))


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None

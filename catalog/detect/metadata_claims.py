"""Card-like fields that trainers leave in a safetensors header's ``__metadata__``.

Two vocabularies exist: the modelspec standard (``modelspec.title``,
``modelspec.trigger_phrase``, …) and kohya sd-scripts' ``ss_*`` training record.
modelspec wins where both speak, as it is written for people rather than for
reproducing a run. Every value here is a claim by whoever wrote the file: the
base model in particular is only compared with what the tensor shapes prove.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import ge
from typing import Any

import orjson

from catalog.detect.registry import FAMILIES

MODELSPEC = "modelspec"
KOHYA = "kohya ss_*"
TOP_TAGS = 10

#: ss_* keys worth showing as the training summary (name shown without ss_)
TRAINING_KEYS = (
    "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
    "ss_base_model_version", "ss_sd_model_name", "ss_resolution", "ss_num_train_images",
    "ss_num_epochs", "ss_epoch", "ss_steps", "ss_max_train_steps", "ss_batch_size_per_device",
    "ss_gradient_accumulation_steps", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr",
    "ss_optimizer", "ss_lr_scheduler", "ss_lr_warmup_steps", "ss_mixed_precision",
    "ss_clip_skip", "ss_noise_offset", "ss_min_snr_gamma", "ss_seed", "ss_caption_dropout_rate",
    "ss_training_started_at", "ss_training_finished_at", "ss_training_comment",
)

#: substrings of a claim (lower-cased) and the family they name; first match wins: the SD
#: spellings first (they contain digits the others share), then each registry family's words,
#: then the free-text spellings of sidecars (A1111 "sd version", Civitai "baseModel"), most generic last
_CLAIM_WORDS = (
    ("stable-diffusion-xl", "sdxl"), ("sdxl", "sdxl"), ("sd_xl", "sdxl"), ("animagine", "sdxl"),
    ("stable-diffusion-v3", "sd3"), ("stable-diffusion-3", "sd3"), ("sd3", "sd3"),
    ("stable-diffusion-v2", "sd2"), ("sd_v2", "sd2"), ("v2-1", "sd2"), ("v2-0", "sd2"),
    ("stable-diffusion-v1", "sd1"), ("sd_v1", "sd1"), ("v1-5", "sd1"), ("sd15", "sd1"),
    ("pony", "sdxl"), ("illustrious", "sdxl"), ("noobai", "sdxl"),
    *sorted(((word, fam.name) for fam in FAMILIES.values() if fam.name not in ("sd1", "sd2", "sdxl")
             for word in fam.claims if word != "sd 3"), key=lambda pair: -len(pair[0])),
    ("sd 3", "sd3"), ("sd 2", "sd2"), ("sd2", "sd2"), ("2.1", "sd2"),
    ("sd 1", "sd1"), ("sd1", "sd1"), ("1.5", "sd1"), ("xl", "sdxl"),
)


def claim_family(text: str | None) -> str | None:
    """The family a claim names: header metadata (``stable-diffusion-xl-v1-base``) or a
    sidecar's free text ("SD 1.5", "SDXL 1.0"); None when it is not clear."""
    if not text or not isinstance(text, str):
        return None
    low = text.lower()
    for word, family in _CLAIM_WORDS:
        if word in low:
            return family
    return None


def base_model_claims(meta: dict[str, str]) -> list[tuple[str, str, str]]:
    """(metadata key, its text, family) for each header value that names a base model."""
    claims = []
    for key in ("modelspec.architecture", "ss_base_model_version", "ss_sd_model_name"):
        family = claim_family(meta.get(key))
        if family:
            claims.append((key, meta[key], family))
    if meta.get("ss_v2", "").lower() == "true" and not claims:
        claims.append(("ss_v2", meta["ss_v2"], "sd2"))
    return claims


def header_fields(meta: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The card fields a header states, and which vocabulary stated each."""
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if not meta:
        return fields, sources

    def put(name: str, value: Any, source: str) -> None:
        if value not in (None, "", [], {}) and name not in fields:
            fields[name] = value
            sources[name] = source

    put("title", _text(meta.get("modelspec.title")), MODELSPEC)
    put("title", _text(meta.get("ss_output_name")), KOHYA)
    put("description", _text(meta.get("modelspec.description")), MODELSPEC)
    put("trigger_words", _split(meta.get("modelspec.trigger_phrase")), MODELSPEC)
    put("tags", _split(meta.get("modelspec.tags")), MODELSPEC)
    put("tags", top_tags(meta.get("ss_tag_frequency")), KOHYA)
    put("base_model_claim", _text(meta.get("modelspec.architecture")), MODELSPEC)
    put("base_model_claim", _text(meta.get("ss_base_model_version")), KOHYA)
    put("resolution", _text(meta.get("modelspec.resolution")), MODELSPEC)
    put("resolution", _kohya_resolution(meta.get("ss_resolution")), KOHYA)
    put("license", _text(meta.get("modelspec.license")), MODELSPEC)
    training = {key[3:]: _value(meta[key]) for key in TRAINING_KEYS if _text(meta.get(key))}
    put("training", training, KOHYA)
    return fields, sources


def top_tags(raw: str | None, limit: int = TOP_TAGS) -> list[str]:
    """Most frequent caption tags over all datasets of ``ss_tag_frequency``.

    Ranked by count, then by tag. Tag tables run to thousands of entries, so the
    usual shape (one dataset, tags already trimmed, plain numbers) is taken as it
    is and only the tags that can reach the top are sorted.
    """
    if not raw:
        return []
    try:
        per_dataset = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(per_dataset, dict):
        return []
    tables = [tags for tags in per_dataset.values() if isinstance(tags, dict)]
    if len(tables) == 1 and _plain(tables[0]):
        counts = tables[0]
    else:
        counts = {}
        for tags in tables:
            for tag, count in tags.items():
                tag = tag.strip()
                if tag and isinstance(count, int | float):
                    counts[tag] = counts.get(tag, 0) + count
    if 0 < limit < len(counts):  # the limit-th largest count bounds every tag that makes the cut
        floor = sorted(counts.values(), reverse=True)[limit - 1]
        ranked = sorted(compress(counts.items(), map(ge, counts.values(), repeat(floor))), key=_by_count)
    else:
        ranked = sorted(counts.items(), key=_by_count)
    return [tag for tag, _ in ranked[:limit]]


def _by_count(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]


_NUMBERS = frozenset({int, float})


def _plain(tags: dict) -> bool:
    """Every tag trimmed and non-empty and every count a plain number: the table counts as it is."""
    names = list(tags)
    return set(map(type, tags.values())) <= _NUMBERS and "" not in tags and list(map(str.strip, names)) == names


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return None if value in ("", "None", "null") else value


def _split(value: str | None) -> list[str]:
    text = _text(value)
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _kohya_resolution(value: str | None) -> str | None:
    """kohya writes "(512, 512)"; cards say "512x512"."""
    text = _text(value)
    if not text:
        return None
    numbers = [part.strip() for part in text.strip("()[] ").split(",")]
    return "x".join(numbers) if all(n.isdigit() for n in numbers) else text


def _value(text: str) -> Any:
    """A training value as its JSON type when it is one ("1e-4" -> 0.0001), else text."""
    text = text.strip()
    if text[:1] in "{[" or text in ("true", "false"):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number

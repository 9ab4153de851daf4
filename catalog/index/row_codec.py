"""Compact stored forms of the columns that repeat what a row already holds.

At a million entries the index must stay under a gigabyte, and three JSON
columns were a third of every row while saying little of their own:

- ``sources`` ends with the header-fact labels (``format``, ``base_model``,
  ``rank``, ``alpha``), which follow from the row's own facts: only the card
  part is stored, the rest is derived again on reading, and a card field
  whose source is the header's own label for it is only named;
- ``header_fields`` mostly repeats card fields the header won (title, tags,
  training), and ``header_sources`` gives each of them the same label
  ("kohya ss_*"): they are stored as one list, naming a field instead of
  repeating a value the row holds, and one label for all when they share it.

Both forms are checked when written: a row whose values would not come back
exactly is stored in full, so reading yields the same dicts either way.

The columns that only ``show`` and a card re-merge read (:data:`DEFLATED_COLUMNS`:
never filtered, sorted or searched in SQL) are then stored deflated, as a BLOB.
Each value is compressed on its own, so nothing rests on rows repeating each
other; what makes a 130-byte training record 30 bytes is a preset dictionary
(:data:`DICTIONARY`) of the words lutnav itself writes there: sd-scripts' key
names, the source labels, the phrases of the shape evidence. A value that
would not shrink stays text, and text reads back as before, so an index holds
both forms at once.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import orjson

#: the ``sources`` keys taken from the header's facts, in the order they are added
FACT_KEYS = ("format", "base_model", "rank", "alpha")


def fact_sources(row: dict) -> dict[str, str]:
    """Where the header facts of ``row`` came from (tensor keys, tensor shapes, …)."""
    out = {}
    if row.get("format") and row["format"] != "pickle" and not row.get("error"):
        out["format"] = "tensor keys"
        out["base_model"] = f"tensor shapes: {row.get('evidence') or 'no evidence'}"
        if row.get("base_candidates") and row.get("base_model") != "unknown":
            out["base_model"] += (f" (fit {'/'.join(row['base_candidates'])}; the card's base model "
                                  f"{row.get('base_model_claim')!r} picks {row['base_model']})")
        if row.get("rank") is not None:
            out["rank"] = "tensor shapes"
        out["alpha"] = row.get("alpha_source") or "unknown"
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as stored JSON (``32`` and ``32.0`` are not)."""
    return orjson.dumps(a) == orjson.dumps(b)


def pack(row: dict) -> None:
    """Turn ``sources`` / ``header_fields`` / ``header_sources`` of a finished (bounded,
    not yet JSON-encoded) row into their compact forms, in place."""
    fields, labels = row.get("header_fields"), row.get("header_sources")
    header_labels = labels if isinstance(labels, dict) else {}
    sources = row.get("sources")
    if isinstance(sources, dict):
        facts = fact_sources(row)
        cards = {k: v for k, v in sources.items() if k not in facts}
        if list({**cards, **facts}.items()) == list(sources.items()):
            # a list marks the compact form (a dict is stored in full); a field whose
            # source is the header's own label for it is named alone
            row["sources"] = [[k if header_labels.get(k) == v else [k, v] for k, v in cards.items()]]
    if isinstance(fields, dict) and isinstance(labels, dict):
        items: list = [k if k in row and k not in _OWN and _same(v, row[k]) else [k, v]
                       for k, v in fields.items()]
        shared = set(labels.values())
        label: Any = labels
        if len(shared) == 1 and list(labels) == list(fields):
            label = shared.pop()
        row["header_fields"], row["header_sources"] = ([items, label] if fields else None), None

#: row columns that are never card fields: a header field of that name is always stored
_OWN = frozenset({"header_fields", "header_sources", "sources", "path"})


def unpack(row: dict) -> None:
    """The full forms back, in place, on a row whose JSON columns are parsed."""
    fields = row.get("header_fields")
    if isinstance(fields, list):
        items, label = fields
        full = {}
        for item in items:
            if isinstance(item, str):
                full[item] = row.get(item)
            else:
                full[item[0]] = item[1]
        row["header_fields"] = full
        row["header_sources"] = {k: label for k in full} if isinstance(label, str) else label
    elif fields is None and "header_fields" in row and row.get("header_sources") is None:
        row["header_fields"], row["header_sources"] = {}, {}
    sources = row.get("sources")
    if isinstance(sources, list):
        labels = row.get("header_sources") or {}
        cards = {}
        for item in sources[0]:
            if isinstance(item, str):
                cards[item] = labels[item]
            else:
                cards[item[0]] = item[1]
        row["sources"] = {**cards, **fact_sources(row)}


#: columns stored deflated: read back only through ``decode`` (``show``, a card re-merge, a
#: browser's row) or a listing's JSON decoding, never named in a ``where``, an ``order by``
#: or the full-text index
DEFLATED_COLUMNS = ("training", "header_fields", "sources", "evidence", "warnings", "parts",
                    "alpha_source", "base_model_claim")

#: The preset dictionary of version 1: words the index writes into those columns again
#: and again, the most common last (deflate reaches the end of a dictionary cheapest).
#: A stored value names its dictionary in its first byte, so this text never changes:
#: a better one is added as version 2, and version 1 stays readable.
DICTIONARY = "".join((
    # sd-scripts training records (``training``), as ``metadata_claims`` names their keys
    '"training_comment":"training_started_at":"training_finished_at":"caption_dropout_rate":',
    '"min_snr_gamma":"noise_offset":"clip_skip":"mixed_precision":"fp16""bf16""no"',
    '"lr_warmup_steps":"lr_scheduler":"cosine_with_restarts""cosine""constant""linear"',
    '"optimizer":"bitsandbytes.optim.adamw.AdamW8bit""AdamW8bit""AdamW""Prodigy""Adafactor"',
    '"text_encoder_lr":"unet_lr":"gradient_accumulation_steps":"batch_size_per_device":',
    '"max_train_steps":"steps":"epoch":"sd_model_name":"network_args":{"conv_dim":"conv_alpha":',
    '"algo":"locon""lokr""loha""dropout":"network_module":"lycoris.kohya""networks.lora"',
    '"base_model_version":"sd_v1""sd_v2""sdxl_base_v1-0""flux1""sd3","resolution":"(512, 512)"',
    '"(768, 768)""(1024, 1024)","network_dim":"network_alpha":"num_train_images":"num_epochs":',
    '"learning_rate":0.0001,"learning_rate":0.0002,"seed":',
    # where card fields came from (``sources``, ``header_fields``), as ``pack`` writes them
    '"negative_prompt""notes""license""source""parents""kohya ss_*""modelspec""sidecar"',
    '["strength_range","readme"],["type","readme"],["themes","readme"],["trigger_words","readme"]',
    '["base_model_claim","civitai"],["description","civitai"],["trigger_words","civitai"]',
    '["title","civitai"],["strength","card"],["themes","card"],["trigger_words","card"],',
    '[["title","card"],"tags","base_model_claim",["resolution","512x512"],["resolution","1024x1024"]',
    ',"training"],"kohya ss_*"][["title","tags","base_model_claim","training"]]',
    # the base-model claims and alpha sources of ``metadata_claims`` and ``detect.alphas``
    "stable-diffusion-v1/lorastable-diffusion-v2/lorastable-diffusion-xl-v1-base/loraSD 1.5SDXL 1.0",
    "lora_adapter_metadatamissing: loaders assume alpha = rank",
    # warnings, as ``catalog.detect`` and ``catalog.index.rows`` word them
    '["pickle \u2014 not loaded: lutnav never unpickles .ckpt/.pt/.bin files; use a .safetensors '
    'version of this LoRA"]["sidecar: "rank varies per module: (most common modules)"',
    '"adapter_config.json says r= but the tensors have rank "ss_network_dim says "metadata ',
    '"base model unknown: the shapes fit ) and nothing settles which"',
    ' but the tensor shapes say ); the shapes win"',
    '"card says the base is \'SD 1.5\' (sd1) but the tensor shapes say sdxl \u2014 the shapes win; fix the card"',
    '["ComfyUI will ignore 256 of 1120 of tensors (AUTOMATIC1111/Forge too) \u2014 `lutnav convert --to kohya`"',
    '["ss_network_alpha says 1 but the .alpha tensors hold 0; loaders use the tensors"',
    # the tensor-shape evidence, as ``catalog.detect.families`` words it
    "q_proj under model.layers (hidden transformer blocks; UNet attention with transformer_blocks.1 "
    "(SDXL depth)UNet layers without attn2, proj_in or depth clues (fits sd1/sd2/sdxl; "
    "ss_base_model_version='sdxl_base_v1-0' picks sdxl)modelspec.architecture='stable-diffusion-xl-v1-base/lora'"
    " text encoder te 1024: OpenCLIP-H (SD2); proj_in is linear (SD2/SDXL); proj_in is a 1x1 conv (SD1); "
    ": CLIP-L and T5 (Flux): CLIP-L, bigG and T5 (SD3): CLIP-L, which SD1, SDXL, Flux and SD3 share; "
    "attention at the 320-channel level (SD1/SD2 layout); text encoder te1 768 + te2 1280: CLIP-L and bigG "
    "(SDXL); attn2.to_k input 1024 attn2.to_k input 2048 (UNet cross-attention); text encoder te 768: "
    "CLIP-L alone under lora_te_ (SD1)attn2.to_k input 768 (UNet cross-attention); ",
    # the model parts (``parts``)
    '["te1","te2","unet"]["te","unet"]',
)).encode()

#: the first byte of a deflated value: which dictionary it was compressed against
_VERSION = 1
_DICTIONARIES = {_VERSION: DICTIONARY}


def deflate(row: dict) -> None:
    """Store the :data:`DEFLATED_COLUMNS` of an encoded row (JSON already text) as BLOBs,
    in place; a value that would not come out shorter stays text."""
    for col in DEFLATED_COLUMNS:
        value = row.get(col)
        if isinstance(value, str):
            raw = value.encode()
            # memLevel 8 (zlib's default): the same bytes on values this short as 9, whose
            # larger tables cost 30 us more to set up for every value of every row scanned
            packer = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
            packed = bytes((_VERSION,)) + packer.compress(raw) + packer.flush()
            if len(packed) < len(raw):
                row[col] = packed


@functools.lru_cache(maxsize=4096)
def inflated(value: bytes) -> str:
    """The text of one deflated value.

    Remembered: a listing inflates ``warnings`` and ``parts`` on every row, and most rows
    share theirs with others (4 µs to inflate, a tenth of that to look up).
    """
    try:
        unpacker = zlib.decompressobj(-15, zdict=_DICTIONARIES[value[0]])
        return (unpacker.decompress(value[1:]) + unpacker.flush()).decode()
    except (KeyError, IndexError, zlib.error, UnicodeDecodeError) as err:
        raise ValueError(f"a stored value is not one this lutnav can read ({err!r})") from None


def inflate(row: dict) -> None:
    """The text of every deflated column of a stored row, in place (text stays as it is)."""
    for col in DEFLATED_COLUMNS:
        value = row.get(col)
        if isinstance(value, bytes):
            row[col] = inflated(value)

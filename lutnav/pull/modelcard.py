"""A Hub model card (README.md with YAML front matter) turned into lutnav card fields.

The mapping of front-matter keys onto card fields is the catalog's
(:func:`catalog.cards.sidecar_formats.from_hub_card`); this module adds what only a pull
needs: the description paragraph, example prompts from ``widget[].text``, the
widget images to fetch as previews, the category the tags suggest, and trigger
words from the weights' own metadata (``modelspec.trigger_phrase``, the tags of
``ss_tag_frequency`` that every caption carries).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.cards.sidecar_formats import from_hub_card

MAX_README_BYTES = 1024 * 1024
#: tag → category, in the order they are tried
TAG_CATEGORIES = (("style", "style"), ("character", "character"), ("concept", "concept"))
LLM_PIPELINES = {"text-generation", "text2text-generation", "conversational", "question-answering",
                 "summarization", "translation", "text-classification", "feature-extraction"}
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass
class HubCard:
    fields: dict[str, Any] = field(default_factory=dict)  # card fields (title, license, …)
    description: str | None = None
    prompts: list[str] = field(default_factory=list)  # widget[].text
    image_refs: list[str] = field(default_factory=list)  # widget[].output.url, as written
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    problems: list[str] = field(default_factory=list)


def read_readme(path: Path) -> HubCard:
    """Parse a downloaded README; a broken one gives an empty card with a problem, never raises."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_README_BYTES + 1)
    if len(data) > MAX_README_BYTES:
        return HubCard(problems=[f"README.md is over {MAX_README_BYTES} bytes; not read"])
    return parse_readme(data.decode("utf-8", "replace"))


def parse_readme(text: str) -> HubCard:
    import yaml

    text = text.lstrip("\ufeff")
    match = _FRONT.match(text)
    meta: Any = {}
    body = text
    card = HubCard()
    if match:
        body = text[match.end():]
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 2}" if mark is not None else ""
            card.problems.append(f"README.md front matter is not valid YAML{where}; ignored")
            meta = {}
    if not isinstance(meta, dict):
        meta = {}
    parsed = from_hub_card(meta, body)
    card.fields = dict(parsed.fields)
    card.image_refs = list(parsed.preview_refs)
    card.problems += parsed.problems
    card.tags = [t for t in meta.get("tags") or [] if isinstance(t, str)] if isinstance(
        meta.get("tags"), list) else []
    pipeline = meta.get("pipeline_tag")
    card.pipeline_tag = pipeline if isinstance(pipeline, str) else None
    widget = meta.get("widget")
    for item in widget[:20] if isinstance(widget, list) else []:
        text_ = item.get("text") if isinstance(item, dict) else None
        if isinstance(text_, str) and text_.strip():
            card.prompts.append(text_.strip()[:300])
    card.description = first_paragraph(body)
    return card


def first_paragraph(body: str, limit: int = 600) -> str | None:
    """The first paragraph of prose: no heading, image, HTML, list, table or code block."""
    body = re.sub(r"(?ms)^\s*(```|~~~).*?^\s*\1[^\n]*$", "", body)
    for block in re.split(r"\n\s*\n", body):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        if not lines or lines[0].startswith(("#", "!", "<", "|", ">", "-", "*", "```", "~~~")):
            continue
        text = " ".join(lines)
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        text = re.sub(r"[*_`]{1,3}", "", text).strip()
        if text:
            return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return None


def repo_path_of(ref: str, repo_id: str) -> str:
    """A widget image ref as a path in the repo: absolute ``…/<repo>/resolve/<rev>/<path>`` URLs too."""
    match = re.search(re.escape(repo_id) + r"/(?:resolve|blob)/[^/]+/(.+?)(?:\?.*)?$", ref)
    if ref.startswith(("http://", "https://")):
        return match.group(1) if match else ""
    return ref[2:] if ref.startswith("./") else ref


def category_for(tags: list[str], pipeline_tag: str | None, base_model: str | None) -> str | None:
    """``style``/``character``/``concept`` from the tags, ``industry`` for an LLM adapter."""
    lowered = [t.strip().lower() for t in tags]
    for tag, category in TAG_CATEGORIES:
        if tag in lowered:
            return category
    if base_model == "llm" or (pipeline_tag or "") in LLM_PIPELINES:
        return "industry"
    return None


def header_triggers(header_fields: dict[str, Any], metadata: dict[str, str], limit: int = 3) -> list[str]:
    """Trigger words a trainer left in the file: ``modelspec.trigger_phrase`` (as the catalog
    reads it), then the caption tags of ``ss_tag_frequency`` that every caption carries."""
    out = [t for t in header_fields.get("trigger_words") or [] if isinstance(t, str)]
    raw = metadata.get("ss_tag_frequency")
    try:
        folders = json.loads(raw) if raw else {}
    except ValueError:
        folders = {}
    counts: dict[str, int] = {}
    for tags in folders.values() if isinstance(folders, dict) else ():
        for tag, n in (tags.items() if isinstance(tags, dict) else ()):
            if isinstance(n, int) and isinstance(tag, str) and tag.strip():
                counts[tag.strip()] = counts.get(tag.strip(), 0) + n
    if counts:
        top = max(counts.values())
        out += [t for t, n in counts.items() if n == top and top > 1][:limit]
    return list(dict.fromkeys(out))


def card_fields(hub: HubCard | None, triggers: list[str], *, source: str | None,
                previews: list[str]) -> dict[str, Any]:
    """The values a pulled entry's card starts with (``None`` values are left out)."""
    hub = hub or HubCard()
    values: dict[str, Any] = {k: v for k, v in hub.fields.items() if k != "previews"}
    values["trigger_words"] = list(dict.fromkeys([*(values.get("trigger_words") or []), *triggers])) or None
    values["description"] = hub.description
    if hub.prompts:
        values["notes"] = "Example prompts: " + " | ".join(hub.prompts[:3])
    values["source"] = source
    values["previews"] = previews or None
    return {k: v for k, v in values.items() if v is not None}

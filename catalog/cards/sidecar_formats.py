"""What each ecosystem sidecar says, mapped onto card fields.

One function per writer, each given the already-decoded document.  The field
names follow the writers' own code: AUTOMATIC1111's Lora extension
(``ui_edit_user_metadata.py``), the Civitai model-version API (saved as
``.civitai.info`` by Civitai Helper and others), ComfyUI-Lora-Manager's
``.metadata.json`` and StabilityMatrix's ``ConnectedModelInfo`` (``.cm-info.json``),
plus the Hugging Face model card's YAML front matter for PEFT folders.

These files are often hand-edited or written by old versions, so every value is
type-checked: a wrong type is a problem message, never an exception.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from catalog.cards.card import FIELD_KINDS
from catalog.cards.field_values import coerce
from catalog.schema import show_value


@dataclass
class Parsed:
    fields: dict[str, Any] = field(default_factory=dict)
    preview_refs: list[str] = field(default_factory=list)  # paths as the sidecar wrote them
    problems: list[str] = field(default_factory=list)

    def take(self, name: str, value: Any, key: str) -> None:
        """Check ``value`` (found under ``key``) as card field ``name``; keep it or complain."""
        if value is None or name in self.fields:
            return
        try:
            checked = coerce(FIELD_KINDS[name], value)
        except ValueError as err:
            self.problems.append(f"`{key}` = {show_value(value)}: expected {err}; ignored")
            return
        if checked is not None:
            self.fields[name] = checked

    def ref(self, value: Any, key: str) -> None:
        if value is None or value == "":
            return
        if isinstance(value, str):
            self.preview_refs.append(value)
        else:
            self.problems.append(f"`{key}` = {show_value(value)}: expected a path; ignored")


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]…`` or None when any level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def html_to_text(value: Any) -> Any:
    """Civitai descriptions are HTML; keep the words and the paragraph breaks."""
    if not isinstance(value, str):
        return value
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|li|h\d)>", "\n", value)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _titled(name: Any, version: Any) -> Any:
    """``Model (v2)`` when both are text; the model name otherwise."""
    if isinstance(name, str) and name.strip() and isinstance(version, str) and version.strip():
        return f"{name.strip()} ({version.strip()})"
    return name


def from_a1111(data: dict[str, Any]) -> Parsed:
    out = Parsed()
    out.take("description", data.get("description"), "description")
    sd_version = data.get("sd version")
    if not (isinstance(sd_version, str) and sd_version.strip().lower() == "unknown"):
        out.take("base_model_claim", sd_version, "sd version")
    out.take("trigger_words", data.get("activation text"), "activation text")
    weight = data.get("preferred weight")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight == 0):
        out.take("strength", weight, "preferred weight")  # 0 is A1111's "not set"
    out.take("negative_prompt", data.get("negative text"), "negative text")
    out.take("notes", data.get("notes"), "notes")
    return out


def _civitai_version(out: Parsed, data: dict[str, Any], prefix: str = "") -> None:
    """Fields of a Civitai model-version document (also nested in Lora-Manager files)."""
    out.take("title", _titled(_get(data, "model", "name"), data.get("name")), f"{prefix}model.name")
    out.take("trigger_words", data.get("trainedWords"), f"{prefix}trainedWords")
    out.take("base_model_claim", data.get("baseModel"), f"{prefix}baseModel")
    out.take("description", html_to_text(data.get("description")), f"{prefix}description")
    out.take("description", html_to_text(_get(data, "model", "description")), f"{prefix}model.description")
    out.take("tags", _get(data, "model", "tags"), f"{prefix}model.tags")
    images = data.get("images")
    if isinstance(images, list):
        for i, image in enumerate(images):
            out.ref(_get(image, "url"), f"{prefix}images[{i}].url")
    elif images is not None:
        out.problems.append(f"`{prefix}images` = {show_value(images)}: expected a list; ignored")


def from_civitai(data: dict[str, Any]) -> Parsed:
    out = Parsed()
    _civitai_version(out, data)
    return out


def from_lora_manager(data: dict[str, Any]) -> Parsed:
    out = Parsed()
    out.take("title", data.get("model_name"), "model_name")
    out.take("description", html_to_text(data.get("modelDescription")), "modelDescription")
    out.take("base_model_claim", data.get("base_model"), "base_model")
    out.take("notes", data.get("notes"), "notes")
    out.take("tags", data.get("tags"), "tags")
    _usage_tips(out, data.get("usage_tips"))
    out.ref(data.get("preview_url"), "preview_url")
    civitai = data.get("civitai")
    if isinstance(civitai, dict):
        _civitai_version(out, civitai, prefix="civitai.")
    elif civitai is not None:
        out.problems.append(f"`civitai` = {show_value(civitai)}: expected an object; ignored")
    return out


def _usage_tips(out: Parsed, tips: Any) -> None:
    """``usage_tips`` is JSON inside a string: ``"{\\"strength\\": 0.8}"``."""
    if tips is None or tips == "":
        return
    if isinstance(tips, str):
        try:
            tips = json.loads(tips)
        except ValueError:
            out.problems.append(f"`usage_tips` = {show_value(tips)}: expected JSON text; ignored")
            return
    if not isinstance(tips, dict):
        out.problems.append(f"`usage_tips` = {show_value(tips)}: expected a JSON object; ignored")
        return
    out.take("strength", tips.get("strength"), "usage_tips.strength")
    lo = tips.get("strength_min", tips.get("strengthMin"))
    hi = tips.get("strength_max", tips.get("strengthMax"))
    if lo is not None and hi is not None:
        out.take("strength_range", [lo, hi], "usage_tips.strength_min/max")


def from_stability_matrix(data: dict[str, Any]) -> Parsed:
    out = Parsed()
    out.take("title", data.get("UserTitle"), "UserTitle")
    out.take("title", _titled(data.get("ModelName"), data.get("VersionName")), "ModelName")
    out.take("description", html_to_text(data.get("ModelDescription")), "ModelDescription")
    out.take("base_model_claim", data.get("BaseModel"), "BaseModel")
    out.take("trigger_words", data.get("TrainedWords"), "TrainedWords")
    out.take("tags", data.get("Tags"), "Tags")
    out.ref(data.get("ThumbnailImageUrl"), "ThumbnailImageUrl")
    return out


def from_hub_card(meta: dict[str, Any], body: str) -> Parsed:
    """A Hub model card: YAML front matter plus the first ``# `` heading as title."""
    out = Parsed()
    base = meta.get("base_model")
    if isinstance(base, list) and all(isinstance(b, str) for b in base):
        base = ", ".join(base)
    out.take("base_model_claim", base, "base_model")
    prompt = meta.get("instance_prompt")
    out.take("trigger_words", [prompt] if isinstance(prompt, str) and prompt.strip() else prompt, "instance_prompt")
    out.take("tags", meta.get("tags"), "tags")
    out.take("license", meta.get("license"), "license")
    heading = re.search(r"(?m)^#\s+(.+?)\s*$", body)
    out.take("title", heading.group(1) if heading else None, "# heading")
    widget = meta.get("widget")
    if isinstance(widget, list):
        for i, example in enumerate(widget):
            out.ref(_get(example, "output", "url"), f"widget[{i}].output.url")
    return out

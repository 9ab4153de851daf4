"""The folder ``README.md`` seed format: one section per LoRA, ``- key: value`` lines.

People write these by hand, in Chinese or English, with full-width punctuation
and half-finished sections::

    ### ink_wash_v2.safetensors
    - 类型：风格迁移
    - 适用主题：自然风景、静物
    - 推荐强度：0.6 ~ 0.8
    - 触发词：无(全局生效)
    - 注意事项：避免与强对比风格LoRA叠加使用

So the parser keeps whatever it can read and reports the rest as warnings that
name the README line, instead of refusing the file.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from catalog.cards.field_values import EXPECTED, parse_number, parse_range, split_list

#: README key (after NFKC + casefold) → card field.
KEY_FIELDS: dict[str, str] = {}
for _field, _keys in {
    "type": ("类型", "类别", "type", "kind"),
    "themes": ("适用主题", "主题", "适用场景", "themes", "theme", "suitable themes"),
    "strength": ("推荐强度", "强度", "推荐权重", "权重", "recommended strength", "strength",
                 "recommended weight", "weight"),
    "trigger_words": ("触发词", "触发关键词", "trigger words", "trigger word", "triggers", "trigger",
                      "activation text"),
    "notes": ("注意事项", "备注", "说明", "notes", "note", "caution", "cautions"),
    "description": ("描述", "简介", "description"),
    "title": ("标题", "名称", "title", "name"),
    "tags": ("标签", "tags"),
    "negative_prompt": ("负面提示词", "反向提示词", "negative prompt", "negative"),
    "base_model_claim": ("底模", "基础模型", "base model", "base"),
    "license": ("许可", "许可证", "license"),
    "source": ("来源", "source"),
}.items():
    for _key in _keys:
        KEY_FIELDS[_key] = _field

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*[-*+]\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_KEY_VALUE = re.compile(r"^([^:：]*)[:：](.*)$")
_LORA_SUFFIX = re.compile(r"\.(safetensors|ckpt|pt|pth|bin)$", re.IGNORECASE)

Section = tuple[dict[str, Any], list[str]]


def heading_stem(text: str) -> str:
    """``### `ink_wash_v2.safetensors` `` → ``ink_wash_v2``."""
    name = text.strip().strip("*_`'\"“”「」 ").rstrip("/")
    return _LORA_SUFFIX.sub("", name)


def _unfenced(lines: list[str], start: int = 0):
    """``(number, line)`` for the lines outside code fences: a fenced ``### x`` is an example, not a section."""
    in_fence = False
    for number, line in enumerate(lines, start=start):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            yield number, line


def parse_readme(text: str) -> dict[str, Section]:
    """Map each section's stem to ``(fields, warnings)``; warnings say ``line N: …``."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    heading_line = 0
    items_seen = 0

    def close() -> None:
        if current is not None and items_seen == 0:
            current[1].append(f"line {heading_line}: section has no `- key: value` lines")

    for number, line in _unfenced(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading:
            close()
            current, items_seen = None, 0
            if len(heading.group(1)) in (2, 3, 4) and heading_stem(heading.group(2)):
                stem = heading_stem(heading.group(2))
                heading_line = number
                if stem in sections:
                    sections[stem][1].append(f"line {number}: second section for `{stem}`; its lines are merged")
                current = sections.setdefault(stem, ({}, []))
            continue
        item = _ITEM.match(line)
        if current is None or not item:
            continue
        items_seen += 1
        _read_item(item.group(1), number, *current)
    close()
    return sections


def fold_sections(sections: dict[str, Section]) -> dict[str, Section]:
    """Case-folded index of the sections (build once per README, look up per entry)."""
    folded: dict[str, Section] = {}
    for name, section in sections.items():
        folded.setdefault(name.casefold(), section)
    return folded


def find_section(
    sections: dict[str, Section], stem: str, folded: dict[str, Section] | None = None
) -> Section | None:
    """The section for ``stem``; case-insensitive as a fallback (Windows names)."""
    if stem in sections:
        return sections[stem]
    return (folded if folded is not None else fold_sections(sections)).get(stem.casefold())


def _read_item(body: str, number: int, fields: dict[str, Any], warnings: list[str]) -> None:
    match = _KEY_VALUE.match(body)
    if not match:
        warnings.append(f"line {number}: `- {body.strip()}` is not `- key: value`; ignored")
        return
    key = match.group(1).strip().strip("*_` ")
    value = match.group(2).strip().strip("*_ ")
    name = KEY_FIELDS.get(unicodedata.normalize("NFKC", key).casefold().strip())
    if name is None:
        known = "类型/type, 适用主题/themes, 推荐强度/strength, 触发词/trigger words, 注意事项/notes"
        warnings.append(f"line {number}: unknown key `{key}` (known: {known}); ignored")
        return
    if not value:
        warnings.append(f"line {number}: `{key}` has no value")
        return
    try:
        updates = _parse_value(name, value)
    except ValueError as err:
        warnings.append(f"line {number}: `{key}` = `{value}`: expected {err}; ignored")
        return
    for field_name, parsed in updates.items():
        if field_name in fields:
            warnings.append(f"line {number}: `{key}` given twice; the later line wins")
        fields[field_name] = parsed


def _parse_value(name: str, value: str) -> dict[str, Any]:
    if name == "strength":
        try:
            return {"strength_range": parse_range(value)}
        except ValueError as range_err:
            try:
                return {"strength": parse_number(value)}
            except ValueError:
                if "above high" in str(range_err):
                    raise range_err from None
                raise ValueError(f"{EXPECTED['float']} or {EXPECTED['range']}") from None
    if name in ("trigger_words", "themes", "tags"):
        return {name: [item.strip("`") for item in split_list(value) if item.strip("`")]}
    return {name: value}


def section_text(text: str, stem: str) -> str | None:
    """The lines of ``stem``'s section as written (heading included), to carry it elsewhere.

    Export puts this into the zip so that the entry's folder-README fields reach
    the other library word for word; ``None`` when the README has no such section.
    """
    lines = text.splitlines()
    start = None
    for number, line in _unfenced(lines):
        heading = _HEADING.match(line)
        if not heading:
            continue
        if start is not None:
            return "\n".join(lines[start:number]).rstrip() + "\n"
        if len(heading.group(1)) in (2, 3, 4) and heading_stem(heading.group(2)).casefold() == stem.casefold():
            start = number
    return "\n".join(lines[start:]).rstrip() + "\n" if start is not None else None

"""The folder README seed format, as people actually write it."""

from __future__ import annotations

import pytest

from catalog.cards.readme_card import find_section, heading_stem, parse_readme

CHINESE = """\
# 水墨风格 LoRA

这些是山水画常用的风格模型。

### ink_wash_v2.safetensors
- 类型：风格迁移
- 适用主题：自然风景、静物
- 推荐强度：0.6 ～ 0.8
- 触发词：无(全局生效)
- 注意事项：避免与强对比风格LoRA叠加使用

### gongbi_flowers.safetensors
- 类型:工笔
- 适用主题:花鸟，人物
- 推荐强度:0.7
- 触发词:gongbi, 工笔花鸟
"""


def test_chinese_sections_with_full_width_punctuation():
    sections = parse_readme(CHINESE)
    fields, warnings = sections["ink_wash_v2"]
    assert fields == {
        "type": "风格迁移",
        "themes": ["自然风景", "静物"],
        "strength_range": [0.6, 0.8],
        "trigger_words": [],
        "notes": "避免与强对比风格LoRA叠加使用",
    }
    assert warnings == []
    fields, warnings = sections["gongbi_flowers"]
    assert fields["strength"] == 0.7 and "strength_range" not in fields
    assert fields["themes"] == ["花鸟", "人物"]
    assert fields["trigger_words"] == ["gongbi", "工笔花鸟"]
    assert warnings == []


def test_english_keys_stem_headings_and_backticks():
    text = """\
## `city_night.safetensors`
- Type: lighting
- Themes: city; night, neon
- Recommended strength: 0.5 to 0.9
- Trigger words: `neon_city`, rain
- Notes: works best at 768px

### city_day
* type: lighting
* strength: 1
"""
    sections = parse_readme(text)
    night, warnings = sections["city_night"]
    assert night["themes"] == ["city", "night", "neon"]
    assert night["strength_range"] == [0.5, 0.9]
    assert night["trigger_words"] == ["neon_city", "rain"]
    assert night["notes"] == "works best at 768px"
    assert warnings == []
    assert sections["city_day"][0] == {"type": "lighting", "strength": 1.0}


@pytest.mark.parametrize("text", ["0.6 ~ 0.8", "0.6～0.8", "0.6-0.8", "0.6 – 0.8", "0.6 to 0.8", "０.６ ~ ０.８"])
def test_strength_range_spellings(text):
    fields, warnings = parse_readme(f"### a.safetensors\n- 推荐强度：{text}\n")["a"]
    assert fields == {"strength_range": [0.6, 0.8]}
    assert warnings == []


@pytest.mark.parametrize("text", ["无", "无(全局生效)", "无（全局生效）", "none", "None", "-", "N/A"])
def test_no_trigger_words(text):
    fields, _ = parse_readme(f"### a\n- 触发词：{text}\n")["a"]
    assert fields["trigger_words"] == []


def test_half_filled_sections_keep_what_is_there_and_name_lines():
    text = """\
### broken.safetensors
- 类型：
- 适用主题：雪景
- 推荐强度：很强
- 触发词
- 颜色：蓝
- 推荐强度：0.9 ~ 0.4

### empty.safetensors

### next.safetensors
- 类型：风格迁移
"""
    sections = parse_readme(text)
    fields, warnings = sections["broken"]
    assert fields == {"themes": ["雪景"]}
    joined = "\n".join(warnings)
    assert "line 2:" in joined and "has no value" in joined          # 类型： with nothing after it
    assert "line 4:" in joined and "很强" in joined                   # not a number
    assert "line 5:" in joined and "not `- key: value`" in joined    # no colon
    assert "line 6:" in joined and "unknown key `颜色`" in joined
    assert "line 7:" in joined and "above high" in joined            # reversed range
    assert len(warnings) == 5
    empty_fields, empty_warnings = sections["empty"]
    assert empty_fields == {}
    assert empty_warnings == ["line 9: section has no `- key: value` lines"]
    assert sections["next"] == ({"type": "风格迁移"}, [])


def test_code_fences_and_title_heading_are_not_sections():
    text = """\
# My LoRAs
- 类型: not in a section

```
### fake.safetensors
- 类型: inside a code block
```
### real.safetensors
- 类型: yes
"""
    sections = parse_readme(text)
    assert set(sections) == {"real"}
    assert sections["real"][0] == {"type": "yes"}


def test_repeated_key_and_section_are_reported():
    text = "### a\n- type: one\n- type: two\n### a\n- notes: more\n"
    fields, warnings = parse_readme(text)["a"]
    assert fields == {"type": "two", "notes": "more"}
    assert any("line 3:" in w and "twice" in w for w in warnings)
    assert any("line 4:" in w and "second section" in w for w in warnings)


def test_find_section_falls_back_to_case_insensitive():
    sections = parse_readme("### Ink_Wash.safetensors\n- type: style\n")
    assert find_section(sections, "ink_wash") == ({"type": "style"}, [])
    assert find_section(sections, "other") is None


@pytest.mark.parametrize(
    ("heading", "stem"),
    [("ink.safetensors", "ink"), ("`ink.safetensors`", "ink"), ("**ink**", "ink"), ("my.lora.v2.ckpt", "my.lora.v2"),
     ("qwen-adapter/", "qwen-adapter")],
)
def test_heading_stem(heading, stem):
    assert heading_stem(heading) == stem


def test_list_items_are_trimmed_and_deduplicated():
    fields, _ = parse_readme("### a\n- 触发词：ink, ink，水墨、 , 水墨\n")["a"]
    assert fields["trigger_words"] == ["ink", "水墨"]

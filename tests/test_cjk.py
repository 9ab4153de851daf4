"""Chinese (and other CJK) text: found inside words, and shown aligned in both tables."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from catalog.index.library import Library
from lutnav.cli import cli
from tests.hubserver import lora_bytes


@pytest.fixture
def cjk_lib(tmp_path):
    root = tmp_path / "loras"
    specs = {
        "style/水墨/山水画.safetensors": "### 山水画.safetensors\n- 适用主题:自然风景、静物\n- 注意事项:远山近水\n",
        "style/ink/ink_wash.safetensors": "### ink_wash.safetensors\n- themes: mountain, mist\n",
        "character/猫/三花猫.safetensors": "### 三花猫.safetensors\n- 触发词:sanhua\n- 注意事项:猫咪肖像\n",
        "style/日本/landscape_jp.safetensors": "### landscape_jp.safetensors\n- themes: 富士山の風景\n",
    }
    for i, (rel, readme) in enumerate(specs.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lora_bytes(seed=i))
        (path.parent / "README.md").write_text(readme, "utf-8")
    lib = Library(root)
    lib.scan_all()
    return lib


def names(entries):
    return sorted(e.name for e in entries)


@pytest.mark.parametrize(("query", "expected"), [
    ("风景", ["山水画"]),  # two characters inside 自然风景
    ("自然风景", ["山水画"]),  # a whole phrase (trigram index)
    ("然风", ["山水画"]),
    ("风", ["山水画"]),  # one character
    ("猫", ["三花猫"]),  # in the name and the notes
    ("猫咪肖像", ["三花猫"]),
    ("水墨", ["山水画"]),  # the theme folder
    ("風景", ["landscape_jp"]),  # Japanese kanji are their own code points
    ("富士山", ["landscape_jp"]),
    ("山", ["landscape_jp", "山水画"]),
    ("sanhua 猫", ["三花猫"]),  # mixed: English word prefix AND CJK substring
    ("mount 风景", []),
    ("ink", ["ink_wash"]),  # plain English search is unchanged
    ("风景 静物", ["山水画"]),
    ("风景 猫", []),
])
def test_cjk_text_is_found_inside_words(cjk_lib, query, expected):
    assert names(cjk_lib.search(query)) == expected


def test_the_cjk_index_follows_edits_and_deletions(cjk_lib):
    readme = cjk_lib.root / "character/猫/README.md"
    readme.write_text("### 三花猫.safetensors\n- 注意事项:橘色条纹\n", "utf-8")
    cjk_lib.scan_all()
    assert names(cjk_lib.search("橘色")) == ["三花猫"]
    assert names(cjk_lib.search("猫咪")) == []
    (cjk_lib.root / "style/水墨/山水画.safetensors").unlink()
    cjk_lib.scan_all()
    assert names(cjk_lib.search("风景")) == []


def test_search_filters_apply_to_cjk_queries(cjk_lib):
    assert names(cjk_lib.search("山", category="character")) == []
    assert names(cjk_lib.search("山", category="style")) == ["landscape_jp", "山水画"]


def _column_starts(line: str, values: list[str]) -> list[int]:
    """Display-cell offset where each value starts on ``line``."""
    out = []
    for value in values:
        index = line.index(value)
        out.append(cell_len(line[:index]))
    return out


def test_cli_table_aligns_full_width_text(cjk_lib):
    """Every column starts at the same terminal column on every line, CJK cells counting double."""
    result = CliRunner().invoke(cli, ["--library", str(cjk_lib.root), "ls"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    want = _column_starts(header, ["category", "theme", "base", "path"])
    assert any("山水画" in row for row in rows) and any("三花猫" in row for row in rows)
    for row in rows:
        name, category, theme, base, *_, path = re.split(r"\s{2,}", row.strip())
        after_name = row.index(category, len(name))
        starts = [cell_len(row[:after_name]),
                  cell_len(row[:row.index(theme, after_name + len(category))]),
                  cell_len(row[:row.index(base, row.index(theme, after_name + len(category)) + len(theme))]),
                  cell_len(row[:row.rindex(path)])]
        assert starts == want, row


def test_tui_table_lines_keep_their_width_with_full_width_names(cjk_lib):
    from tests.test_tui_support import drive, settle

    async def scenario(app, pilot):
        await settle(app, pilot)
        table = app.query_one("EntryTable")
        width = table.size.width
        lines = [table.render_line(y).text for y in range(0, table.total + 1)]
        assert any("三花猫" in ln for ln in lines)
        header = lines[0]
        base_at = cell_len(header[:header.index("base")])
        for line in lines[1:]:
            assert cell_len(line) == width, line
            assert cell_len(line[:line.index("sd1")]) == base_at, line

    drive(cjk_lib, scenario)

"""The TUI driven like a user drives it: keys in, what the screen and the files show out."""

from __future__ import annotations

import shutil
import tomllib

import pytest

from catalog.index.library import Library
from tests.test_tui_support import (  # noqa: F401  (fixtures)
    demo_lib, demo_template, drive, screen_text, settle, table_names, type_text,
)


async def select(app, pilot, name: str) -> None:
    """Put the table cursor on ``name`` (set-up for a test; the keys are tested elsewhere)."""
    table = app.query_one("EntryTable")
    table.focus()
    names = table_names(app)
    assert name in names, f"{name} is not in the table: {names}"
    table.cursor = names.index(name)
    await settle(app, pilot)
    assert table.current.name == name


def test_search_narrows_the_table_and_clearing_restores_it(demo_lib):
    async def scenario(app, pilot):
        everything = table_names(app)
        assert everything == [e.name for e in demo_lib.entries(order_by="name")]
        await pilot.press("slash")
        await type_text(pilot, "ink")
        await settle(app, pilot)
        narrowed = table_names(app)
        assert narrowed == sorted(e.name for e in demo_lib.search("ink"))
        assert "ink_wash_v2" in narrowed and "zzcat" not in narrowed
        assert "ink_wash_v2" in screen_text(app)
        app.query_one("#search").value = ""
        await settle(app, pilot)
        assert table_names(app) == everything

    drive(demo_lib, scenario)


def test_search_reaches_trigger_words_and_shows_a_miss(demo_lib):
    async def scenario(app, pilot):
        await pilot.press("slash")
        await type_text(pilot, "zz_girl")
        await settle(app, pilot)
        assert table_names(app) == ["cute_anime_girl_zz"]
        app.query_one("#search").value = "nothing-here-at-all"
        await settle(app, pilot)
        assert table_names(app) == []
        assert "nothing matches" in screen_text(app)

    drive(demo_lib, scenario)


def test_ten_thousand_character_search_does_not_break_anything(demo_lib):
    async def scenario(app, pilot):
        app.query_one("#search").value = ("ink " * 2500)[:10_000]
        await settle(app, pilot)
        assert table_names(app) == sorted(e.name for e in demo_lib.search("ink"))
        app.query_one("#search").value = "(" * 10_000
        await settle(app, pilot)
        assert len(table_names(app)) == len(demo_lib.entries())  # no words: the whole library
        await pilot.press("escape", "down")
        assert app.is_running

    drive(demo_lib, scenario)


def test_tree_and_filters_narrow_to_a_folder_and_a_base(demo_lib):
    async def scenario(app, pilot):
        tree = app.query_one("FolderTree")
        node = next(n for n in tree.root.children if n.data == ("character", None))
        tree.focus()
        tree.move_cursor(node)
        await settle(app, pilot)
        def expected(**filters):
            return sorted(e.name for e in demo_lib.entries(category="character", **filters))

        assert table_names(app) == expected()
        assert "zzcat" in expected() and "ink_wash_v2" not in expected()
        app.query_one("#base").value = "sd1"
        await settle(app, pilot)
        assert table_names(app) == expected(base="sd1")
        app.query_one("#format").value = "diffusers"
        await settle(app, pilot)
        assert table_names(app) == expected(base="sd1", fmt="diffusers") == ["zzcat"]

    drive(demo_lib, scenario)


def test_arrow_keys_move_the_cursor_and_the_detail_pane_follows(demo_lib):
    async def scenario(app, pilot):
        names = table_names(app)
        table = app.query_one("EntryTable")
        assert table.current.name == names[0]
        await pilot.press("down", "down")
        await settle(app, pilot)
        assert table.current.name == names[2]
        assert table.current.path in screen_text(app)  # the detail pane shows it
        await pilot.press("end")
        assert table.current.name == names[-1]
        await pilot.press("pageup", "home", "up")
        assert table.current.name == names[0]
        await pilot.click("EntryTable", offset=(4, 4))  # header line + 3 rows down
        assert table.current.name == names[3]
        top = table.content_region
        header = screen_text(app).splitlines()[top.y]
        x = header.index("base", top.x)
        await pilot.click("EntryTable", offset=(x - top.x + 1, 0))  # the "base" title
        await settle(app, pilot)
        assert app.view.order_by == "base_model" and table.current.name == names[3]

    drive(demo_lib, scenario)


def test_sorting_by_column_orders_rows_and_keeps_the_cursor(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        await pilot.press("s")  # name → base
        await settle(app, pilot)
        table = app.query_one("EntryTable")
        bases = [table.pager.row(i).base_model for i in range(table.total)]
        assert bases == sorted(bases)
        assert table.current.name == "zzcat"
        await pilot.press("S")
        await settle(app, pilot)
        bases = [table.pager.row(i).base_model for i in range(table.total)]
        assert bases == sorted(bases, reverse=True)
        assert "base ▼" in screen_text(app)

    drive(demo_lib, scenario)


def test_basket_guard_turns_red_when_the_total_passes_one(demo_lib):
    async def scenario(app, pilot):
        panel = app.query_one("BasketPanel")
        assert not panel.display
        await select(app, pilot, "cute_anime_girl_zz")  # card strength 0.7
        await pilot.press("space")
        await select(app, pilot, "ink_wash_v2")  # no strength: 1.0
        await pilot.press("space")
        await settle(app, pilot)
        assert panel.display and panel.has_class("-refused")
        assert "total strength 1.70" in screen_text(app)

        weights = list(panel.query("WeightInput"))
        assert [w.path.rsplit("/", 1)[-1] for w in weights] == [
            "cute_anime_girl_zz.safetensors", "ink_wash_v2.safetensors"]
        weights[1].focus()
        weights[1].clear()
        await type_text(pilot, "0.3")
        await settle(app, pilot)
        assert not panel.has_class("-refused")  # 0.7 + 0.3 = 1.0 is allowed
        assert "ok to blend" in screen_text(app)

        await type_text(pilot, "5")  # 0.35: Σ 1.05
        await settle(app, pilot)
        assert panel.has_class("-refused")
        assert "total strength 1.05" in screen_text(app)

        weights[1].clear()
        await type_text(pilot, "abc")
        await settle(app, pilot)
        assert "weight 'abc' is not a" in screen_text(app)

    drive(demo_lib, scenario)


def test_basket_refuses_mixed_bases_and_copies_the_prompt_line(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "cute_anime_girl_zz")
        await pilot.press("space")
        await select(app, pilot, "watercolor_sdxl")
        await pilot.press("space")
        await settle(app, pilot)
        assert "base models differ" in screen_text(app)
        await pilot.press("c")
        assert app.clipboard == "<lora:cute_anime_girl_zz:0.7> <lora:watercolor_sdxl:0.7>"
        await pilot.press("space")  # out again
        await settle(app, pilot)
        assert [i.name for i in app.basket.items] == ["cute_anime_girl_zz"]
        assert not app.query_one("BasketPanel").has_class("-refused")

    drive(demo_lib, scenario)


def test_copy_with_an_empty_basket_copies_the_highlighted_entry(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        await pilot.press("c")
        assert app.clipboard == "<lora:zzcat:0.8>"

    drive(demo_lib, scenario)


def test_detail_pane_shows_card_fields_with_sources_and_header_facts(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "cute_anime_girl_zz")
        text = screen_text(app)
        assert "zz_girl" in text and "‹card›" in text
        assert "kohya" in text and "sd1" in text
        await select(app, pilot, "broken_download")
        assert "broken" in screen_text(app)

    drive(demo_lib, scenario)


def test_card_edit_writes_the_card_and_the_table_follows(demo_lib):
    card = demo_lib.root / "character/heroes/herocat.toml"
    assert not card.exists()

    async def scenario(app, pilot):
        await select(app, pilot, "herocat")
        await pilot.press("e")
        await settle(app, pilot)
        form = app.screen
        assert type(form).__name__ == "CardForm"
        form.query_one("#card-strength").value = "0.65"
        form.query_one("#card-trigger_words").value = "herocat, cape"
        form.query_one("#card-strength_range").value = "0.5~0.8"
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert type(app.screen).__name__ != "CardForm"
        table = app.query_one("EntryTable")
        assert table.current.name == "herocat"
        assert table.current.strength == 0.65

    drive(demo_lib, scenario)
    saved = tomllib.loads(card.read_text("utf-8"))
    assert saved == {"trigger_words": ["herocat", "cape"], "strength": 0.65,
                     "strength_range": [0.5, 0.8]}


def test_card_form_refuses_bad_values_and_writes_nothing(demo_lib):
    card = demo_lib.root / "style/anime/cute_anime_girl_zz.toml"
    before = card.read_bytes()

    async def scenario(app, pilot):
        await select(app, pilot, "cute_anime_girl_zz")
        await pilot.press("e")
        await settle(app, pilot)
        app.screen.query_one("#card-strength").value = "strong"
        await settle(app, pilot)
        assert "expected a number" in screen_text(app)  # checked as typed
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "CardForm"
        assert "not saved" in screen_text(app)

    drive(demo_lib, scenario)
    assert card.read_bytes() == before


def test_card_save_is_refused_when_the_file_changed_meanwhile(demo_lib):
    card = demo_lib.root / "style/anime/cute_anime_girl_zz.toml"

    async def scenario(app, pilot):
        await select(app, pilot, "cute_anime_girl_zz")
        await pilot.press("e")
        await settle(app, pilot)
        card.write_text('strength = 0.9\nnotes = "edited in another editor"\n', "utf-8")
        app.screen.query_one("#card-strength").value = "0.5"
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "CardForm"  # still open: nothing typed is lost
        assert app.screen.query_one("#card-strength").value == "0.5"
        assert "since it was read" in screen_text(app)

    drive(demo_lib, scenario)
    assert tomllib.loads(card.read_text("utf-8")) == {"strength": 0.9, "notes": "edited in another editor"}


def test_card_that_is_not_toml_is_shown_as_an_error_and_can_be_fixed(demo_lib):
    card = demo_lib.root / "character/cats/zzcat.toml"
    card.write_text("strength = = 0.7\n", "utf-8")
    demo_lib.scan_all()

    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        assert "not valid TOML" in screen_text(app)
        await pilot.press("e")
        await settle(app, pilot)
        raw = app.screen.query_one("#card-raw")
        assert raw.text == "strength = = 0.7\n"
        assert "does not read as a card" in screen_text(app)
        raw.text = "strength = 0.75\n"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.query_one("EntryTable").current.strength == 0.75

    drive(demo_lib, scenario)
    assert card.read_text("utf-8") == "strength = 0.75\n"


def test_rescan_finds_a_new_file_and_keeps_the_selection(demo_lib):
    src = demo_lib.root / "style/ink_wash/ink_wash_v2.safetensors"

    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        shutil.copy(src, demo_lib.root / "style/ink_wash/ink_wash_v3.safetensors")
        await pilot.press("r")
        await settle(app, pilot)
        assert "ink_wash_v3" in table_names(app)
        assert app.query_one("EntryTable").current.name == "zzcat"
        assert "ink_wash (2)" in screen_text(app)
        assert len(table_names(app)) == len(demo_lib.entries())

    drive(demo_lib, scenario)


def test_empty_library_shows_how_to_get_started(tmp_path):
    root = tmp_path / "loras"
    root.mkdir()

    async def scenario(app, pilot):
        text = screen_text(app)
        assert "lutnav demo" in text and "scan" in text
        await pilot.press("e", "space", "c", "s")  # nothing to act on: no crash
        assert app.is_running

    drive(Library(root), scenario)


def test_empty_library_fills_in_after_a_rescan(demo_template, tmp_path):
    root = tmp_path / "loras"
    root.mkdir()
    lib = Library(root)

    async def scenario(app, pilot):
        assert "lutnav demo" in screen_text(app)
        shutil.copytree(demo_template / "style", root / "style")
        await pilot.press("r")
        await settle(app, pilot)
        assert table_names(app) == sorted(e.name for e in Library(root).entries())
        assert "ink_wash_v2" in table_names(app)
        assert "lutnav demo" not in screen_text(app)

    drive(lib, scenario)


def test_library_folder_vanishing_while_open_is_reported_not_fatal(demo_lib, monkeypatch):
    from lutnav.tui import app as app_module

    monkeypatch.setattr(app_module, "LIBRARY_CHECK_SECONDS", 0.05)

    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        shutil.rmtree(demo_lib.root)
        await pilot.pause(0.3)
        assert "is gone" in screen_text(app)
        await pilot.press("r", "e", "down", "up", "p", "space")
        await settle(app, pilot)
        assert app.is_running and type(app.screen).__name__ != "CardForm"

    drive(demo_lib, scenario)


def test_help_lists_the_keys_and_closes(demo_lib):
    async def scenario(app, pilot):
        await pilot.press("question_mark")
        await settle(app, pilot)
        text = screen_text(app)
        assert "rescan" in text and "basket" in text and "OSC 52" in text
        await pilot.press("escape")
        await settle(app, pilot)
        assert type(app.screen).__name__ != "HelpScreen"

    drive(demo_lib, scenario)


def test_fits_80_by_24_with_the_tree_on_demand(demo_lib):
    async def scenario(app, pilot):
        text = screen_text(app)
        lines = text.splitlines()
        assert len(lines) == 24 and max(len(line) for line in lines) <= 80
        assert "name" in lines[2] and "anime_lineart" in text
        assert "search" in lines[-1] and "quit" in lines[-1]
        assert "character (4)" not in text
        await pilot.press("t")
        await settle(app, pilot)
        assert "character (4)" in screen_text(app)

    drive(demo_lib, scenario, size=(80, 24))


def test_no_color_keeps_the_cursor_visible(demo_lib, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario(app, pilot):
        assert app.no_color
        table = app.query_one("EntryTable")
        strip = table.render_line(1)  # the first row holds the cursor
        assert any(seg.style and seg.style.reverse for seg in strip)

    drive(demo_lib, scenario)


def _old_index(root, stage: str) -> None:
    """An index as an older lutnav left it: an empty file, or only the first migration applied."""
    import sqlite3

    import sqlite_utils

    from catalog.index.db import migrations

    (root / ".lutnav").mkdir(parents=True)
    path = root / ".lutnav" / "catalog.db"
    sqlite3.connect(path).close()
    if stage == "first-migration":
        db = sqlite_utils.Database(path)
        names = [m.name for m in migrations.pending(db)]
        migrations.apply(db, stop_before=names[1] if len(names) > 1 else None)
        assert [m.name for m in migrations.applied(db)] == names[:1]
        db.close()


@pytest.mark.parametrize("stage", ["empty-file", "first-migration"])
def test_an_index_from_an_older_lutnav_is_migrated_on_open(demo_template, tmp_path, stage):
    import sqlite_utils

    from catalog.index.db import migrations

    root = tmp_path / "loras"
    shutil.copytree(demo_template, root, ignore=shutil.ignore_patterns(".lutnav"))
    _old_index(root, stage)

    async def scenario(app, pilot):
        assert "lutnav demo" in screen_text(app)  # nothing indexed yet, but it opened
        await pilot.press("r")
        await settle(app, pilot)
        assert "ink_wash_v2" in table_names(app)

    drive(Library(root), scenario)
    db = sqlite_utils.Database(root / ".lutnav" / "catalog.db")
    assert migrations.pending(db) == []


def test_weight_box_keeps_every_key_typed_at_full_speed(demo_lib):
    """Keys posted at once, as a terminal delivers fast typing: none lost, none reordered."""
    from textual import events

    async def scenario(app, pilot):
        await select(app, pilot, "herocat")
        await pilot.press("space")
        await settle(app, pilot)
        box = app.query_one("WeightInput")
        box.focus()
        await settle(app, pilot)
        keys = [("end", None), *[("backspace", None)] * 4, ("0", "0"), ("full_stop", "."), ("3", "3")]
        for key, char in keys:
            app.post_message(events.Key(key, char))
        await settle(app, pilot)
        assert box.value == "0.3"
        assert [i.weight for i in app.basket.items] == [0.3]
        assert "missing the weight" not in screen_text(app)

    drive(demo_lib, scenario)


def test_messages_show_bracketed_text_as_written(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "ink_wash_v2")
        await pilot.press("p")  # no [models] configured: the error names the config key
        for _ in range(40):
            await settle(app, pilot)
            if "[models] sd1" in screen_text(app):
                break
        assert "add [models] sd1 =" in screen_text(app)

    drive(demo_lib, scenario, notifications=True)


def test_toasts_leave_the_basket_and_its_hint_in_view(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "cute_anime_girl_zz")
        await pilot.press("space")
        await select(app, pilot, "ink_wash_v2")
        await pilot.press("space")
        await pilot.press("c")
        await settle(app, pilot)
        text = screen_text(app)
        assert "c: copy prompt" in text and "p: preview" in text  # the hint wraps, never cut
        basket = app.query_one("BasketPanel").region
        toasts = [t.region for t in app.screen.query("Toast")]
        assert toasts and not any(t.overlaps(basket) for t in toasts)

    drive(demo_lib, scenario, size=(80, 24), notifications=True)


def test_enter_opens_the_entry_full_screen_and_escape_goes_back(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "ink_wash_v2")
        await pilot.press("enter")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "EntryScreen"
        text = screen_text(app)
        for needle in ("style/ink_wash/ink_wash_v2.safetensors", "自然风景", "‹readme›", "‹kohya ss_*›",
                       "esc back", "e edit card"):
            assert needle in text, needle
        app.screen.query_one("#entry-scroll").scroll_end(animate=False)  # below: the header metadata
        await settle(app, pilot)
        assert "ss_network_dim" in screen_text(app)
        assert app.screen.query(".entry-preview")  # the preview, large
        await pilot.press("space")  # actions work from here
        await settle(app, pilot)
        assert [i.name for i in app.basket.items] == ["ink_wash_v2"]
        await pilot.press("escape")
        await settle(app, pilot)
        assert type(app.screen).__name__ != "EntryScreen"
        assert app.query_one("EntryTable").current.name == "ink_wash_v2"

    drive(demo_lib, scenario)


def test_slash_in_the_entry_screen_goes_back_to_search(demo_lib):
    async def scenario(app, pilot):
        await select(app, pilot, "zzcat")
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("slash")
        await settle(app, pilot)
        assert type(app.screen).__name__ != "EntryScreen"
        assert app.focused is app.query_one("#search")

    drive(demo_lib, scenario)

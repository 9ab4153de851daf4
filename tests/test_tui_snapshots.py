"""A few screens of the demo library pinned as SVG snapshots (pytest-textual-snapshot).

Run ``pytest tests/test_tui_snapshots.py --snapshot-update`` after an intended
change of the look, and review the SVGs under ``tests/__snapshots__/``.
"""

from __future__ import annotations

from lutnav.tui.app import create_app
from tests.test_tui_support import demo_lib, demo_template, settle, table_names  # noqa: F401


def _prepare(*names: str, basket: bool = False, then=None):
    """A ``run_before`` that puts the cursor on ``names`` (adding them to the basket if asked)."""

    async def run_before(pilot) -> None:
        app = pilot.app
        await settle(app, pilot)
        app.sub_title = "demo library"  # the real path is a temp folder that changes every run
        table = app.query_one("EntryTable")
        for name in names:
            table.cursor = table_names(app).index(name)
            await settle(app, pilot)
            if basket:
                await pilot.press("space")
        if then is not None:
            await then(pilot)
        await settle(app, pilot)
        app.clear_notifications()
        for box in app.screen.query("Input, TextArea"):  # a blinking cursor is a coin toss per picture
            box.cursor_blink = False
        await pilot.pause(0.05)

    return run_before


def test_browse_with_card_and_preview(snap_compare, demo_lib):
    assert snap_compare(create_app(demo_lib), terminal_size=(120, 34),
                        run_before=_prepare("cute_anime_girl_zz"))


def test_browse_at_80_by_24(snap_compare, demo_lib):
    assert snap_compare(create_app(demo_lib), terminal_size=(80, 24),
                        run_before=_prepare("herocat"))


def test_basket_refused_over_total_strength(snap_compare, demo_lib):
    assert snap_compare(create_app(demo_lib), terminal_size=(120, 34),
                        run_before=_prepare("cute_anime_girl_zz", "ink_wash_v2", basket=True))


def test_card_form(snap_compare, demo_lib):
    async def open_form(pilot):
        await pilot.press("e")

    assert snap_compare(create_app(demo_lib), terminal_size=(100, 30),
                        run_before=_prepare("cute_anime_girl_zz", then=open_form))


def test_help_screen(snap_compare, demo_lib):
    async def open_help(pilot):
        await pilot.press("question_mark")

    assert snap_compare(create_app(demo_lib), terminal_size=(100, 30),
                        run_before=_prepare("zzcat", then=open_help))

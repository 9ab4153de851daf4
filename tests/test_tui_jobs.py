"""Background work in the TUI: previews (through lutnav.mix) and scans run in workers, cancellably."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from catalog.progress import Progress
from tests.test_tui_support import (  # noqa: F401  (fixtures)
    demo_lib, demo_template, drive, screen_text, settle, table_names,
)


def capture_notes(app) -> list[str]:
    notes: list[str] = []
    shown = app.notify

    def notify(message, **kw):
        notes.append(str(message))
        return shown(message, **kw)

    app.notify = notify
    return notes


async def put_cursor(app, pilot, name: str) -> None:
    table = app.query_one("EntryTable")
    table.cursor = table_names(app).index(name)
    await settle(app, pilot)


def test_preview_of_an_entry_runs_the_preview_code_and_shows_the_new_image(demo_lib, monkeypatch):
    import lutnav.mix.sampling as sampling

    calls = []

    def fake_preview_entry(lib, name, settings, *, model=None):
        """Stands in for diffusers: writes the image where the real one does, then re-indexes."""
        calls.append((name, threading.current_thread() is threading.main_thread()))
        out = lib.abspath(name).with_name("pixel_locon.preview.png")
        out.unlink(missing_ok=True)
        Image.new("RGB", (64, 64), (200, 30, 30)).save(out)
        yield Progress(1, 1, name)
        lib.scan_all()
        return [out]

    monkeypatch.setattr(sampling, "preview_entry", fake_preview_entry)

    async def scenario(app, pilot):
        notes = capture_notes(app)
        await put_cursor(app, pilot, "pixel_locon")
        await pilot.press("p")
        await settle(app, pilot)
        assert any("preview written" in n and "pixel_locon.preview.png" in n for n in notes), notes
        assert app.query_one("EntryTable").current.name == "pixel_locon"

    drive(demo_lib, scenario)
    assert calls == [("style/pixel_art/pixel_locon.safetensors", False)]  # in a worker thread
    assert demo_lib.get("pixel_locon").previews == ["style/pixel_art/pixel_locon.preview.png"]


@pytest.mark.slow  # waits for a stand-in preview to be under way before cancelling it
def test_preview_can_be_cancelled_between_images(demo_lib, monkeypatch):
    import lutnav.mix.sampling as sampling

    made = []

    def slow_preview_blend(lib, items, settings, *, model=None, **kw):
        for n in range(1, 200):
            time.sleep(0.02)
            made.append(n)
            yield Progress(n, 200, f"image {n}")
        return []

    monkeypatch.setattr(sampling, "preview_blend", slow_preview_blend)

    async def scenario(app, pilot):
        notes = capture_notes(app)
        await put_cursor(app, pilot, "cute_anime_girl_zz")
        await pilot.press("space")
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause(0.3)
        assert "preview" in screen_text(app)  # the status line while it runs
        await pilot.press("escape")
        await settle(app, pilot)
        assert "preview cancelled" in notes
        assert not app.query_one("#status").has_class("-busy")

    drive(demo_lib, scenario)
    assert 0 < len(made) < 199


def test_preview_of_a_refused_basket_does_not_start(demo_lib, monkeypatch):
    import lutnav.mix.sampling as sampling

    monkeypatch.setattr(sampling, "preview_blend", lambda *a, **k: (_ for _ in ()).throw(
        AssertionError("a refused blend must not be sampled")))

    async def scenario(app, pilot):
        notes = capture_notes(app)
        for name in ("cute_anime_girl_zz", "ink_wash_v2"):  # 0.7 + 1.0 > 1
            await put_cursor(app, pilot, name)
            await pilot.press("space")
        await pilot.press("p")
        await settle(app, pilot)
        assert any(n.startswith("preview refused") and "total strength" in n for n in notes), notes

    drive(demo_lib, scenario)


def test_preview_without_a_configured_model_says_what_to_set(demo_lib):
    async def scenario(app, pilot):
        notes = capture_notes(app)
        await put_cursor(app, pilot, "ink_wash_v2")
        await pilot.press("p")
        await settle(app, pilot)
        assert any("preview failed" in n and "[models]" in n for n in notes), notes
        assert app.is_running

    drive(demo_lib, scenario)


def test_rescan_shows_progress_and_reports_the_summary(demo_lib):
    for n in range(60):  # enough files for several progress steps
        (demo_lib.root / "style/ink_wash" / f"copy_{n:02d}.safetensors").write_bytes(
            (demo_lib.root / "style/ink_wash/ink_wash_v2.safetensors").read_bytes())
    seen = []

    async def scenario(app, pilot):
        notes = capture_notes(app)
        original = app._scan_step
        app._scan_step = lambda step: (seen.append((step.phase, step.done, step.total)),
                                       original(step))
        await pilot.press("r")
        await settle(app, pilot)
        assert any("60 added" in n for n in notes), notes
        assert len(table_names(app, 500)) == len(demo_lib.entries())

    drive(demo_lib, scenario)
    assert ("read", 60, 60) in seen


def test_rescan_while_another_process_scans_says_so_instead_of_hanging(demo_lib):
    from catalog.index.library import Library

    async def scenario(app, pilot):
        notes = capture_notes(app)
        with Library(demo_lib.root).lock():  # another scan holds the library
            await pilot.press("r")
            await settle(app, pilot)
        assert any("is scanning the library" in n for n in notes), notes
        assert len(table_names(app, 500)) == len(demo_lib.entries())

    drive(demo_lib, scenario)

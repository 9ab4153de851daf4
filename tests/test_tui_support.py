"""Fixtures and helpers shared by the TUI tests (this module holds no tests itself)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from catalog.index.library import Library


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo tree, written once per session; tests copy it."""
    from lutnav.demo import write_demo

    root = tmp_path_factory.mktemp("demo-template") / "loras"
    write_demo(root)
    return root


def open_scanned(root: Path) -> Library:
    lib = Library(root)
    lib.scan_all()
    return lib


@pytest.fixture
def demo_lib(demo_template, tmp_path) -> Library:
    """A fresh, scanned copy of the demo library for one test."""
    root = tmp_path / "loras"
    shutil.copytree(demo_template, root, ignore=shutil.ignore_patterns(".lutnav"))
    return open_scanned(root)


def drive(lib: Library, scenario: Callable, size: tuple[int, int] = (120, 40), *,
          notifications: bool = False) -> None:
    """Run ``scenario(app, pilot)`` against a fresh app on ``lib`` (sync test, no plugin);
    ``notifications`` shows toasts on screen (Textual hides them in tests by default)."""
    from lutnav.tui.app import create_app

    async def main() -> None:
        app = create_app(lib)
        async with app.run_test(size=size, notifications=notifications) as pilot:
            await settle(app, pilot)
            await scenario(app, pilot)

    asyncio.run(main())


async def settle(app, pilot, delay: float = 0.07) -> None:
    """Let workers finish and the screen catch up (view loads, scans, the detail timer)."""
    for _ in range(2):
        await app.workers.wait_for_complete()
        await pilot.pause(delay)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*[{" ": "space"}.get(ch, ch) for ch in text])


def screen_text(app) -> str:
    """What the terminal shows, as plain text lines."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


def table_names(app, limit: int = 200) -> list[str]:
    table = app.query_one("EntryTable")
    return [table.pager.row(i).name for i in range(min(table.total, limit))]


Scenario = Callable[..., Awaitable[None]]

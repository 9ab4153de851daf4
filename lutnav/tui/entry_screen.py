"""Enter on an entry: the whole entry on one screen — every field with its source, the
previews large, the header metadata, and the actions (edit, basket, preview, copy)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from catalog.index.entry import Entry, EntryDetails

from .detail import FieldList, load_picture, render_info

#: previews shown at most (a curated entry has one to four)
MAX_PREVIEWS = 4
#: metadata values longer than this are cut (ss_tag_frequency can run to megabytes)
MAX_META_CHARS = 400


def metadata_rows(details: EntryDetails) -> list[tuple[str, str, str]]:
    """The header's ``__metadata__`` as (key, value, "") rows, long values cut."""
    rows = []
    for key, value in sorted((details.metadata or {}).items()):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > MAX_META_CHARS:
            text = text[:MAX_META_CHARS] + f"… ({len(text):,} characters)"
        rows.append((key, text, ""))
    return rows


class EntryScreen(Screen[None]):
    """Full-screen view of one entry; escape goes back to the table."""

    BINDINGS = [
        Binding("escape,enter", "close", "back"),
        Binding("e", "app.edit_card", "edit card"),
        Binding("space", "app.basket", "basket"),
        Binding("p", "app.preview", "preview"),
        Binding("c", "app.copy_prompt", "copy tag"),
        Binding("slash", "search", "search", show=False),
    ]

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="entry-scroll"):
            yield Static(Text(""), id="entry-info")
            yield Horizontal(id="entry-previews")
            yield Static(Text(""), id="entry-meta")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.set_timer(0.3, self.load)  # back from the card form: show what was saved

    def load(self) -> None:
        from catalog.errors import CatalogError

        try:
            info = self.app.lib.details(self.path)
        except CatalogError as err:
            self.query_one("#entry-info", Static).update(Text(str(err), style="bold red"))
            return
        self.query_one("#entry-info", Static).update(render_info(info))
        meta = metadata_rows(info)
        self.query_one("#entry-meta", Static).update(
            FieldList("header metadata", meta) if meta else Text("no header metadata", style="dim"))
        self._show_previews(info.entry)

    def _show_previews(self, info: Entry) -> None:
        box = self.query_one("#entry-previews", Horizontal)
        box.remove_children()
        root: Path = self.app.lib.root
        paths = [root / p for p in info.previews or [] if (root / p).is_file()][:MAX_PREVIEWS]
        if not paths:
            box.mount(Static(Text("no previews — press p to sample one", style="dim")))
            return
        widgets = []
        for path in paths:
            try:
                picture = load_picture(path)
                from textual_image.widget import Image

                widgets.append(Image(picture, classes="entry-preview"))
            except (OSError, ValueError) as err:
                widgets.append(Static(Text(f"preview {path.name}: {err}", style="dim")))
        box.mount_all(widgets)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_search(self) -> None:
        """Search lives on the table's screen: go back there and into the box."""
        self.dismiss(None)
        self.app.call_later(self.app.action_search)

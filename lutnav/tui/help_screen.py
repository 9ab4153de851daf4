"""The ``?`` screen: every key, in one place (the footer shows the common ones)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("/", "search: type to filter live (names, trigger words, themes, tags, notes)"),
    ("esc", "leave the search box / close a dialog / cancel a running preview or scan"),
    ("↑ ↓ PgUp PgDn Home End", "move in the table; the right pane shows the entry"),
    ("enter", "open the entry full-screen: every field and its source, previews, metadata; esc goes back"),
    ("tab", "next pane: tree, table, basket weights, search"),
    ("t", "show or hide the category tree"),
    ("s / S", "sort by the next column / reverse the order (or click a column title)"),
    ("space", "add the entry to the basket, or take it out"),
    ("c", "copy the basket's prompt line (or the entry's tag) to the clipboard (OSC 52)"),
    ("p", "preview the basket (or the entry) with `lutnav preview`, in the background"),
    ("e", "edit the entry's card; ctrl+s saves, esc cancels"),
    ("r", "rescan the library (only changed files are read)"),
    ("?", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        table = Table(title="lutnav keys", show_header=False, expand=True, box=None, padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll(id="help-dialog"):
            yield Static(table)

    def action_dismiss(self) -> None:
        self.dismiss(None)

"""The lutnav app: layout and keys (views and background jobs live in their mixins).

``create_app(lib)`` builds the app (tests drive it with Pilot); ``run_app(lib)``
runs it in the terminal — the ``lutnav`` command with no verb calls that.
"""

from __future__ import annotations

import sqlite3

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import Footer, Header, Input, ProgressBar, Static

from catalog.index.browse import open_card
from catalog.errors import CatalogError
from catalog.index.library import Library
from catalog.cards.sidecars import card_path
from catalog.index.entry import Entry
from lutnav.prompt_tags import default_weight, tag

from .background import Background
from .basket import Basket
from .basket_panel import BasketPanel
from .card_form import CardForm
from .detail import DetailPane
from .entry_screen import EntryScreen
from .entry_table import EntryTable
from .folder_tree import FolderTree
from .help_screen import HelpScreen
from .search_bar import SearchBar
from .view_loading import ViewLoading

LIBRARY_CHECK_SECONDS = 2.0  # how often to look whether the library folder still exists
NARROW = 110  # below this many columns the tree starts hidden (t shows it)
EMPTY_TEXT = (
    "This library has no LoRA files yet: {root}\n\n"
    "• run  lutnav demo  to write a small demo library and browse it, or\n"
    "• put .safetensors files under {root}/<category>/<theme>/ and press r here\n"
    "  (or run  lutnav --library {root} scan ).\n\n"
    "q quits · ? shows the keys"
)


class LutnavApp(ViewLoading, Background, App):
    TITLE = "lutnav"
    ENABLE_COMMAND_PALETTE = False  # the footer needs the room at 80 columns
    CSS_PATH = ["app.tcss", "basket.tcss", "dialogs.tcss"]  # beside this file, shipped as package data
    BINDINGS = [
        Binding("slash", "search", "search"),
        Binding("enter", "open_entry", "open", show=False),
        Binding("space", "basket", "basket"),
        Binding("e", "edit_card", "edit"),
        Binding("p", "preview", "preview"),
        Binding("c", "copy_prompt", "copy"),
        Binding("r", "rescan", "rescan"),
        Binding("s", "sort", "sort", show=False),
        Binding("S", "reverse", "reverse", show=False),
        Binding("t", "toggle_tree", "tree", show=False),
        Binding("escape", "back", "back", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, lib: Library) -> None:
        super().__init__()
        self.lib = lib
        self.basket = Basket()
        self._detail_timer = None
        self._narrow: bool | None = None
        self._init_view_state()

    # --- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")
        yield SearchBar(id="bar")
        with Horizontal(id="body"):
            yield FolderTree(id="tree")
            with Vertical(id="middle"):
                yield EntryTable(id="table")
                yield BasketPanel(self.basket, lambda: self.lib.config, id="basket")
            yield DetailPane(id="detail")
        yield Static(EMPTY_TEXT.format(root=self.lib.root), id="empty", markup=False)
        with Horizontal(id="status"):
            yield Static("", id="status-text")
            yield ProgressBar(id="progress", show_eta=False)
        yield Footer()

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every message is plain text: errors quote config keys like ``[models] sd1``, paths and
        names hold brackets, and Rich markup would eat them. (Callers can still ask for markup.)"""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_mount(self) -> None:
        self.sub_title = str(self.lib.root)
        self.set_interval(LIBRARY_CHECK_SECONDS, self._check_library)
        self.reload(keep=None)
        self.query_one(EntryTable).focus()

    def on_resize(self, event: Resize) -> None:
        narrow = event.size.width < NARROW
        if narrow != self._narrow:
            self._narrow = narrow
            self.set_class(narrow, "-tree-hidden")

    # --- the detail pane ---------------------------------------------------------

    def on_entry_table_highlighted(self, event: EntryTable.Highlighted) -> None:
        if self._detail_timer is not None:
            self._detail_timer.stop()
        path = event.row.path if event.row else None
        # a short pause coalesces key repeats: holding ↓ reads one entry, not fifty
        pane = self.query_one(DetailPane)
        self._detail_timer = pane.set_timer(0.05, lambda: self._show_detail(path))

    def _show_detail(self, path: str | None) -> None:
        panes = self.query(DetailPane)
        if not panes:  # shutting down
            return
        pane = panes.first()
        if path is None:
            pane.show_message("nothing matches" if self.view.query else "nothing here")
            return
        try:
            pane.show_info(self.lib.details(path), self.lib.root)
        except (CatalogError, sqlite3.Error, OSError) as err:
            pane.show_message(str(err), error=True)

    # --- actions -----------------------------------------------------------------

    def _entry(self) -> Entry | None:
        row = self.query_one(EntryTable).current
        if row is None:
            self.notify("no entry selected", severity="warning")
        return row

    def action_open_entry(self) -> None:
        """The entry full-screen: every field with its source, large previews, the actions."""
        row = self._entry()
        if row is not None and not self._refuse_if_gone():
            self.push_screen(EntryScreen(row.path))

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_back(self) -> None:
        if self.cancel_jobs():
            self.notify("cancelling…")
        else:
            self.query_one(EntryTable).focus()

    def action_toggle_tree(self) -> None:
        self.toggle_class("-tree-hidden")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_basket(self) -> None:
        row = self._entry()
        if row is None:
            return
        try:
            entry = self.lib.get(row.path)
            added = self.basket.toggle(entry, default_weight(self.lib, row.path))
        except (CatalogError, sqlite3.Error) as err:
            self.notify(str(err), severity="error")
            return
        table = self.query_one(EntryTable)
        table.marked = self.basket.paths
        table.refresh()
        self.query_one(BasketPanel).rebuild()
        self.notify(f"{'added' if added else 'removed'} {row.name}", timeout=2)

    def action_copy_prompt(self) -> None:
        if self.basket.items:
            line = self.basket.prompt_line()
        else:
            row = self._entry()
            if row is None:
                return
            line = tag(row.name, default_weight(self.lib, row.path))
        self.copy_to_clipboard(line)
        self.notify(f"copied: {line}", timeout=3)

    def action_edit_card(self) -> None:
        row = self._entry()
        if row is None or self._refuse_if_gone():
            return
        try:
            draft = open_card(card_path(self.lib.abspath(row.path)))
        except (CatalogError, OSError) as err:
            self.notify(str(err), severity="error")
            return

        def saved(ok: bool | None) -> None:
            if ok:
                self.notify(f"saved {draft.path.name}", timeout=3)
                self.rescan(keep=row.path, quiet=True)

        self.push_screen(CardForm(draft, row.name), saved)

    def action_rescan(self) -> None:
        if not self._refuse_if_gone():
            current = self.query_one(EntryTable).current
            self.rescan(keep=current.path if current else None)

    def action_preview(self) -> None:
        """The basket as a blend (after the same guards as ``lutnav mix``), else the entry alone."""
        if self.basket.items:
            verdict = self.basket.verdict(self._config())
            if not verdict.ok:
                self.notify("preview refused: " + "; ".join(verdict.refusals), severity="error",
                            timeout=8)
                return
            specs = self.basket.specs()
        else:
            row = self._entry()
            if row is None:
                return
            specs = [row.path]
        if not self._refuse_if_gone():
            self.preview(specs)

    def _config(self) -> dict | None:
        try:
            return self.lib.config
        except CatalogError:
            return None


def create_app(lib: Library) -> LutnavApp:
    """The app on ``lib``, not yet running (tests run it with ``app.run_test()``)."""
    return LutnavApp(lib)


def run_app(lib: Library) -> None:
    """Run the TUI in this terminal until the user quits."""
    # textual-image asks the terminal what graphics it supports; that only works
    # before Textual takes over stdin, so the import happens here, first.
    import textual_image.widget  # noqa: F401  (imported for its terminal query)

    create_app(lib).run()

"""How the app turns tree, search box, filters and sort into the table's rows.

A mixin of the app class: it keeps the current :class:`~catalog.index.browse.View`,
shows the first rows of a new search from a worker thread (only the newest
view is shown when the user types on), and reads the tree counts and facets in
the background after the table is on screen.
"""

from __future__ import annotations

import sqlite3
import threading

from textual import work

from catalog.index import browse
from catalog.index.browse import View
from catalog.errors import CatalogError
from catalog.index.library import Library
from catalog.index.query import SORTABLE
from catalog.index.entry import Entry

from .entry_table import COLUMNS, EntryTable
from .folder_tree import FolderTree
from .paging import Pager
from .search_bar import SearchBar

SORT_CYCLE = [c.sort_key for c in COLUMNS if c.sort_key in SORTABLE]
#: a query run in the background at start, so the first keystroke finds the index warm
WARM_UP = View(query="e")


class ViewLoading:
    """Mixed into the App; ``self.lib`` is the library, ``self.view`` what the table shows."""

    def _init_view_state(self) -> None:
        self.view = View()
        self._loading = False  # a view query is running in the worker
        self._reader: Library | None = None  # the workers' own connection to the index
        self._reader_lock = threading.Lock()

    def _with_reader(self, use):
        """Run ``use(reader)`` on the worker connection, one thread at a time."""
        with self._reader_lock:
            if self._reader is None:
                self._reader = Library(self.lib.root)
            return use(self._reader)

    def reload(self, keep: str | None) -> None:
        """Show the view again (after a scan or a card save), then refresh tree and facets."""
        try:
            empty = browse.count(self.lib, View()) == 0
        except sqlite3.Error as err:
            self._trouble(f"the index cannot be read: {err}")
            return
        self.set_class(empty, "-empty")
        if not empty:
            self._show_view(keep)
        self._load_folders()

    @work(thread=True, group="folders", exclusive=True)
    def _load_folders(self) -> None:
        try:
            counts, bases, formats = self._with_reader(lambda lib: (
                browse.folder_counts(lib), browse.facet(lib, "base_model"), browse.facet(lib, "format")))
            self._with_reader(lambda lib: browse.count(lib, WARM_UP))
        except (sqlite3.Error, CatalogError) as err:
            self.call_from_thread(self._trouble, f"the index cannot be read: {err}")
            return
        self.call_from_thread(self._folders_loaded, counts, bases, formats)

    def _folders_loaded(self, counts, bases, formats) -> None:
        self.query_one(FolderTree).fill(counts, keep=(self.view.category, self.view.theme))
        self.query_one(SearchBar).set_facets(bases, formats)

    def _show_view(self, keep: str | None) -> None:
        try:
            self.query_one(EntryTable).show(Pager(self.lib, self.view), keep=keep)
        except sqlite3.Error as err:
            self._trouble(f"the index cannot be read: {err}")

    def set_view(self, view: View, *, keep_cursor: bool = False) -> None:
        same_rows = view.key() == self.view.key()
        self.view = view
        if same_rows:  # e.g. a trailing space: nothing to query
            return
        if keep_cursor:
            current = self.query_one(EntryTable).current
            self._show_view(current.path if current else None)
        elif not self._loading:
            self._loading = True
            self._load_view(view)

    @work(thread=True, group="view")
    def _load_view(self, view: View) -> None:
        """Count and first page of a new search, off the UI thread; only the newest is shown."""
        try:
            total, first = self._with_reader(lambda lib: Pager.prepare(lib, view))
        except (sqlite3.Error, CatalogError) as err:
            self.call_from_thread(self._trouble, f"search failed: {err}")
            total, first = None, None
        self.call_from_thread(self._view_loaded, view, total, first)

    def _view_loaded(self, view: View, total: int | None, first: list[Entry] | None) -> None:
        if view.key() != self.view.key():  # the user typed on while this ran: run the latest
            self._load_view(self.view)
            return
        self._loading = False
        if total is not None:
            self.query_one(EntryTable).show(Pager(self.lib, view, total=total, first_page=first))

    def on_folder_tree_chosen(self, event: FolderTree.Chosen) -> None:
        self.set_view(self.view.with_(category=event.category, theme=event.theme))

    def on_search_bar_changed(self, event: SearchBar.Changed) -> None:
        self.set_view(self.view.with_(query=event.query, base=event.base, fmt=event.fmt))

    def on_entry_table_sort_requested(self, event: EntryTable.SortRequested) -> None:
        same = event.sort_key == self.view.order_by
        self.set_view(self.view.with_(order_by=event.sort_key,
                                      descending=not self.view.descending if same else False),
                      keep_cursor=True)

    def action_sort(self) -> None:
        at = SORT_CYCLE.index(self.view.order_by) if self.view.order_by in SORT_CYCLE else -1
        self.set_view(self.view.with_(order_by=SORT_CYCLE[(at + 1) % len(SORT_CYCLE)]),
                      keep_cursor=True)

    def action_reverse(self) -> None:
        self.set_view(self.view.with_(descending=not self.view.descending), keep_cursor=True)

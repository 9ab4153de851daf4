"""A window onto a view of the index: its length, and pages fetched as they scroll into sight.

The table widget asks for row *i*; this answers from a small cache of pages and
fetches the missing page from SQLite.  Nothing here knows about Textual, so the
paging is tested (and benchmarked) without a screen.
"""

from __future__ import annotations

from collections import OrderedDict

from catalog.index import browse
from catalog.index.browse import View
from catalog.index.library import Library
from catalog.index.entry import Entry

PAGE_SIZE = 100
#: pages kept in memory (a screenful needs one or two; scrolling back reuses them)
KEEP_PAGES = 12


class Pager:
    """Rows of one view, by position, never more than ``KEEP_PAGES`` pages in memory."""

    def __init__(self, lib: Library, view: View | None = None, *, total: int | None = None,
                 first_page: list[Entry] | None = None):
        self.lib = lib
        self.view = view or View()
        self.total = browse.count(lib, self.view) if total is None else total
        self._pages: OrderedDict[int, list[Entry]] = OrderedDict()
        if first_page is not None:
            self._pages[0] = first_page

    @classmethod
    def prepare(cls, lib: Library, view: View) -> tuple[int, list[Entry]]:
        """The count and first page of ``view``: the part of a view change worth doing off the UI thread."""
        total = browse.count(lib, view)
        return total, browse.page(lib, view, limit=PAGE_SIZE) if total else []

    def row(self, index: int) -> Entry | None:
        if not 0 <= index < self.total:
            return None
        number, within = divmod(index, PAGE_SIZE)
        rows = self._pages.get(number)
        if rows is None:
            rows = browse.page(self.lib, self.view, limit=PAGE_SIZE, offset=number * PAGE_SIZE)
            self._pages[number] = rows
            while len(self._pages) > KEEP_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(number)
        return rows[within] if within < len(rows) else None

    def position(self, path: str) -> int | None:
        return browse.position(self.lib, self.view, path)

    @property
    def cached_rows(self) -> int:
        return sum(len(p) for p in self._pages.values())

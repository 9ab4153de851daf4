"""The entry table: a virtual list that draws only the lines on screen.

Textual's DataTable holds every row as widgets' data; at 100,000 entries that is
seconds of start-up and hundreds of megabytes.  This table renders line by line
(Textual's line API) from a :class:`~lutnav.tui.paging.Pager`, so it costs the
same for 12 entries as for 100,000.  Line 0 is the header (click it to sort).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from catalog.index.entry import Entry

from .paging import Pager
from lutnav.output import human_size


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def _text(v: str | None) -> str:
    return v or ""


@dataclass(frozen=True)
class Column:
    """One column of the table: an :class:`Entry` field (one the browser reads for its rows,
    ``TABLE_FIELDS``), how its value is written, and how the column gives way when narrow."""

    field: str
    title: str
    width: int  # the least it may have
    keep: int  # smaller stays longer when the table is narrow
    show: Callable[[Any], str] = _text
    sortable: bool = True  # clicking the title sorts by the field
    flex: int = 0  # share of the spare width
    right: bool = False

    @property
    def sort_key(self) -> str | None:
        return self.field if self.sortable else None

    def cell(self, entry: Entry) -> str:
        return self.show(getattr(entry, self.field))


COLUMNS = (
    Column("name", "name", 14, 0, flex=3),
    Column("base_model", "base", 7, 1),
    Column("rank", "rank", 4, 2, _num, right=True),
    Column("strength", "str", 4, 3, _num, right=True),
    Column("format", "format", 9, 4),
    Column("trigger_words", "triggers", 10, 5, lambda v: ", ".join(v or []), sortable=False, flex=2),
    Column("size", "size", 6, 6, lambda v: human_size(v, compact=True), right=True),
)
MARK_WIDTH = 2  # "✗ " broken, "● " in the basket, "! " warnings


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells (wide CJK characters count double)."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def layout(width: int) -> list[tuple[Column, int]]:
    """The columns that fit in ``width`` cells, with their widths."""
    chosen = []
    used = MARK_WIDTH
    for col in sorted(COLUMNS, key=lambda c: c.keep):
        if used + col.width + 1 <= width or not chosen:
            chosen.append(col)
            used += col.width + 1
    chosen.sort(key=COLUMNS.index)
    spare = max(0, width - used)
    flex = sum(c.flex for c in chosen) or 1
    return [(c, c.width + spare * c.flex // flex) for c in chosen]


class EntryTable(ScrollView, can_focus=True):
    """Rows of the current view; the cursor row is the entry the detail pane shows."""

    COMPONENT_CLASSES = {"entry-table--header", "entry-table--cursor", "entry-table--broken",
                         "entry-table--basket"}
    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(1)", show=False),
    ]
    cursor: reactive[int] = reactive(0, always_update=True, layout=False)

    class Highlighted(Message):
        def __init__(self, row: Entry | None) -> None:
            super().__init__()
            self.row = row

    class Failed(Message):
        """The index stopped answering (deleted, locked, corrupt): said once, drawn blank."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class SortRequested(Message):
        def __init__(self, sort_key: str) -> None:
            super().__init__()
            self.sort_key = sort_key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pager: Pager | None = None
        self.sort_key = "name"
        self.descending = False
        self.marked: set[str] = set()
        self._failed = False

    # --- data ------------------------------------------------------------------

    @property
    def total(self) -> int:
        return self.pager.total if self.pager else 0

    def show(self, pager: Pager, keep: str | None = None) -> None:
        """Switch to a new view; the cursor stays on ``keep`` when that entry is still in it."""
        self.pager = pager
        self.sort_key, self.descending = pager.view.order_by, pager.view.descending
        self.virtual_size = Size(self.size.width, pager.total + 1)
        at = pager.position(keep) if keep else None
        self.cursor = at if at is not None else 0
        self.refresh()

    @property
    def current(self) -> Entry | None:
        try:
            return self.pager.row(self.cursor) if self.pager else None
        except sqlite3.Error:
            return None

    def watch_cursor(self, value: int) -> None:
        clamped = max(0, min(value, self.total - 1)) if self.total else 0
        if clamped != value:
            self.cursor = clamped
            return
        rows = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if value < top:
            self.scroll_to(y=value, animate=False, immediate=True)
        elif value >= top + rows:
            self.scroll_to(y=value - rows + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Highlighted(self.current))

    def action_move(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_page(self, direction: int) -> None:
        self.cursor = self.cursor + direction * max(1, self.size.height - 2)

    def action_jump(self, to_end: int) -> None:
        self.cursor = self.total - 1 if to_end else 0

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.total + 1)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = MARK_WIDTH
            for col, width in layout(self.size.width):
                if x <= offset.x < x + width + 1 and col.sort_key:
                    self.post_message(self.SortRequested(col.sort_key))
                x += width + 1
            return
        self.cursor = self.scroll_offset.y + offset.y - 1

    # --- drawing ---------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base + self.get_component_rich_style("entry-table--header"))
        index = self.scroll_offset.y + y - 1
        try:
            row = self.pager.row(index) if self.pager and index < self.total else None
        except sqlite3.Error as err:
            if not self._failed:
                self._failed = True
                self.post_message(self.Failed(str(err)))
            row = None
        if row is None:
            return Strip.blank(width, base)
        in_basket = row.path in self.marked
        mark = "✗ " if row.error else "● " if in_basket else "! " if row.warnings else "  "
        cells = [fit(c.cell(row), w, c.right) for c, w in layout(width)]
        text = fit(mark + " ".join(cells), width)
        style = base
        if row.error:
            style += self.get_component_rich_style("entry-table--broken")
        elif in_basket:
            style += self.get_component_rich_style("entry-table--basket")
        if index == self.cursor:
            style += self.get_component_rich_style("entry-table--cursor")
        return Strip([Segment(text, style)], width)

    def _header(self, width: int, style) -> Strip:
        cells = []
        for col, w in layout(width):
            title = col.title
            if col.sort_key and col.sort_key == self.sort_key:
                title += " ▼" if self.descending else " ▲"
            cells.append(fit(title, w, col.right))
        return Strip([Segment(fit(" " * MARK_WIDTH + " ".join(cells), width), style)], width)

"""The search box and the facet filters (base model, format) above the table."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select

from .ordered_input import OrderedInput

ANY = "any"


class SearchBar(Horizontal):
    """Posts :class:`Changed` on every keystroke or filter pick; the app decides when to query."""

    class Changed(Message):
        def __init__(self, query: str, base: str | None, fmt: str | None) -> None:
            super().__init__()
            self.query = query
            self.base = base
            self.fmt = fmt

    def compose(self) -> ComposeResult:
        yield OrderedInput(placeholder="/ search names, trigger words, themes, notes…", id="search",
                    compact=True)
        yield Select([(f"base: {ANY}", ANY)], value=ANY, allow_blank=False, id="base",
                     compact=True)
        yield Select([(f"format: {ANY}", ANY)], value=ANY, allow_blank=False, id="format",
                     compact=True)

    def set_facets(self, bases: list[tuple[str, int]], formats: list[tuple[str, int]]) -> None:
        """Offer the values the library holds, with counts; keep the current picks."""
        for select_id, label, values in (("#base", "base", bases), ("#format", "format", formats)):
            select = self.query_one(select_id, Select)
            current = select.value
            options = [(f"{label}: {ANY}", ANY)] + [(f"{v} ({n})", v) for v, n in values]
            with self.prevent(Select.Changed):
                select.set_options(options)
                known = {v for _, v in options}
                select.value = current if current in known else ANY

    @property
    def query_text(self) -> str:
        return self.query_one("#search", Input).value

    def _pick(self, select_id: str) -> str | None:
        value = self.query_one(select_id, Select).value
        return None if value in (ANY, Select.NULL) else str(value)

    def _changed(self) -> None:
        self.post_message(self.Changed(self.query_text, self._pick("#base"), self._pick("#format")))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

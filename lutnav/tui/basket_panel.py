"""The basket panel: one editable weight per entry, the live guard verdict, the prompt line."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from catalog.errors import CatalogError

from .basket import Basket
from .ordered_input import OrderedInput


class WeightInput(OrderedInput):
    """A weight box that knows which entry it weighs."""

    def __init__(self, path: str, weight: float) -> None:
        super().__init__(f"{weight:g}", classes="basket-weight", compact=True)
        self.path = path


class BasketPanel(Vertical):
    """Hidden while the basket is empty; red (and saying why) while the guards refuse the blend."""

    class WeightsChanged(Message):
        pass

    def __init__(self, basket: Basket, config_source, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.basket = basket
        self._config = config_source  # a callable: the library config is read when judged

    def compose(self) -> ComposeResult:
        yield Label("", id="basket-title")
        yield Static(Text("space: add/remove · c: copy prompt · p: preview the blend · tab: next weight"),
                     id="basket-hint")
        yield Vertical(id="basket-items")
        yield Static("", id="basket-verdict")
        yield Static("", id="basket-prompt")

    def rebuild(self) -> None:
        """Re-create the weight rows after an entry was added or removed."""
        box = self.query_one("#basket-items", Vertical)
        box.remove_children()
        rows = []
        for item in self.basket.items:
            rows.append(Horizontal(Label(Text(item.name), classes="basket-name"),
                                   WeightInput(item.path, item.weight), classes="basket-row"))
        box.mount_all(rows)
        self.display = bool(self.basket.items)
        self.refresh_verdict()

    def refresh_verdict(self) -> None:
        b = self.basket
        self.query_one("#basket-title", Label).update(
            Text(f"basket ({len(b)}) — Σ {b.total:.2f}", style="bold"))
        try:
            config = self._config()
        except CatalogError as err:
            config, problem = None, str(err)
        else:
            problem = None
        verdict = b.verdict(config)
        lines = verdict.lines() if b.items else []
        if problem:
            lines.insert(0, f"config: {problem}")
        ok = verdict.ok and not problem
        text = Text("✓ ok to blend" if ok else "✗ refused", style="bold green" if ok else "bold red")
        for line in lines:
            text.append("\n" + line, style="red" if line.startswith("refused") else "yellow")
        verdict_widget = self.query_one("#basket-verdict", Static)
        verdict_widget.update(text)
        verdict_widget.set_class(not ok, "-refused")
        self.set_class(not ok, "-refused")
        self.query_one("#basket-prompt", Static).update(Text(b.prompt_line()))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if not isinstance(event.input, WeightInput) or event.input.path not in self.basket.paths:
            return
        try:
            self.basket.set_weight(event.input.path, event.value)
        except CatalogError as err:
            event.input.add_class("-bad")
            self.query_one("#basket-verdict", Static).update(Text(f"✗ {err.message}", style="bold red"))
            return
        event.input.remove_class("-bad")
        self.refresh_verdict()
        self.post_message(self.WeightsChanged())

"""The card form (``e``): edit an entry's sidecar card, checked like ``lutnav card --set``.

The form remembers the digest of the card bytes it opened; saving hands that to
the catalog's writer, which refuses when someone changed the file meanwhile.  A
refused or invalid save keeps everything typed in the form, so nothing is lost.
A card that does not parse opens as raw text with its error, to be fixed here.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from .ordered_input import OrderedInput

from catalog.index.browse import CardDraft, changed_fields, save_card_text
from catalog.cards.card import FIELD_DOCS, parse_set
from catalog.cards.card_file import write_card
from catalog.errors import CatalogError

#: (field, label) the form offers; the rest of the card is kept as it is
FORM_FIELDS = (
    ("trigger_words", "trigger words"), ("strength", "strength"),
    ("strength_range", "strength range"), ("themes", "themes"), ("tags", "tags"),
)


class CardForm(ModalScreen[bool]):
    """Dismissed with ``True`` once the card was written."""

    BINDINGS = [
        Binding("ctrl+s", "save", "save", priority=True),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, draft: CardDraft, title: str) -> None:
        super().__init__()
        self.draft = draft
        self.title_text = title

    def compose(self) -> ComposeResult:
        d = self.draft
        with Vertical(id="card-dialog"):
            state = "new card" if d.digest is None else "card"
            yield Label(Text(f"{state}: {d.path.name} — {self.title_text}", style="bold"))
            yield Static("", id="card-message")
            with VerticalScroll(id="card-fields"):
                if d.fields is None:
                    yield TextArea(d.text, id="card-raw", language=None, soft_wrap=True)
                else:
                    for key, label in FORM_FIELDS:
                        yield Label(label, classes="card-label")
                        yield OrderedInput(d.fields.get(key, ""), placeholder=FIELD_DOCS[key],
                                    id=f"card-{key}", compact=True)
                    yield Label("notes", classes="card-label")
                    yield TextArea(d.fields.get("notes", ""), id="card-notes", soft_wrap=True)
            with Horizontal(id="card-buttons"):
                yield Button("save (ctrl+s)", id="card-save", variant="primary", compact=True)
                yield Button("cancel (esc)", id="card-cancel", compact=True)

    def on_mount(self) -> None:
        if self.draft.error:
            self._say(f"this card does not read as a card: {self.draft.error}\n"
                      "fix the text below and save; the file is unchanged until then", error=True)
        inputs = self.query(Input)
        (inputs.first() if inputs else self.query_one(TextArea)).focus()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.query_one("#card-message", Static).update(Text(text, style="bold red" if error else "green"))

    def texts(self) -> dict[str, str]:
        """What the form holds now, field by field."""
        out = {key: self.query_one(f"#card-{key}", Input).value for key, _ in FORM_FIELDS}
        out["notes"] = self.query_one("#card-notes", TextArea).text
        return out

    def on_input_changed(self, event: Input.Changed) -> None:
        """Check one field as it is typed, with the same parser as ``card --set``."""
        key = (event.input.id or "").removeprefix("card-")
        try:
            parse_set([f"{key}={event.value}"])
        except CatalogError as err:
            event.input.add_class("-bad")
            self._say(err.message, error=True)
        else:
            event.input.remove_class("-bad")
            self._say("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "card-save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        try:
            if self.draft.fields is None:
                save_card_text(self.draft, self.query_one("#card-raw", TextArea).text)
            else:
                items = changed_fields(self.draft, self.texts())
                if not items:
                    self._say("nothing changed")
                    return
                write_card(self.draft.path, parse_set(items), expected_digest=self.draft.digest,
                           base=self.draft.values)
        except CatalogError as err:
            self._say(f"not saved: {err}", error=True)
            self.app.notify(f"card not saved: {err.message}", severity="error")
            return
        except OSError as err:
            self._say(f"not saved: {err}", error=True)
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

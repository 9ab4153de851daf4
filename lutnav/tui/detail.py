"""The detail pane: what the catalog knows about the highlighted entry, and where each fact came from."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, ConsoleOptions, Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from catalog.index.entry import Entry, EntryDetails
from lutnav.output import human_size

#: card fields in the order a person reads them
CARD_ROWS = (
    ("title", "title"), ("trigger words", "trigger_words"), ("strength", "strength"),
    ("range", "strength_range"), ("themes", "themes"), ("tags", "tags"), ("type", "type"),
    ("notes", "notes"), ("about", "description"), ("negative", "negative_prompt"),
    ("base claim", "base_model_claim"), ("source", "source"), ("license", "license"),
    ("parents", "parents"),
)


#: previews are shrunk to this before drawing (a terminal cell is ~10×20 pixels)
PREVIEW_PIXELS = (512, 512)


def _text(value: object) -> str:
    if value is None or value == [] or value == "":
        return ""
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) for v in value) and len(value) == 2:
            return f"{value[0]:g} ~ {value[1]:g}"
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n:,} bytes" if n < 1024 * 1024 else f"{human_size(n)} ({n:,} bytes)"


def header_rows(info: Entry) -> list[tuple[str, str, str]]:
    """(label, value, where it came from) for the facts read from the weights themselves."""
    sources = info.sources or {}
    net = info.network
    fmt = f"{info.format} ({net})" if net and net != info.format else _text(info.format)
    base = _text(info.base_model)
    extra = [x for x in (info.base_variant, info.arch, info.model_kind) if x]
    if extra:
        base += f" ({', '.join(extra)})"
    elif info.base_candidates and base == "unknown":
        base += f" ({' or '.join(info.base_candidates)})"
    if info.base_model_name:
        base += f" — {info.base_model_name}"
    alpha = _text(info.alpha) or "—"
    rows = [
        ("format", fmt, sources.get("format", "")), ("base", base, info.evidence or ""),
        ("rank", _text(info.rank), sources.get("rank", "")),
        ("alpha", alpha, info.alpha_source or ""), ("dtype", _text(info.dtype), ""),
        ("tensors", _text(info.tensor_count), ""), ("parts", _text(info.parts), ""),
        ("size", _size(info.size), ""),
    ]
    return [r for r in rows if r[1]]


def card_rows(info: Entry) -> list[tuple[str, str, str]]:
    sources = info.sources or {}
    rows = [(label, _text(getattr(info, key)), sources.get(key, "")) for label, key in CARD_ROWS]
    # an explicit "no trigger words" (a README's 无, an empty list in a card) is worth showing
    return [(label, value or ("none" if sources.get(key) and label == "trigger words" else value), src)
            for (label, value, src), (_, key) in zip(rows, CARD_ROWS)
            if value or (label == "trigger words" and sources.get(key))]


class FieldList:
    """``label  value ‹source›`` lines with the value wrapped under itself.

    A Rich ``Table.grid`` measures every cell on every frame; this wraps each
    value once per width, which keeps cursor moves cheap at any library size.
    """

    def __init__(self, title: str, rows: list[tuple[str, str, str]]):
        self.title = title
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        yield Text(self.title, style="bold underline")
        pad = max((len(label) for label, _, _ in self.rows), default=0) + 1
        width = max(8, options.max_width - pad)
        for label, value, source in self.rows:
            cell = Text(value)
            if source:
                cell.append(f"  ‹{source}›", style="dim italic")
            for n, line in enumerate(cell.wrap(console, width, overflow="fold")):
                head = Text(label.ljust(pad) if n == 0 else " " * pad, style="bold")
                yield head + line


def render_info(details: EntryDetails) -> Group:
    """The pane's text for one entry (``lib.details``)."""
    info = details.entry
    parts: list = [Text(info.name or info.path, style="bold"), Text(info.path, style="dim")]
    if info.error:
        parts.append(Text(f"✗ broken: {info.error}", style="bold red"))
    card = card_rows(info)
    parts.append(FieldList("card", card) if card else Text("no card — press e to write one", style="dim"))
    parts.append(FieldList("header", header_rows(info)))
    if details.warnings:
        parts.append(Text("warnings", style="bold underline"))
        parts.extend(Text(f"! {w}", style="yellow") for w in details.warnings)
    hashes = details.hashes
    if hashes:
        parts.append(FieldList("hashes", [("AutoV2", hashes["autov2"], ""), ("sha256", hashes["sha256"], ""),
                                      ("tensors", hashes["tensor_sha256"], "")]))
    return Group(*parts)


def load_picture(path: Path):
    """The image, read now and shrunk: the widget redraws from memory, even if the file goes away."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        im.thumbnail(PREVIEW_PIXELS)
        return im.copy()


class DetailPane(VerticalScroll):
    """Card fields with sources, header facts, warnings, hashes and the preview image."""

    def compose(self) -> ComposeResult:
        yield Static(Text("nothing selected", style="dim"), id="detail-text")

    def show_info(self, details: EntryDetails, root: Path) -> None:
        self.query_one("#detail-text", Static).update(render_info(details))
        self._show_preview(next((root / p for p in details.entry.previews or []
                                 if (root / p).is_file()), None))

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.query_one("#detail-text", Static).update(Text(text, style="bold red" if error else "dim"))
        self._show_preview(None)

    def _show_preview(self, path: Path | None) -> None:
        """One image widget, re-pointed as the cursor moves (mounting one per entry costs a reflow)."""
        for note in self.query(".preview-note"):
            note.remove()
        images = self.query(".preview-image")
        if path is None:
            if images:
                images.first().display = False
            return
        try:
            picture = load_picture(path)
            if images:
                image = images.first()
                image.image = picture
                image.display = True
            else:
                from textual_image.widget import Image  # numpy + PIL: paid once a preview is shown

                self.mount(Image(picture, classes="preview-image"))
        except (OSError, ValueError) as err:  # an unreadable image is a fact to show, not a crash
            if images:
                images.first().display = False
            self.mount(Static(Text(f"preview {path.name}: {err}", style="dim"), classes="preview-note"))

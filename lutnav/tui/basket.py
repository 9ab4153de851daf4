"""The basket: entries picked for a blend, their weights, the guard verdict and the prompt line.

Plain data, no widgets: weights are parsed by the same spec parser as ``lutnav
mix a:0.7`` and judged by the same guard function, so the basket can never
accept what the command line refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog.errors import CatalogError
from catalog.index.entry import Entry
from lutnav.mix.guards import Verdict, check_blend
from lutnav.prompt_tags import parse_spec, tag


@dataclass
class BasketItem:
    entry: Entry
    weight: float

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def name(self) -> str:
        return self.entry.name or self.path


@dataclass
class Basket:
    items: list[BasketItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def paths(self) -> set[str]:
        return {i.path for i in self.items}

    def toggle(self, entry: Entry, weight: float) -> bool:
        """Add the entry, or take it out when it is already in; True when added."""
        for i, item in enumerate(self.items):
            if item.path == entry.path:
                del self.items[i]
                return False
        self.items.append(BasketItem(entry, weight))
        return True

    def set_weight(self, path: str, text: str) -> None:
        """Set a weight from what was typed; raises ``SpecError`` like ``lutnav mix name:abc``."""
        item = next(i for i in self.items if i.path == path)
        item.weight = parse_spec(f"{item.name}:{text.strip()}").weight

    @property
    def total(self) -> float:
        return sum(abs(i.weight) for i in self.items)

    def verdict(self, config: dict | None) -> Verdict:
        """The guards' judgement, exactly as ``lutnav mix`` would give it (without --force)."""
        if not self.items:
            return Verdict()
        try:
            return check_blend([i.entry for i in self.items], [i.weight for i in self.items], config)
        except CatalogError as err:  # e.g. a [mix] table with a wrong type
            return Verdict(ok=False, refusals=[str(err)])

    def prompt_line(self) -> str:
        """``<lora:name:0.7> <lora:other:0.3>`` for A1111/Forge."""
        return " ".join(tag(i.name, i.weight) for i in self.items)

    def specs(self) -> list[str]:
        """``name:weight`` specs, as ``lutnav mix``/``lutnav preview`` take them."""
        return [f"{i.path}:{i.weight:g}" for i in self.items]

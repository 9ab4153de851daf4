"""The category → theme tree with entry counts; moving in it filters the table."""

from __future__ import annotations

from itertools import groupby

from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

#: node data: (category, theme); None means "any"
Place = tuple[str | None, str | None]


class FolderTree(Tree[Place]):
    """``style | character | industry | …`` with their themes, as the folders on disk."""

    class Chosen(Message):
        def __init__(self, category: str | None, theme: str | None) -> None:
            super().__init__()
            self.category = category
            self.theme = theme

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("library", data=(None, None), id=id)
        self.show_root = True
        self.guide_depth = 2

    def fill(self, counts: list[tuple[str, str, int]], keep: Place = (None, None)) -> None:
        """Rebuild from ``browse.folder_counts`` rows, keeping ``keep`` highlighted."""
        self.clear()
        total = sum(n for _, _, n in counts)
        self.root.set_label(f"all ({total})")
        self.root.data = (None, None)
        target: TreeNode[Place] = self.root
        for category, rows in groupby(counts, key=lambda r: r[0]):
            rows = list(rows)
            label = category or "(top level)"
            node = self.root.add(f"{label} ({sum(n for _, _, n in rows)})", data=(category, None),
                                 expand=len(counts) < 60)
            if keep == (category, None):
                target = node
            for _, theme, n in rows:
                leaf = node.add_leaf(f"{theme or '(no theme)'} ({n})", data=(category, theme))
                if keep == (category, theme):
                    target = leaf
                    node.expand()
        self.root.expand()
        self.move_cursor(target)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Place]) -> None:
        event.stop()
        category, theme = event.node.data or (None, None)
        self.post_message(self.Chosen(category, theme))

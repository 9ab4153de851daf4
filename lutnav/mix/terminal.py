"""Showing an image in a terminal with half blocks: two pixels per character cell.

Works in any truecolour terminal without a graphics protocol; the CLI uses it
only on a real terminal with colour allowed (``NO_COLOR`` unset).
"""

from __future__ import annotations

from pathlib import Path

UPPER_HALF = "\u2580"


def halfblocks(path: str | Path, width: int = 48) -> str:
    """The image as lines of ``▀`` whose foreground is the upper pixel, background the lower."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        height = max(2, round(img.height * width / img.width))
        height += height % 2
        small = img.resize((width, height))
    px = small.load()
    lines = []
    for y in range(0, height, 2):
        cells = []
        for x in range(width):
            (r1, g1, b1), (r2, g2, b2) = px[x, y], px[x, y + 1]
            cells.append(f"\x1b[38;2;{r1};{g1};{b1}m\x1b[48;2;{r2};{g2};{b2}m{UPPER_HALF}")
        lines.append("".join(cells) + "\x1b[0m")
    return "\n".join(lines)

"""Aspect-ratio buckets and the resize-and-crop that puts an image into its training size.

With ``enable_bucket`` each image trains at the bucket whose aspect ratio is
closest to its own (kohya's scheme: sides are multiples of ``steps``, the area
stays within the base resolution's), so portraits are not cropped to squares.
Without it every image is resized to cover the training size and centre-cropped.
The crop offsets are kept: SDXL is told them (its "crop coordinates" condition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Placement:
    """How one image becomes a training image: the target size, and the crop after resizing."""

    width: int
    height: int
    scaled: tuple[int, int]       # image size after resizing, before the crop
    crop_left: int
    crop_top: int

    @property
    def bucket(self) -> tuple[int, int]:
        return (self.width, self.height)


def make_buckets(base: tuple[int, int], *, min_side: int, max_side: int, steps: int) -> list[tuple[int, int]]:
    """Every (width, height) with sides multiples of ``steps`` within [min_side, max_side] whose area
    is at most the base area, keeping for each width the tallest height that fits."""
    area = base[0] * base[1]
    found = {(base[0] // steps * steps, base[1] // steps * steps)}
    width = min_side
    while width <= max_side:
        height = min(max_side, (area // width) // steps * steps)
        if height >= min_side:
            found.add((width, height))
            found.add((height, width))
        width += steps
    return sorted(found, key=lambda wh: (wh[0] / wh[1], wh[0]))


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the image's (in log space, so 2:1 and 1:2 are even)."""
    ratio = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


def place(width: int, height: int, target: tuple[int, int]) -> Placement:
    """Scale to cover ``target`` keeping the aspect ratio, then centre-crop."""
    tw, th = target
    scale = max(tw / width, th / height)
    sw, sh = max(tw, round(width * scale)), max(th, round(height * scale))
    return Placement(tw, th, (sw, sh), (sw - tw) // 2, (sh - th) // 2)


def placement_for(width: int, height: int, size: tuple[int, int],
                  buckets: list[tuple[int, int]] | None) -> Placement:
    target = nearest_bucket(width, height, buckets) if buckets else size
    return place(width, height, target)


def render(image: Image.Image, placement: Placement) -> Image.Image:
    """The RGB training image for ``placement`` (high-quality downscale, bicubic upscale)."""
    from PIL import Image as PILImage

    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "P", "PA"):  # transparent parts become white, not black
            rgba = image.convert("RGBA")
            background = PILImage.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
    sw, sh = placement.scaled
    shrinking = sw < image.width
    image = image.resize((sw, sh), PILImage.Resampling.LANCZOS if shrinking else PILImage.Resampling.BICUBIC)
    left, top = placement.crop_left, placement.crop_top
    return image.crop((left, top, left + placement.width, top + placement.height))

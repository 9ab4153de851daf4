"""Booru-style tags from a WD14 tagger (an ONNX image classifier) — the anime-LoRA convention.

The model takes square BGR images, 0–255, channels last, padded with white;
``selected_tags.csv`` names its outputs (category 9 = rating, 4 = character,
0 = general).  Tags above the thresholds are joined with commas, most
confident first, underscores written as spaces as kohya's captions expect.
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from trainers.errors import MissingDependency, ModelLoadError

RATING, CHARACTER = "9", "4"


class Tagger:
    def __init__(self, folder: Path, *, threshold: float = 0.35, character_threshold: float = 0.85):
        if importlib.util.find_spec("onnxruntime") is None:
            raise MissingDependency("a WD14 tagger needs onnxruntime", hint="pip install onnxruntime")
        import onnxruntime

        self.threshold, self.character_threshold = threshold, character_threshold
        try:
            self.session = onnxruntime.InferenceSession(str(folder / "model.onnx"),
                                                        providers=onnxruntime.get_available_providers())
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"cannot load the tagger ({str(err).splitlines()[0]})",
                                 path=folder / "model.onnx") from None
        self.input = self.session.get_inputs()[0]
        self.size = int(self.input.shape[1]) if isinstance(self.input.shape[1], int) else 448
        self.tags = _read_tags(folder / "selected_tags.csv")
        outputs = self.session.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != len(self.tags):
            raise ModelLoadError(f"the model has {outputs} outputs but selected_tags.csv names {len(self.tags)}",
                                 path=folder / "selected_tags.csv")

    def _array(self, path: Path):
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            rgba = img.convert("RGBA")
        side = max(rgba.size)
        canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
        canvas.alpha_composite(rgba, ((side - rgba.width) // 2, (side - rgba.height) // 2))
        square = canvas.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        return np.asarray(square, dtype=np.float32)[:, :, ::-1]   # RGB → BGR

    def caption(self, paths: list[Path], batch_size: int = 8) -> Iterator[tuple[Path, str]]:
        import numpy as np

        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            batch = np.stack([self._array(p) for p in chunk])
            probs = self.session.run(None, {self.input.name: batch})[0]
            for path, row in zip(chunk, probs):
                yield path, self._tags_of(row)

    def _tags_of(self, row) -> str:
        picked = []
        for (name, category), p in zip(self.tags, row):
            if category == RATING:
                continue
            limit = self.character_threshold if category == CHARACTER else self.threshold
            if p >= limit:
                picked.append((float(p), name))
        picked.sort(key=lambda item: -item[0])
        return ", ".join(name for _, name in picked)


def _read_tags(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "name" not in rows[0]:
        raise ModelLoadError("expected a CSV with a `name` column (and `category`)", path=path)
    # kaomoji such as ^_^ keep their underscores
    return [(r["name"] if len(r["name"]) <= 3 else r["name"].replace("_", " "), r.get("category", "0"))
            for r in rows]

"""Captions from an image-to-text model (BLIP, VisionEncoderDecoder, …) with transformers.

Greedy decoding, so the same images always get the same captions; images go
through the model in small batches to keep memory flat on a large folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trainers.errors import ModelLoadError


class Captioner:
    """Writes one sentence per image."""

    def __init__(self, folder: Path, *, device: str | None = None, max_new_tokens: int = 40):
        import torch
        from transformers import AutoConfig

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.max_new_tokens = max_new_tokens
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            self.model = self._model_class(config.model_type).from_pretrained(folder, local_files_only=True)
            self.images, self.tokenizer = self._preprocessors(folder)
        except (OSError, ValueError, KeyError) as err:
            raise ModelLoadError(f"cannot load the captioning model ({str(err).splitlines()[0]})",
                                 path=folder) from None
        self.model.to(self.device).eval()

    @staticmethod
    def _model_class(model_type: str):
        import transformers

        if model_type == "vision-encoder-decoder":
            return transformers.VisionEncoderDecoderModel
        if model_type == "blip":
            return transformers.BlipForConditionalGeneration
        return transformers.AutoModelForImageTextToText

    @staticmethod
    def _preprocessors(folder: Path):
        """(image processor, tokenizer): a combined processor when the folder has one."""
        from transformers import AutoImageProcessor, AutoTokenizer

        images = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return images, tokenizer

    def caption(self, paths: list[Path], batch_size: int = 8) -> Iterator[tuple[Path, str]]:
        import torch
        from PIL import Image

        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            pictures = []
            for path in chunk:
                with Image.open(path) as img:
                    pictures.append(img.convert("RGB"))
            pixels = self.images(images=pictures, return_tensors="pt").pixel_values.to(self.device)
            with torch.no_grad():
                out = self.model.generate(pixel_values=pixels, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          num_beams=1)
            texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
            for path, text in zip(chunk, texts):
                yield path, " ".join(text.split())

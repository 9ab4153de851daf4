"""``lutnav label DIR``: caption a folder of training images with a model already on this machine."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("label")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--model", "-m", "model", default=None, metavar="PATH|REPO",
              help="Captioner (BLIP, VisionEncoderDecoder…) or WD14 tagger folder, or a hub id in the local "
                   "cache. Default: the first known one found in the cache; nothing is downloaded.")
@click.option("--trigger", "-t", default=None, help="Trigger word put first in every caption.")
@click.option("--format", "fmt", type=click.Choice(["csv", "txt"]), default="csv", show_default=True,
              help="metadata.csv (filename,prompt) or a .txt file beside each image.")
@click.option("--overwrite", is_flag=True, help="Replace existing captions (refused otherwise).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.35, show_default=True,
              help="WD14 taggers: keep general tags at least this likely.")
@click.option("--max-new-tokens", type=click.IntRange(1, 512), default=40, show_default=True,
              help="Captioners: longest caption, in tokens.")
@click.option("--batch-size", type=click.IntRange(1, 256), default=8, show_default=True)
def label_cmd(folder: Path, model: str | None, trigger: str | None, fmt: str, overwrite: bool, threshold: float,
              max_new_tokens: int, batch_size: int) -> None:
    """Write captions for every image in DIR (or its kohya 10_name folders).

    `lutnav train` then reads them as they are: metadata.csv first, else the
    .txt files. Existing captions are never replaced without --overwrite.
    """
    from trainers.label.models import find_model
    from trainers.label.write import check_overwrite, find_images, label_folder

    found = find_model(model)
    check_overwrite(folder, find_images(folder), fmt, overwrite)   # refuse before loading a model
    if found.kind == "tagger":
        from trainers.label.tagger import Tagger

        labeller = Tagger(found.path, threshold=threshold)
    else:
        from trainers.label.captioner import Captioner

        labeller = Captioner(found.path, max_new_tokens=max_new_tokens)
    click.echo(f"labelling with {found.name} ({found.kind})", err=True)

    from .output import run_with_progress

    result = run_with_progress(label_folder(folder, lambda paths: labeller.caption(paths, batch_size=batch_size),
                                            fmt=fmt, trigger=trigger, overwrite=overwrite), "labelling", log=True)
    where = result.written[0] if fmt == "csv" else f"{len(result.written)} .txt files"
    click.echo(f"captioned {result.images} images → {where}")


COMMANDS = [label_cmd]

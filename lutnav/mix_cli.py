"""``lutnav mix``, ``convert``, ``check``, ``preview`` and ``grid``: thin commands over lutnav.mix.

Each command parses, calls the library and prints. ``mix`` builds a
:class:`~lutnav.mix.request.MixRequest` (the recipe's values merged with the
options) and prints the lines :func:`lutnav.mix.runner.run` says: the guards'
verdict on stderr, and a refusal exits 1 before anything is written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog.errors import CatalogError

from .context import ensure_indexed, locate, open_library
from .output import color, echo_json, run_with_progress, shown

if TYPE_CHECKING:
    from catalog.progress import Progress, Work

    from .mix.request import Line, MixRequest, MixResult

DIFFUSERS_HELP = "needs `pip install 'lutnav[train]'`"


def _sampling_options(f):
    for opt in reversed([
        click.option("--prompt", help="Prompt (default: 'a picture' + the trigger words)."),
        click.option("--negative", "negative_prompt", help="Negative prompt (default: the card's)."),
        click.option("--seed", type=int, default=1, show_default=True),
        click.option("--steps", type=click.IntRange(1, 500), default=None,
                     help="Sampling steps (default: [preview] steps in .lutnav/config.toml, else 20)."),
        click.option("--size", type=click.IntRange(64, 2048), default=None,
                     help="Image width and height in pixels, a multiple of 8 "
                          "(default: [preview] size in .lutnav/config.toml, else 512)."),
        click.option("--guidance", type=float, default=7.0, show_default=True),
        click.option("--model", help="Checkpoint .safetensors or diffusers folder to sample with "
                     "(default: [models] in .lutnav/config.toml)."),
    ]):
        f = opt(f)
    return f


def _settings(prompt, negative_prompt, seed, steps, size, guidance):
    from .mix.preview import Settings

    if size is not None and size % 8:
        raise click.BadParameter(f"{size} is not a multiple of 8", param_hint="--size")
    return Settings(prompt, negative_prompt, seed, steps, size, guidance)


def _show(paths: list[Path]) -> None:
    from .mix.terminal import halfblocks

    for p in paths:
        if sys.stdout.isatty() and color():
            click.echo(halfblocks(p))
        click.echo(str(p))


@click.command("mix")
@click.argument("specs", nargs=-1)
@click.option("--recipe", type=click.Path(path_type=Path, dir_okay=False),
              help="A saved blend (schemas/mix-recipe.schema.json).")
@click.option("--comfy", is_flag=True, default=None, help="Print a ComfyUI LoraLoader chain (API JSON).")
@click.option("--checkpoint", default="model.safetensors", show_default=True,
              help="ckpt_name of the chain's checkpoint loader (with --comfy).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Merge into this .safetensors file (exact rank concatenation).")
@click.option("--rank", type=int, default=None, help="With --out: SVD-compress every module to this rank.")
@click.option("--to", "to", type=click.Choice(["kohya", "comfyui", "diffusers", "peft"]), default=None,
              help="With --out on a transformer family (Flux, Qwen-Image, Wan, …): the key spelling to write "
                   "(default: the inputs' own when their usual client loads it). SD merges are kohya.")
@click.option("--into-model", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="With --out: bake the blend into this full .safetensors checkpoint.")
@click.option("--overwrite", is_flag=True, default=None, help="Replace an existing --out file.")
@click.option("--force", is_flag=True, default=None,
              help="Pass the soft guards (total strength, count, weight range); reasons still print.")
@click.option("--preview", is_flag=True, help=f"Sample each LoRA and the blend ({DIFFUSERS_HELP}).")
@_sampling_options
@click.pass_context
def mix_cmd(ctx, specs, recipe, comfy, checkpoint, out, rank, to, into_model, overwrite, force, preview,
            prompt, negative_prompt, seed, steps, size, guidance, model) -> None:
    """Blend LoRAs: guards, then the A1111/Forge tag line (or a merge, a chain, previews).

    SPECS are NAME[:WEIGHT] (weight defaults to the card's strength, else 1.0).
    Guards from [mix] in .lutnav/config.toml: max_loras (2), max_total (1.0),
    weight_range ([-2, 2]); --force passes them. Different base models, broken or
    pickle entries and the same LoRA twice are always refused.
    """
    from lutnav.prompt_tags import parse_specs

    from .mix.recipe import load_recipe
    from .mix.request import MixRequest, check_options

    settings = _settings(prompt, negative_prompt, seed, steps, size, guidance)
    if recipe is not None:
        if specs:
            raise click.UsageError("give either SPECS or --recipe, not both")
        r = load_recipe(recipe)
        parsed = r.specs
        out = out if out is not None else r.out
        rank = rank if rank is not None else r.rank
        overwrite = overwrite if overwrite is not None else r.overwrite
        force = force if force is not None else r.force
        comfy = comfy if comfy is not None else r.comfy
        settings = _from_recipe(settings, r.preview, ctx)
    elif not specs:
        raise click.UsageError("give at least one NAME[:WEIGHT], or --recipe FILE")
    else:
        parsed = parse_specs(specs)
    with _usage_errors():
        check_options(out=out, rank=rank, into_model=into_model)
    lib = open_library(ctx)
    ensure_indexed(lib)
    request = MixRequest(lib, parsed, out=out, rank=rank, to=to, into_model=into_model,
                         overwrite=bool(overwrite), force=bool(force), comfy=bool(comfy),
                         checkpoint=checkpoint, preview=settings if preview else None, model=model)
    with _usage_errors():
        result = _run_mix(request)
    if not result.ok:
        ctx.exit(1)
    if result.sampling is not None:
        _show(run_with_progress(result.sampling, "preview"))


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A mix's options that do not fit together read as click's usage errors (exit 2)."""
    from .mix.errors import MixUsageError

    try:
        yield
    except MixUsageError as err:
        raise click.UsageError(str(err)) from None


def _run_mix(request: MixRequest) -> MixResult:
    """Drive :func:`lutnav.mix.runner.run`, printing its lines as they come.

    The bar is drawn from the first step on, so a mix without long work (a tag
    line, a refusal) draws none; lines said while it is drawn wait until it closes.
    """
    from .mix.runner import run

    held: list[Line] | None = None

    def say(line: Line) -> None:
        if held is not None:
            held.append(line)
        else:
            _print(line)

    work = run(request, say=say)
    try:
        first = next(work)
    except StopIteration as stop:
        return stop.value
    held = []
    try:
        return run_with_progress(_resumed(first, work), "baking" if request.output == "bake" else "merging")
    finally:
        for line in held:
            _print(line)


def _resumed(first: Progress, work: Work[MixResult]) -> Work[MixResult]:
    yield first
    return (yield from work)


def _print(line: Line) -> None:
    if line.json is not None:
        echo_json(line.json)
    else:
        click.echo(line.text, err=line.err)


def _from_recipe(settings, table: dict, ctx):
    """Recipe [preview] values fill in the options the command line left at their defaults."""
    names = {"prompt": "prompt", "negative_prompt": "negative_prompt", "seed": "seed",
             "steps": "steps", "size": "size", "guidance": "guidance"}
    for key, attr in names.items():
        source = ctx.get_parameter_source(attr)
        if key in table and source is not click.core.ParameterSource.COMMANDLINE:
            setattr(settings, attr, table[key])
    return settings


@click.command("convert")
@click.argument("source")
@click.option("--to", "to", type=click.Choice(["kohya", "diffusers", "comfyui", "peft"]), required=True,
              help="kohya or diffusers for SD; for transformer families any spelling its clients load "
                   "(`lutnav check` says which).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: <stem>.<to>.safetensors beside the source).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.pass_context
def convert_cmd(ctx, source: str, to: str, out: Path | None, overwrite: bool) -> None:
    """Rewrite a LoRA's key names: kohya (every client) or diffusers (lora_A/lora_B).

    SOURCE is an entry name, or a path (with a '/', or starting with '.' or '~'). Tensor data is copied as is; the real
    alpha is kept (kohya) or folded into lora_B where alpha != rank (diffusers).
    Transformer families (Flux, Qwen-Image, Wan, …) also convert --to comfyui or
    peft; a target no client loads for that family is refused with the ones that work.
    XLabs Flux files become the original layers they adapt (exact).
    """
    from .mix.convert import convert_file, default_output

    found = locate(ctx, source)
    path, lib = found.path, found.lib
    _check_writable(ctx, lib, Path(out) if out is not None else default_output(path, to))
    result = convert_file(path, to, out, overwrite=overwrite)
    extra = f"; alpha folded into lora_B for {result.folded} modules" if result.folded else ""
    click.echo(f"{result.modules} modules, {result.tensors} tensors, {to} names{extra}", err=True)
    if result.card is not None:
        click.echo(shown(f"card fields carried over into {result.card.name}"), err=True)
    _index_if_inside(ctx, lib, result.path)
    click.echo(shown(result.path))


def _check_writable(ctx, lib, out: Path) -> None:
    """Refuse before converting when the output cannot be written (or indexed)."""
    from catalog.index.library import check_folder_writable

    if lib is None:
        try:
            lib = open_library(ctx)
        except CatalogError:
            check_folder_writable(out)
            return
    lib.check_writable(out)


def _index_if_inside(ctx, lib, path: Path) -> None:
    from catalog.errors import CatalogError

    try:
        lib = lib or open_library(ctx)
        lib.relpath(path)
    except CatalogError:
        return
    lib.scan_all()


@click.command("check")
@click.argument("name")
@click.option("--client", type=click.Choice(["comfyui", "a1111", "diffusers", "all"]), default="all",
              show_default=True)
@click.option("--keys", "show_keys", is_flag=True, help="List every dropped key.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def check_cmd(ctx, name: str, client: str, show_keys: bool, as_json: bool) -> None:
    """Which of a LoRA's keys a client maps, and which it would silently drop."""
    from catalog.detect.classify import classify
    from catalog.detect.clients import CLIENTS, check_client
    from catalog.files.header import read_header

    from .mix.tensors import lora_weights

    path = locate(ctx, name).path
    header = read_header(lora_weights(path))
    config = path / "adapter_config.json" if path.is_dir() else None
    family = classify(header, _json_or_none(config)).base_model
    keys = list(header.tensors)
    reports = [check_client(keys, c, family) for c in (CLIENTS if client == "all" else [client])]
    if as_json:
        echo_json([{"client": r.client, "family": family, "total": r.total, "mapped": r.mapped,
                    "dropped": r.dropped, "unknown": r.unknown, "reason": r.reason, "fix": r.fix}
                   for r in reports])
        return
    click.echo(f"{path.name}: base model {family}")
    for r in reports:
        click.echo(r.summary())
        shown = r.dropped if show_keys else r.dropped[:5]
        for key in shown:
            click.echo(f"  dropped: {key}")
        if len(r.dropped) > len(shown):
            click.echo(f"  … {len(r.dropped) - len(shown)} more (--keys lists them)")


def _json_or_none(path: Path | None) -> dict | None:
    """A PEFT folder's adapter_config.json (for its base model), or None."""
    import json

    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@click.command("preview")
@click.argument("name")
@_sampling_options
@click.pass_context
def preview_cmd(ctx, name, prompt, negative_prompt, seed, steps, size, guidance, model) -> None:
    """Sample images of one entry, stored as its previews (needs lutnav[train])."""
    from .mix.preview import model_for, preview_defaults, require_diffusers
    from .mix.sampling import image_entry, preview_entry

    settings = _settings(prompt, negative_prompt, seed, steps, size, guidance)
    lib = open_library(ctx)
    ensure_indexed(lib)
    preview_defaults(settings, lib)
    _, entry, _ = image_entry(lib, name)
    model_for(lib, entry.base_model, model)  # config and family first: answers before torch loads
    require_diffusers()
    _show(run_with_progress(preview_entry(lib, name, settings, model=model), "preview"))


@click.command("grid")
@click.argument("name")
@click.option("--weights", default="0.4,0.6,0.8,1.0", show_default=True,
              help="Comma-separated weights (columns).")
@click.option("--checkpoints", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of checkpoints (rows): .safetensors files and/or diffusers folders; "
                   "ones of another family than the LoRA's are skipped. Default: the configured base model.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Sheet to write (default: <stem>.grid.png beside the LoRA).")
@_sampling_options
@click.pass_context
def grid_cmd(ctx, name, weights, checkpoints, out, prompt, negative_prompt, seed, steps, size,
             guidance, model) -> None:
    """Checkpoint x weight sheet of one LoRA, every cell labelled (needs lutnav[train])."""
    from .mix.grid import checkpoints_in, grid_entry, parse_weights
    from .mix.preview import model_for, preview_defaults, require_diffusers
    from .mix.sampling import image_entry

    settings = _settings(prompt, negative_prompt, seed, steps, size, guidance)
    values = parse_weights(weights)
    lib = open_library(ctx)
    ensure_indexed(lib)
    preview_defaults(settings, lib)
    _, entry, _ = image_entry(lib, name)
    if checkpoints:  # config and family first: answers before torch loads
        checkpoints_in(checkpoints, lib, entry.base_model)
    else:
        model_for(lib, entry.base_model, model)
    require_diffusers()
    path = run_with_progress(grid_entry(lib, name, values, settings, checkpoints=checkpoints, model=model,
                                        out=out, note=lambda text: click.echo(f"note: {text}", err=True)),
                             "grid")
    _show([path])


COMMANDS = [mix_cmd, convert_cmd, check_cmd, preview_cmd, grid_cmd]

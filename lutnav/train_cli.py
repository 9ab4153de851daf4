"""``lutnav train CFG`` and ``lutnav chat NAME``: thin commands over :mod:`trainers`.

Nothing heavy is imported at module level; ``train --check`` never loads a
model, and only a real run imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _library_root(ctx: click.Context, library: Path | None) -> Path:
    return library or ctx.find_root().obj["root"]


@click.command("train")
@click.argument("config_file", metavar="CFG", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Validate the config and the data, print the plan, train nothing.")
@click.option("--library", "library", type=click.Path(path_type=Path), default=None,
              help="File the result into this library (default: the global --library).")
@click.option("--merge-into", "merge_into", type=click.Path(path_type=Path), default=None,
              help="Also write a merged full model here (text LoRAs, for tools without PEFT).")
@click.pass_context
def train_cmd(ctx: click.Context, config_file: Path, check: bool, library: Path | None,
              merge_into: Path | None) -> None:
    """Train a LoRA from a TOML config and file it into the library.

    The config's task_type picks the trainer: image-generation (an SD1/SD2/SDXL
    LoRA with kohya key names, loadable in A1111/Forge, ComfyUI and diffusers)
    or text-generation (a PEFT adapter for a causal LM). Checkpoints go to output_dir every save_steps; Ctrl-C
    saves one and stops, and running the same command again resumes.

    On several processes: `accelerate launch --num_processes N -m lutnav train CFG`
    or `torchrun --nproc_per_node N -m lutnav train CFG`; only the main process
    saves, samples, logs, prints and files the result.
    """
    from trainers.plan import launched_rank

    if launched_rank() == 0:
        _train(ctx, config_file, check, library, merge_into, main=True)
        return
    _quiet_libraries()
    try:
        _train(ctx, config_file, check, library, merge_into, main=False)
    except Exception as exc:
        if not _is_shared_error(exc):
            raise
        sys.exit(1)  # every process meets this error; the main process reports it, once


def _quiet_libraries() -> None:
    """Processes other than the main one keep the libraries' progress bars and notices to themselves
    (set before transformers/diffusers are imported, which read these once)."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["DIFFUSERS_VERBOSITY"] = "error"


def _is_shared_error(exc: Exception) -> bool:
    """An error every process raises alike (config, data, resume, set-up): only one should say it.
    Out of memory may strike one process only: that one is reported by the process it hit."""
    from trainers.errors import OutOfMemory, TrainerError

    return isinstance(exc, TrainerError) and not isinstance(exc, OutOfMemory)


def _train(ctx: click.Context, config_file: Path, check: bool, library: Path | None, merge_into: Path | None,
           *, main: bool) -> None:
    from trainers.config import load_config
    from trainers.run import check as plan_run

    if config_file.is_dir():
        raise click.ClickException(f"{config_file}: is a folder; give the training config file "
                                   "(a .toml, see schemas/train-config.schema.json)")
    config = load_config(config_file)
    plan = plan_run(config)
    root = _library_root(ctx, library)
    named = library is not None or ctx.find_root().obj.get("explicit")
    missing = "" if root.is_dir() else (" (will be created)" if named else
                                        " (missing: the result will stay in output_dir)")
    if main:
        for line in [*plan.lines(), *_launch_warnings(), f"library         {root}{missing}"]:
            click.echo(line, err=not check)
    if root.is_dir():  # a taken name is refused now, not after training
        from trainers.handoff import check_filing

        check_filing(root, category=config.category, theme=config.theme, name=config.name,
                     is_folder=config.task_type == "text-generation", overwrite=config.overwrite)
    if check:
        return
    trained = _run(config, plan, show=main)
    try:
        if trained.is_main_process:
            _report(ctx, config_file, config, trained, library, merge_into)
    finally:
        trained.release()  # the other processes wait here until the result is filed, then exit 0


def _report(ctx, config_file: Path, config, trained, library: Path | None, merge_into: Path | None) -> None:
    result = trained.result
    if result.interrupted:
        from trainers.plan import launched_processes

        n = launched_processes()
        again = f"`lutnav train {config_file}` resumes" if n == 1 else \
            f"the same launch command on {n} processes resumes"
        click.echo(f"interrupted at step {result.step}/{result.total}; {again}", err=True)
        sys.exit(130)
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    click.echo(f"trained {result.step} steps in {result.seconds:.0f} s → {trained.artifact}"
               + (f"  ({metrics})" if metrics else ""))
    _file(ctx, config, trained, library)
    if merge_into is not None:
        from trainers.text.merge import merge_adapter

        if config.task_type != "text-generation":
            raise click.UsageError("--merge-into applies to text-generation adapters")
        click.echo(f"merged model → {merge_adapter(trained.artifact, merge_into)}")


def _run(config, plan, *, show: bool = True):
    """Train, drawing the run on the main process (a bar on a terminal, a line every tenth of the
    run and one per save in a log); the other processes keep quiet."""
    from catalog.progress import finish
    from trainers.run import train

    from .output import run_with_progress

    return run_with_progress(train(config, plan), "training", log=True) if show else finish(train(config, plan))


def _launch_warnings() -> list[str]:
    """`accelerate launch --cpu --num_processes N` without mpirun starts one process, silently."""
    import os

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in os.environ \
            and "WORLD_SIZE" not in os.environ:
        return ["warning: accelerate launch --cpu started one process (its CPU mode spreads over processes "
                "only with mpirun); for N processes run `accelerate launch --multi_gpu --num_processes N -m "
                "lutnav train CFG` or `torchrun --nproc_per_node N -m lutnav train CFG`"]
    return []


def _file(ctx: click.Context, config, trained, library: Path | None) -> None:
    from trainers.handoff import file_into_library

    root = _library_root(ctx, library)
    if not root.is_dir():
        if library is None and not ctx.find_root().obj.get("explicit"):
            click.echo(f"no library at {root} (the default, and it does not exist); the result stays in "
                       f"{config.output_dir} — pass --library DIR to file it (DIR is created)", err=True)
            return
        root.mkdir(parents=True)  # named by the user: made, as `lutnav demo` makes one
        click.echo(f"created library {root}", err=True)
    filed = file_into_library(root, trained.artifact, category=config.category, theme=config.theme,
                              name=config.name, card=trained.card, previews=trained.previews,
                              overwrite=config.overwrite)
    verb = "replaced" if filed.replaced else "filed"
    click.echo(f"{verb} {filed.rel} in {root}")


@click.command("chat")
@click.argument("name")
@click.option("--prompt", "-p", default=None, help="Answer this one prompt and exit (else an interactive chat).")
@click.option("--system", default=None, help="System message for the conversation.")
@click.option("--base", default=None, help="Base model folder (default: the one the adapter names when it "
              "is on this machine, else [models] llm in .lutnav/config.toml).")
@click.option("--max-new-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 5), default=0.0, show_default=True,
              help="0 decodes greedily.")
@click.pass_context
def chat_cmd(ctx: click.Context, name: str, prompt: str | None, system: str | None, base: str | None,
             max_new_tokens: int, temperature: float) -> None:
    """Talk to a text LoRA: loads its base model and the adapter, streams the reply.

    NAME is a library entry (name or path) or an adapter folder.
    """
    from .llm_base import llm_base

    folder, lib = _adapter_folder(ctx, name)
    base = llm_base(lib, folder, base)  # before torch: a missing model is said at once
    from trainers.text.chat import generate, load_adapter_model

    model, tokenizer = load_adapter_model(folder, base)
    messages = [{"role": "system", "content": system}] if system else []

    def reply(text: str) -> None:
        messages.append({"role": "user", "content": text})
        answer = generate(model, tokenizer, messages, max_new_tokens=max_new_tokens, temperature=temperature,
                          on_text=lambda piece: click.echo(piece, nl=False))
        click.echo()
        messages.append({"role": "assistant", "content": answer})

    if prompt is not None:
        reply(prompt)
        return
    click.echo("type a message; an empty line or Ctrl-D ends", err=True)
    while True:
        try:
            text = input("> ")
        except EOFError:
            break
        if not text.strip() or text.strip() in ("exit", "quit"):
            break
        reply(text)


def _adapter_folder(ctx: click.Context, name: str):
    """(adapter folder, the library when there is one)."""
    from catalog.errors import EntryNotFound

    from .context import locate

    found = locate(ctx, name)
    lib = found.lib
    if lib is None:
        from catalog.errors import CatalogError

        from .context import open_library

        try:
            lib = open_library(ctx)
        except CatalogError:  # an adapter folder given by path works without a library
            lib = None
    if (found.path / "adapter_config.json").is_file():
        return found.path, lib
    what = "a folder" if found.path.is_dir() else "a file"
    if found.rel is not None and found.lib is not None:
        entry = found.lib.get(found.rel)
        from .mix.guards import entry_problem

        problem = entry_problem(entry)
        if entry.error:
            raise EntryNotFound(problem)
        what = "a pickle file" if entry.format == "pickle" else f"a {entry.base_model} LoRA"
    raise EntryNotFound(f"{what}, not a PEFT text adapter (no adapter_config.json)", path=found.path,
                        hint="`lutnav ls --format peft` lists the text adapters")


COMMANDS = [train_cmd, chat_cmd]

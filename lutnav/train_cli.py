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

    config = load_config(config_file)
    plan = plan_run(config)
    root = _library_root(ctx, library)
    missing = "" if root.is_dir() else " (missing: the result will stay in output_dir)"
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
    from trainers.progress import drain, follow
    from trainers.run import train

    return follow(train(config, plan)) if show else drain(train(config, plan))


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
        click.echo(f"no library at {root}; the result stays in {config.output_dir} "
                   "(pass --library DIR to file it)", err=True)
        return
    filed = file_into_library(root, trained.artifact, category=config.category, theme=config.theme,
                              name=config.name, card=trained.card, previews=trained.previews,
                              overwrite=config.overwrite)
    verb = "replaced" if filed.replaced else "filed"
    click.echo(f"{verb} {filed.rel} in {root}")


@click.command("chat")
@click.argument("name")
@click.option("--prompt", "-p", default=None, help="Answer this one prompt and exit (else an interactive chat).")
@click.option("--system", default=None, help="System message for the conversation.")
@click.option("--base", default=None, help="Base model folder (default: the one the adapter names).")
@click.option("--max-new-tokens", type=click.IntRange(1, 32768), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 5), default=0.0, show_default=True,
              help="0 decodes greedily.")
@click.pass_context
def chat_cmd(ctx: click.Context, name: str, prompt: str | None, system: str | None, base: str | None,
             max_new_tokens: int, temperature: float) -> None:
    """Talk to a text LoRA: loads its base model and the adapter, streams the reply.

    NAME is a library entry (name or path) or an adapter folder.
    """
    from trainers.text.chat import generate, load_adapter_model

    folder = _adapter_folder(ctx, name)
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


def _adapter_folder(ctx: click.Context, name: str) -> Path:
    direct = Path(name)
    if (direct / "adapter_config.json").is_file():
        return direct
    from catalog.errors import EntryNotFound

    from .context import ensure_indexed, open_library

    lib = open_library(ctx)
    ensure_indexed(lib)
    entry = lib.get(name)
    path = lib.abspath(entry["path"])
    if entry.get("format") != "peft" or not path.is_dir():
        raise EntryNotFound(f"{entry['path']} is a {entry.get('format')} LoRA, not a PEFT text adapter",
                            path=path, hint="`lutnav ls --format peft` lists the text adapters")
    return path


COMMANDS = [train_cmd, chat_cmd]

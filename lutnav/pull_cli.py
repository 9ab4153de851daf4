"""CLI verbs that move LoRAs in and out: pull, outdated, export, link."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from catalog.errors import CatalogError

from .context import ensure_indexed, open_library
from .output import echo_json, pause_progress, run_with_progress, shown, table


def _terminal() -> bool:
    """Questions only when a person can answer them."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask_files(labels: Sequence[str]) -> list[int] | None:
    pause_progress()
    click.echo("Several LoRAs to choose from:")
    for i, label in enumerate(labels, 1):
        click.echo(f"  {i}. {label}")
    while True:
        answer = click.prompt("Pull which? (numbers separated by spaces, or 'all')", default="1")
        if answer.strip().lower() == "all":
            return list(range(len(labels)))
        try:
            picked = [int(x) - 1 for x in answer.replace(",", " ").split()]
        except ValueError:
            picked = []
        if picked and all(0 <= i < len(labels) for i in picked):
            return list(dict.fromkeys(picked))
        click.echo(f"give numbers from 1 to {len(labels)}", err=True)


def _ask_category() -> str | None:
    pause_progress()  # asked after the fetch: the question goes below the bar
    return click.prompt("Category (style, character, industry, …)", default="uncategorized").strip() or None


def _describe(placed) -> str:
    v = placed.verified
    facts = ", ".join(str(x) for x in (v.base_model, v.format, f"rank {v.rank}" if v.rank else None) if x)
    extra = f", {len(placed.previews)} preview(s)" if placed.previews else ""
    if placed.status == "duplicate":
        return f"skipped: same tensors as {placed.rel} (pass --force to add a second copy)"
    verb = {"new": "added", "replaced": "replaced", "unchanged": "already there:"}[placed.status]
    return f"{verb} {placed.rel} ({facts}{extra})"


@click.command("pull")
@click.argument("source", required=False)
@click.option("--revision", "-r", help="Branch, tag or commit of a Hub repo (default: main).")
@click.option("--file", "files", multiple=True,
              help="Pull this file (or PEFT folder) of the repo; repeatable.")
@click.option("--all", "take_all", is_flag=True, help="Pull every LoRA of the repo.")
@click.option("--category", help="First folder level (default: from the repo's tags, else asked).")
@click.option("--theme", help="Second folder level (default: from the repo or folder name).")
@click.option("--name", help="Entry name (default: the file name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing different entry of the same name.")
@click.option("--force", is_flag=True,
              help="Add the entry even when the library already holds the same tensors (under another name).")
@click.option("--update-all", is_flag=True, help="Update every entry whose Hub repo has a newer commit.")
@click.option("--keep-prev", is_flag=True,
              help="With --update-all: keep old weights as <name>.prev.safetensors.")
@click.pass_context
def pull_cmd(ctx, source, revision, files, take_all, category, theme, name, overwrite, force, update_all,
             keep_prev) -> None:
    """Fetch a LoRA from the Hugging Face Hub (OWNER/NAME), a folder or a zip into the library.

    Only the chosen files are downloaded (never .ckpt/.pt/.bin pickles); each is
    verified as a LoRA before it enters the library, filed under
    <category>/<theme>/ with a card made from the repo's model card, and indexed.
    """
    from .pull import hub
    from .pull.local import looks_local, open_local
    from .pull.pipeline import HubSource, PullOptions, pull

    lib = open_library(ctx, create=True)
    hub.quiet_client()
    if update_all:
        if source:
            raise click.UsageError("--update-all takes no SOURCE")
        _update_all(lib, keep_prev)
        return
    if not source:
        raise click.UsageError("give a Hub repo id (OWNER/NAME) or a path, or --update-all")
    if looks_local(source):
        if revision:
            raise click.UsageError("--revision applies to Hub repos, not to local files")
        src = open_local(Path(source))
    else:
        src = HubSource(hub.fetch_snapshot(source, revision))
    opts = PullOptions(revision, tuple(files), take_all, category, theme, name, overwrite, force)
    ask = _terminal()
    try:
        report = run_with_progress(pull(lib, src, opts, ask_files=_ask_files if ask else None,
                                        ask_category=_ask_category if ask else None), "pulling")
    except OSError as exc:
        if isinstance(exc, CatalogError):
            raise
        where = exc.filename or lib.root
        raise click.ClickException(f"{where}: {exc.strerror or exc} — nothing was added") from None
    finally:
        if hasattr(src, "close"):
            src.close()
    for line in report.warnings:
        click.echo(f"warning: {line}", err=True)
    for line in report.refused:
        click.echo(f"refused: {line}", err=True)
    for placed in report.placed:
        click.echo(_describe(placed))


def _update_all(lib, keep_prev: bool) -> None:
    from .pull.errors import PullError
    from .pull.update import find_outdated, update_entry

    ensure_indexed(lib)
    items, problems, checked = find_outdated(lib)
    for line in problems:
        click.echo(f"warning: {line}", err=True)
    if not items:
        click.echo(_up_to_date(checked, problems))
        return
    failed = 0
    for item in items:
        try:
            run_with_progress(update_entry(lib, item, keep_prev=keep_prev), f"updating {item.name}")
            click.echo(f"updated {item.rel} ({item.repo_id} {item.commit[:8]} -> {item.latest[:8]})")
        except PullError as exc:
            failed += 1
            click.echo(f"not updated: {exc}", err=True)
    if failed:
        raise click.ClickException(f"{failed} of {len(items)} entries could not be updated")


@click.command("outdated")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of outdated entries.")
@click.pass_context
def outdated_cmd(ctx, as_json: bool) -> None:
    """Entries pulled from the Hub whose repo has a newer commit on main."""
    from .pull import hub
    from .pull.update import find_outdated

    lib = open_library(ctx)
    hub.quiet_client()
    ensure_indexed(lib)
    items, problems, checked = find_outdated(lib)
    for line in problems:
        click.echo(f"warning: {line}", err=True)
    if as_json:
        echo_json([item.__dict__ for item in items])
    elif items:
        table(((i.name, i.repo_id, i.commit[:10], i.latest[:10], i.rel) for i in items),
              ("name", "repo", "pulled", "latest", "path"))
    else:
        click.echo(_up_to_date(checked, problems))


def _up_to_date(checked: int, problems: list[str]) -> str:
    if problems and not checked:
        return "no Hub entry could be checked"
    return f"{checked} Hub entries checked; all up to date"


@click.command("export")
@click.argument("entry")
@click.option("--zip", "out", type=click.Path(path_type=Path), required=True, help="Zip file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing zip.")
@click.pass_context
def export_cmd(ctx, entry: str, out: Path, overwrite: bool) -> None:
    """Write ENTRY's weights, cards and previews to a zip, to share or to pull elsewhere."""
    from .export import export_zip

    lib = open_library(ctx)
    ensure_indexed(lib)
    members = export_zip(lib, entry, out, overwrite=overwrite)
    click.echo(shown(f"wrote {out} ({len(members)} files: {', '.join(members)})"))


@click.command("link")
@click.option("--webui", type=click.Path(path_type=Path), help="AUTOMATIC1111/Forge folder.")
@click.option("--comfyui", type=click.Path(path_type=Path), help="ComfyUI folder.")
@click.option("--copy", "copies", multiple=True, metavar="NAME",
              help="With --webui: copy this entry instead of linking the library; repeatable.")
@click.option("--undo", is_flag=True, help="Remove what an earlier link made.")
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
@click.pass_context
def link_cmd(ctx, webui, comfyui, copies, undo, dry_run) -> None:
    """Make the library visible to a WebUI (models/Lora/lutnav) or ComfyUI (extra_model_paths.yaml)."""
    from .link import plan_comfyui, plan_webui

    if bool(webui) == bool(comfyui):
        raise click.UsageError("give exactly one of --webui DIR or --comfyui DIR")
    if copies and not webui:
        raise click.UsageError("--copy works with --webui")
    lib = open_library(ctx)
    if copies:
        ensure_indexed(lib)
    plan = plan_webui(lib, webui, copy=copies, undo=undo) if webui else plan_comfyui(lib, comfyui, undo=undo)
    for line in plan.lines:
        click.echo(line)
    if plan.apply is None or dry_run:
        return
    plan.apply()
    click.echo("done")


COMMANDS = [pull_cmd, outdated_cmd, export_cmd, link_cmd]

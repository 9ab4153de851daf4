"""The ``lutnav`` command line: thin click commands over the catalog.

Each command parses its arguments, calls one library function and prints. No
heavy import happens at module level: ``lutnav --help`` and ``lutnav ls`` must
start without torch.
"""

from __future__ import annotations

import errno
import importlib
import sqlite3
import sys
from pathlib import Path

import click
from click_default_group import DefaultGroup

from catalog.errors import CatalogError
from catalog.library import default_root

from . import __version__
from .context import ensure_indexed, open_library, run_scan_with_progress
from .output import echo_json, shown, table

#: optional command modules: each exposes COMMANDS, a list of click commands
EXTENSIONS = ("lutnav.mix_cli", "lutnav.pull_cli", "lutnav.train_cli", "lutnav.label_cli", "lutnav.tui_cli")


class LutnavGroup(DefaultGroup):
    """Turns every domain error into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            raise click.ClickException(shown(str(exc))) from None
        except Exception as exc:
            if isinstance(exc, sqlite3.DatabaseError):  # an index damaged after it was opened
                from catalog.db import damaged

                found = damaged(_index_path(ctx), exc)
                if isinstance(found, CatalogError):
                    raise click.ClickException(shown(str(found))) from None
            if _is_trainer_error(exc):
                raise click.ClickException(_trainer_message(exc)) from None
            if isinstance(exc, OSError):
                raise click.ClickException(shown(os_error_line(exc))) from None
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


#: what to do about the file-system errors a user can meet, by errno
_OS_ADVICE = {
    errno.EACCES: "you cannot write there: pick a folder you own, or fix its permissions",
    errno.EPERM: "you cannot write there: pick a folder you own, or fix its permissions",
    errno.EROFS: "that file system is read-only: pick a folder on a writable disk",
    errno.ENAMETOOLONG: "the file name is too long for this file system: rename the file shorter",
    errno.ENOSPC: "the disk is full: free some space and retry",
    errno.EDQUOT: "your disk quota is used up: free some space and retry",
}


def os_error_line(exc: OSError) -> str:
    """One line for a file-system error: which file, what happened, what to do."""
    where = exc.filename if exc.filename is not None else None
    what = exc.strerror or str(exc)
    text = f"{where}: {what}" if where else what
    advice = _OS_ADVICE.get(exc.errno)
    return f"{text} — {advice}" if advice else text


def _trainer_message(exc: Exception) -> str:
    """One line, or one per problem where a check lists several (each shown safely)."""
    if getattr(exc, "problems", None):
        return "\n".join(shown(line) for line in str(exc).split("\n"))
    return shown(str(exc))


def _index_path(ctx: click.Context) -> Path:
    from catalog.library import INDEX_DIR, INDEX_FILE

    library = ctx.params.get("library") or default_root()
    return Path(library) / INDEX_DIR / INDEX_FILE


def _is_trainer_error(exc: Exception) -> bool:
    """Trainer errors, without importing the trainers unless one was raised."""
    module = sys.modules.get("trainers.errors")
    return module is not None and isinstance(exc, getattr(module, "TrainerError", ()))


@click.group(cls=LutnavGroup, default="tui", default_if_no_args=True, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--library", "-L", type=click.Path(path_type=Path), default=None,
              help="Library folder (default: $LUTNAV_LIBRARY, else ./loras).")
@click.version_option(__version__, prog_name="lutnav")
@click.pass_context
def cli(ctx: click.Context, library: Path | None) -> None:
    """lutnav — a LUT navigator for LoRA adapters.

    Catalog a folder tree of LoRA files (loras/<category>/<theme>/…), search it,
    read what each file is (base model from tensor shapes, rank, alpha, trigger
    words, strength), and keep cards beside the files. Run with no command to
    browse in the terminal UI.

    Start with `lutnav demo` for a small library, or `lutnav --library DIR scan`.
    """
    ctx.obj = {"root": library or default_root()}
    if ctx.invoked_subcommand is None:  # `lutnav --library DIR` alone opens the TUI too
        ctx.invoke(cli.commands["tui"])


@cli.command("scan")
@click.option("--full", is_flag=True, help="Re-read every file, even unchanged ones.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def scan_cmd(ctx: click.Context, full: bool, as_json: bool) -> None:
    """Index the library (only files and sidecars that changed are read)."""
    lib = open_library(ctx)
    s = run_scan_with_progress(lib, full=full)
    if as_json:
        echo_json(s.__dict__)
        return
    for line in s.skipped:
        click.echo(f"skipped: {line}", err=True)
    click.echo(f"{s.total} entries: {s.added} added, {s.updated} updated, {s.removed} removed, "
               f"{s.unchanged} unchanged, {s.broken} broken ({s.seconds:.2f} s)")


LS_HEADERS = ("name", "category", "theme", "base", "format", "rank", "strength", "triggers", "path")


def _ls_rows(entries: list[dict]):
    for e in entries:
        mark = "✗ " if e["error"] else ""
        yield (mark + e["name"], e["category"], e["theme"], e["base_model"], e["format"],
               e["rank"], e["strength"], ", ".join(e["trigger_words"] or []), e["path"])


@cli.command("ls")
@click.option("--category", help="Only this category (first folder level).")
@click.option("--theme", help="Only this theme (second folder level).")
@click.option("--base", help="Only this base model: sd1, sd2, sdxl, flux, llm, unknown, …")
@click.option("--format", "fmt", help="Only this format: kohya, diffusers, peft, lycoris, pickle, …")
@click.option("--sort", default="path", show_default=True, help="Column to sort by.")
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (the stable contract).")
@click.pass_context
def ls_cmd(ctx, category, theme, base, fmt, sort, limit, as_json) -> None:
    """List entries (scans first if the library was never indexed)."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    entries = lib.entries(category=category, theme=theme, base=base, fmt=fmt, order_by=sort,
                          limit=limit)
    if as_json:
        echo_json(entries)
    elif entries:
        table(_ls_rows(entries), LS_HEADERS, max_widths={0: 32, 7: 30})
    else:
        click.echo("no entries — add LoRA files under the library and run `lutnav scan`", err=True)


@cli.command("search")
@click.argument("query")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of entries.")
@click.pass_context
def search_cmd(ctx, query: str, limit: int, as_json: bool) -> None:
    """Full-text search over name, theme, trigger words, notes and tags."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    entries = lib.search(query, limit=limit)
    if as_json:
        echo_json(entries)
    elif entries:
        table(_ls_rows(entries), LS_HEADERS, max_widths={0: 32, 7: 30})
    else:
        click.echo(f"nothing matches {query!r}", err=True)


def _register_extensions() -> None:
    for name in ("lutnav.catalog_cli", *EXTENSIONS):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for command in module.COMMANDS:
            cli.add_command(command)


_register_extensions()


def main() -> None:
    cli(prog_name="lutnav")



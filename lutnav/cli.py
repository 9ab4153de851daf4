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
from collections.abc import Iterable
from pathlib import Path

import click
from click_default_group import DefaultGroup

from catalog.errors import CatalogError
from catalog.index.entry import Entry
from catalog.index.library import default_root
from catalog.index.query import SORTABLE

from . import __version__
from .context import ensure_indexed, open_library, run_scan_with_progress
from .output import echo_json, echo_json_array, shown, table

#: every module that adds commands; each exposes COMMANDS, a list of click commands.
#: They import nothing heavy at module level, so listing them keeps `--help` fast.
COMMAND_MODULES = ("lutnav.catalog_cli", "lutnav.mix_cli", "lutnav.pull_cli", "lutnav.train_cli",
                   "lutnav.label_cli")


class LutnavGroup(DefaultGroup):
    """Turns every domain error into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CatalogError as exc:
            raise click.ClickException(shown(str(exc))) from None
        except Exception as exc:
            if isinstance(exc, sqlite3.DatabaseError):  # an index damaged after it was opened
                from catalog.index.db import damaged

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
    from catalog.index.library import INDEX_DIR, INDEX_FILE

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
    ctx.obj = {"root": library or default_root(), "explicit": library is not None}
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
#: the columns the ``ls`` table shows (``_ls_rows``), read without the rest
LS_FIELDS = ("name", "category", "theme", "base_model", "base_variant", "format", "rank", "strength",
             "trigger_words", "path", "error")


def _ls_rows(entries: list[Entry]):
    for e in entries:
        mark = "✗ " if e.error else ""
        base = f"{e.base_model} ({e.base_variant})" if e.base_variant else e.base_model
        yield (mark + e.name, e.category, e.theme, base, e.format,
               e.rank, e.strength, ", ".join(e.trigger_words or []), e.path)


def _check_base(base: str) -> str:
    """A base name from the registry's vocabulary; a typo is a usage error naming the nearest ones."""
    import difflib

    from catalog.detect.registry import BASE_NAMES

    low = base.strip().lower()
    if low in BASE_NAMES:
        return low
    near = difflib.get_close_matches(low, BASE_NAMES, n=3, cutoff=0.5)
    hint = f" — did you mean {' or '.join(near)}?" if near else f"; known: {', '.join(BASE_NAMES)}"
    raise click.BadParameter(f"{base!r} is not a base model lutnav names{hint}", param_hint="--base")


@cli.command("ls")
@click.option("--category", help="Only this category (first folder level).")
@click.option("--theme", help="Only this theme (second folder level).")
@click.option("--base", help="Only this base model (sd1, sdxl, flux, flux2, qwen-image, wan, z-image, llm, "
              "unknown, … — see the README) or SDXL variant (pony, illustrious, noobai).")
@click.option("--format", "fmt", help="Only this format: kohya, diffusers, peft, lycoris, pickle, …")
@click.option("--sort", default="path", show_default=True, type=click.Choice(sorted(SORTABLE)),
              help="Column to sort by.")
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (the stable contract).")
@click.pass_context
def ls_cmd(ctx, category, theme, base, fmt, sort, limit, as_json) -> None:
    """List entries (scans first if the library was never indexed)."""
    from catalog.index.query import iter_entries

    if base is not None:
        base = _check_base(base)
    lib = open_library(ctx)
    ensure_indexed(lib)
    filters = dict(category=category, theme=theme, base=base, fmt=fmt, order_by=sort, limit=limit)
    if as_json:
        echo_json_array(e.to_json() for e in iter_entries(lib, **filters))
        return
    entries = list(iter_entries(lib, **filters, fields=LS_FIELDS))
    if entries:
        table(_ls_rows(entries), LS_HEADERS, max_widths={0: 32, 7: 30})
    elif any((category, theme, base, fmt)):
        given = ", ".join(f"--{k} {v}" for k, v in (("category", category), ("theme", theme),
                                                      ("base", base), ("format", fmt)) if v)
        click.echo(f"no entries match {given} — `lutnav ls` lists them all", err=True)
    else:
        click.echo("no entries — add LoRA files under the library and run `lutnav scan`", err=True)


@cli.command("search")
@click.argument("query")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of entries.")
@click.pass_context
def search_cmd(ctx, query: str, limit: int, as_json: bool) -> None:
    """Full-text search over name, theme, trigger words, notes and tags.

    A word naming a base model or SDXL variant (flux, qwen-image, pony, …) filters by it.
    """
    lib = open_library(ctx)
    ensure_indexed(lib)
    entries = lib.search(query, limit=limit)
    if as_json:
        echo_json([e.to_json() for e in entries])
    elif entries:
        table(_ls_rows(entries), LS_HEADERS, max_widths={0: 32, 7: 30})
    else:
        click.echo(f"nothing matches {query!r}", err=True)


def register_commands(names: Iterable[str]) -> None:
    """Add the COMMANDS of each module; a module that is missing or broken raises (no silent gaps)."""
    for name in names:
        module = importlib.import_module(name)
        for command in module.COMMANDS:
            cli.add_command(command)


register_commands(COMMAND_MODULES)


def main() -> None:
    cli(prog_name="lutnav")



"""CLI verbs about single entries: show, card, hash, dupes, prompt, demo, tui."""

from __future__ import annotations

from pathlib import Path

import click

from catalog.files import hashing
from catalog.errors import CatalogError
from catalog.index.entry import Entry

from .context import ensure_indexed, open_library, run_scan_with_progress
from .output import echo_json, run_with_progress, shown, table
from .prompt_tags import format_tags, parse_specs


@click.command("show")
@click.argument("entry")
@click.option("--json", "as_json", is_flag=True, help="The ls object plus sources and metadata.")
@click.pass_context
def show_cmd(ctx, entry: str, as_json: bool) -> None:
    """Everything known about ENTRY (a name or a path), and where each field came from."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    details = lib.details(entry)
    if as_json:
        echo_json(details.to_json())
        return
    info = details.entry
    sources = info.sources or {}
    fields = [
        ("path", info.path), ("format", _fmt_network(info)),
        ("base model", info.base_model), ("base variant", info.base_variant),
        ("architecture", info.arch), ("model kind", info.model_kind),
        ("candidates", " or ".join(info.base_candidates or []) if info.base_model == "unknown" else None),
        ("base model name", info.base_model_name),
        ("evidence", info.evidence), ("rank", info.rank),
        ("alpha", f"{info.alpha} ({info.alpha_source})" if info.alpha is not None
         else f"— ({info.alpha_source})" if info.alpha_source else None),
        ("dtype", info.dtype), ("tensors", info.tensor_count),
        ("parts", ", ".join(info.parts or [])), ("title", info.title),
        ("trigger words", ", ".join(info.trigger_words) if info.trigger_words else
         ("none" if "trigger_words" in sources else None)), ("strength", info.strength),
        ("strength range", info.strength_range), ("themes", ", ".join(info.themes or [])),
        ("tags", ", ".join(info.tags or [])), ("type", info.type),
        ("notes", info.notes), ("source", info.source), ("license", info.license),
        ("previews", ", ".join(info.previews or [])),
    ]
    keys = {"format": "format", "base model": "base_model", "rank": "rank", "alpha": "alpha",
            "title": "title", "trigger words": "trigger_words", "strength": "strength",
            "strength range": "strength_range", "themes": "themes", "tags": "tags",
            "type": "type", "notes": "notes", "source": "source", "license": "license"}
    rows = [(k, v, sources.get(keys.get(k, ""), "")) for k, v in fields if v not in (None, "", [])]
    table(rows, ("field", "value", "from"), max_widths={1: 70})
    if details.hashes:
        h = details.hashes
        click.echo(f"sha256 {h['sha256']}  AutoV2 {h['autov2']}  tensors {h['tensor_sha256'][:16]}…")
    if info.error:
        click.echo(click.style(f"error: {info.error}", fg="red"))
    for w in details.warnings:
        click.echo(f"warning: {w}")


def _fmt_network(info: Entry) -> str:
    net = info.network
    return f"{info.format} ({net})" if net and net != info.format else str(info.format)


@click.command("card")
@click.argument("entry")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Field to write, e.g. strength=0.7, trigger_words=\"mo_shui, ink\", "
                   "strength_range=0.6~0.8 (repeatable).")
@click.pass_context
def card_cmd(ctx, entry: str, sets: tuple[str, ...]) -> None:
    """Write fields into ENTRY's sidecar card (<stem>.toml); the LoRA file is never touched.

    Only the fields given change; comments and layout of a hand-edited card stay.
    When the card changed on disk since lutnav last read it, the edit still goes
    in if it sets other fields; if a field it sets changed there too, nothing is
    written and the message names the command that sets it anyway.
    """
    from catalog.cards.card import parse_set
    from catalog.cards.card_file import indexed_card_values, write_card
    from catalog.errors import CardConflict
    from catalog.cards.sidecars import card_path

    lib = open_library(ctx)
    ensure_indexed(lib)
    rel = lib.resolve(entry)
    if not sets:
        raise click.UsageError("nothing to write: pass --set KEY=VALUE (see --help)")
    updates = parse_set(list(sets))
    row = lib.get(rel)
    target = card_path(lib.abspath(rel))
    lib.check_writable(target)
    try:
        write_card(target, updates, expected_digest=row.card_digest, base=indexed_card_values(row.as_dict()))
    except CardConflict as err:
        run_scan_with_progress(lib)  # lutnav now knows the card as it is: the same command works
        raise CardConflict(err.message, path=err.path, fields=err.fields,
                           hint=f"to set yours over it, run: {_card_command(ctx, entry, sets)}") from None
    run_scan_with_progress(lib)
    click.echo(f"wrote {shown(lib.relpath(target))}: " + ", ".join(sorted(updates)))


def _card_command(ctx, entry: str, sets: tuple[str, ...]) -> str:
    import shlex

    library = ctx.find_root().params.get("library")
    words = ["lutnav", *(["--library", str(library)] if library else []), "card", entry]
    for item in sets:
        words += ["--set", item]
    return shlex.join(words)


@click.command("hash")
@click.argument("entries", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Hash every entry.")
@click.option("--force", is_flag=True, help="Recompute even when cached.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def hash_cmd(ctx, entries: tuple[str, ...], all_: bool, force: bool, as_json: bool) -> None:
    """sha256, AutoV2 (first 10 hex) and a tensor-only hash; cached by size and mtime."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    if all_:
        rels = lib.loadable_paths()
    elif entries:
        rels = [lib.resolve(e) for e in entries]
    else:
        raise click.UsageError("name entries to hash, or pass --all")
    results = run_with_progress(hashing.compute(lib, rels, force=force), "hashing")
    out = [{"path": r, "sha256": h.sha256, "autov2": h.autov2, "tensor_sha256": h.tensor_sha256}
           for r, h in results.items()]
    if as_json:
        echo_json(out)
    else:
        table([(o["autov2"], o["sha256"], o["path"]) for o in out], ("AutoV2", "sha256", "path"))


@click.command("dupes")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dupes_cmd(ctx, as_json: bool) -> None:
    """Entries holding the same tensors under different paths or names."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    groups = run_with_progress(hashing.find_duplicates(lib), "hashing")
    if as_json:
        echo_json(groups)
        return
    if not groups:
        click.echo("no duplicates")
    for i, group in enumerate(groups, 1):
        click.echo(f"group {i}:")
        for path in group:
            click.echo(f"  {shown(path)}")


@click.command("prompt")
@click.argument("specs", nargs=-1, required=True)
@click.pass_context
def prompt_cmd(ctx, specs: tuple[str, ...]) -> None:
    """Print <lora:name:weight> tags for A1111/Forge (SPEC is NAME[:WEIGHT]).

    A broken file is refused as mix refuses it (no client can load it); a pickle
    gets a warning, since lutnav never opens it but the WebUI may.
    """
    from .mix.guards import entry_problem

    lib = open_library(ctx)
    ensure_indexed(lib)
    parsed = parse_specs(specs)
    for spec in parsed:
        entry = lib.get(spec.name)
        problem = entry_problem(entry, spec.name)
        if entry.error:
            raise CatalogError(problem)
        if problem:
            click.echo(f"warning: {problem}", err=True)
    click.echo(format_tags(lib, parsed))


@click.command("demo")
@click.option("--into", type=click.Path(path_type=Path), default=None,
              help="Folder to write the demo library into (default: the --library folder).")
@click.option("--no-models", is_flag=True,
              help="Skip the tiny base models (previews, grid and chat then need [models] set by hand).")
@click.option("--overwrite", is_flag=True, help="Reset demo cards you edited since an earlier demo.")
@click.pass_context
def demo_cmd(ctx, into: Path | None, no_models: bool, overwrite: bool) -> None:
    """Write a small demo library (every format and sidecar kind) and index it.

    Also writes two tiny base models with random weights (an SD1 pipeline and a
    Llama, built in seconds) and points [models] at them, so preview, grid,
    mix --preview, chat and the LLM blend run offline. Their output is noise: they
    show the pipeline. Run again to restore deleted demo files; files that exist
    (your edits) are never changed.
    """
    from catalog.index.library import Library

    from .demo import write_demo

    root = Path(into or ctx.find_root().obj["root"])
    try:
        written = write_demo(root, overwrite=overwrite, note=lambda text: click.echo(f"note: {text}", err=True))
    except OSError as exc:
        if isinstance(exc, CatalogError):
            raise
        from .cli import os_error_line

        raise CatalogError(os_error_line(exc)) from None
    models = None
    if not no_models:
        from .demo_models import write_demo_models

        click.echo("building the demo's tiny base models (a few seconds)…", err=True)
        models = write_demo_models(root)
    lib = Library(root)
    ctx.find_root().obj["lib"] = lib
    s = run_scan_with_progress(lib)
    entries = lib.entries()
    table(((e.name, e.category, e.base_model, e.format, e.rank,
            "broken" if e.error else "") for e in entries),
          ("name", "category", "base", "format", "rank", ""))
    fresh = len(written) > 1  # more than the marker: files were missing
    click.echo(f"demo library at {lib.root}: {s.total} entries"
               + ("" if fresh or not written else "; existing files were left as they are")
               + ("" if fresh else " (nothing was missing)" if not written else "") + ".")
    if models is not None:
        from .demo_models import NOISE_NOTE

        for note in models.notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"note: {NOISE_NOTE}")
    where = "" if root == Path("loras") and ctx.find_root().obj["root"] == Path("loras") else f" --library {root}"
    click.echo(f"Try: lutnav{where} search ink   ·   lutnav{where} preview ink_wash_v2   ·   lutnav{where}")


@click.command("tui")
@click.pass_context
def tui_cmd(ctx) -> None:
    """Browse the library in the terminal UI (the default command)."""
    lib = open_library(ctx)
    ensure_indexed(lib)
    try:
        from .tui.app import run_app
    except ModuleNotFoundError:
        click.echo("the terminal UI is not installed in this build; listing instead", err=True)
        ctx.invoke(ctx.find_root().command.commands["ls"])
        return
    run_app(lib)


COMMANDS = [show_cmd, card_cmd, hash_cmd, dupes_cmd, prompt_cmd, demo_cmd, tui_cmd]

"""Running a :class:`~.request.MixRequest`: resolve, guard, then the one output it asks for.

Every check that can refuse runs before any work (names, the output path, the
guards, the preview model), so a refusal writes nothing. The lines a user reads
are passed to ``say`` as they come and kept in the result; long work (a merge, a
bake) yields :class:`~catalog.progress.Progress`, and the previews are handed
back as a job of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from catalog.index.entry import Entry
from catalog.errors import CatalogError
from catalog.progress import Work

from .blend import BlendItem, check_output, resolve_items
from .guards import check_blend, module_set
from .request import Line, MixRequest, MixResult


def run(request: MixRequest, *, say: Callable[[Line], None] | None = None) -> Work[MixResult]:
    """Run ``request``; yields a Progress per module merged or tensor baked, returns the result."""
    lib = request.library
    result = MixResult()

    def tell(text: str = "", *, err: bool = False, json: object = None) -> None:
        line = Line(text, err, json)
        result.lines.append(line)
        if say is not None:
            say(line)

    settings = None
    if request.preview is not None:
        from .preview import preview_defaults

        settings = preview_defaults(replace(request.preview), lib)
    items = resolve_items(lib, list(request.specs))
    adapters = bool(items) and all(i.entry.base_model == "llm" for i in items)
    out = request.out
    if out is not None and not adapters:
        check_output(out, overwrite=request.overwrite)
    if out is not None:
        lib.check_writable(out)
    modules = [_modules_or_empty(lib.abspath(i.rel), i.entry) for i in items]
    result.verdict = check_blend([i.entry for i in items], [i.weight for i in items], lib.config,
                                 force=request.force, modules=modules)
    for text in result.verdict.lines():
        tell(text, err=True)
    if not result.ok:
        return result
    if settings is not None:
        from .preview import model_for, require_diffusers

        bases = {i.entry.base_model for i in items} - {"unknown", None}
        model_for(lib, bases.pop() if len(bases) == 1 else None, request.model)  # before torch loads
        require_diffusers()

    if adapters:
        result.written = _blend_adapters(lib, items, request, tell)
        return result
    output = request.output
    if output == "bake":
        result.written = yield from _bake(lib, items, request, tell)
    elif output == "merge":
        result.written = yield from _merge(lib, items, request, tell)
    elif output == "comfy":
        from .tags import comfy_chain

        tell(json=comfy_chain(items, request.checkpoint))
    else:
        from .tags import tag_line

        tell(tag_line(items))
    if settings is not None:
        from .sampling import preview_blend

        result.sampling = preview_blend(lib, items, settings, model=request.model,
                                        merged=result.written if output == "merge" else None)
    return result


def _modules_or_empty(path: Path, entry: Entry) -> set:
    if entry.error or entry.format == "pickle":
        return set()
    return module_set(path)


def _merge(lib, items: list[BlendItem], request: MixRequest, tell) -> Work[Path]:
    from lutnav.output import shown
    from lutnav.prompt_tags import tag

    from .blend import write_merged

    out, rank = request.out, request.rank
    command = "lutnav mix " + " ".join(f"{i.name}:{i.weight:g}" for i in items) + f" --out {out.name}"
    command += f" --rank {rank}" if rank is not None else ""
    merged = yield from write_merged(lib, items, out, rank=rank, overwrite=request.overwrite,
                                     command=command, to=request.to)
    how = f"SVD rank {rank}" if rank is not None else "exact"
    tell(f"wrote {merged.path} ({merged.modules} modules, {how}, max rank {merged.rank}, "
         f"{merged.seconds:.2f} s)", err=True)
    if rank is not None:
        module, worst = merged.report.worst
        where = f" ({module[0]} {module[1]})" if module else ""
        tell(f"relative Frobenius error per module: worst {worst:.4g}{where}, "
             f"mean {merged.report.mean:.4g}", err=True)
    if merged.rel:
        tell(shown(f"indexed as {merged.rel} (card lists its parents)"), err=True)
    else:
        tell("outside the library: written with its card, not indexed", err=True)
    tell(tag(merged.path.stem, 1))
    return merged.path


def _bake(lib, items: list[BlendItem], request: MixRequest, tell) -> Work[Path]:
    from .bake import bake_into_model

    baked = yield from bake_into_model(lib, items, request.into_model, request.out,
                                       overwrite=request.overwrite)
    tell(f"wrote {baked.path}: {baked.changed} of {baked.tensors} weights changed "
         f"({baked.seconds:.1f} s)", err=True)
    for note in baked.notes:
        tell(f"note: {note}", err=True)
    tell(str(baked.path))
    return baked.path


def _blend_adapters(lib, items: list[BlendItem], request: MixRequest, tell) -> Path:
    """LLM adapters blend through peft's weighted adapter into a new adapter folder."""
    from .errors import MixUsageError

    if request.out is None:
        raise MixUsageError("LLM adapters have no prompt tag: pass --out DIR to write the blended "
                            "PEFT adapter folder (exact rank concatenation, or --rank N for SVD)")
    out = Path(request.out).expanduser()
    if out.exists() and not request.overwrite:
        raise MixUsageError(f"{out} exists; pass --overwrite to replace it")
    from lutnav.llm_base import llm_base

    base = llm_base(lib, lib.abspath(items[0].rel))  # before torch: a missing model is said at once
    out.parent.mkdir(parents=True, exist_ok=True)  # the folder named for the result, as `train` files one
    from trainers.text.blend import blend_adapters

    rank = request.rank
    blended = blend_adapters(base, [(lib.abspath(i.rel), i.weight) for i in items], out,
                             combination_type="svd" if rank else "cat", svd_rank=rank)
    tell(f"blended adapter → {blended.path} (rank {blended.rank}, {blended.combination_type} "
         f"of {len(items)} adapters)")
    try:
        lib.relpath(blended.path)
    except CatalogError:
        return blended.path
    lib.scan_all()
    return blended.path

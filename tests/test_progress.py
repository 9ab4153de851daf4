"""The one progress protocol: every long verb is a generator of ``Progress``, drawn by one CLI
renderer (:func:`lutnav.output.run_with_progress`) and followed by one TUI worker
(:func:`lutnav.tui.jobs.follow`)."""

from __future__ import annotations

import ast
import importlib
import inspect
import io
from pathlib import Path

import pytest
from PIL import Image

from catalog.progress import Progress, collect, finish, within
from lutnav.output import run_with_progress
from lutnav.tui.jobs import follow

ROOT = Path(__file__).resolve().parent.parent

#: the core function behind each long verb (scan, hash, dupes, mix, bake, preview, grid, pull,
#: pull --update-all, train, label) and the work training does before its first step
LONG_WORK = [
    ("catalog.index.scan", "scan"),
    ("catalog.files.hashing", "compute"),
    ("catalog.files.hashing", "find_duplicates"),
    ("lutnav.mix.blend", "write_merged"),
    ("lutnav.mix.bake", "bake_into_model"),
    ("lutnav.mix.sampling", "preview_entry"),
    ("lutnav.mix.sampling", "preview_blend"),
    ("lutnav.mix.grid", "grid_entry"),
    ("lutnav.pull.pipeline", "pull"),
    ("lutnav.pull.update", "update_entry"),
    ("trainers.run", "train"),
    ("trainers.loop", "run_loop"),
    ("trainers.label.write", "label_folder"),
    ("trainers.image.latents", "LatentCache.fill"),
]


@pytest.mark.parametrize(("module", "name"), LONG_WORK, ids=[f"{m}.{n}" for m, n in LONG_WORK])
def test_every_long_verb_is_a_generator_of_progress(module, name):
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    assert inspect.isgeneratorfunction(found), f"{module}.{name} must yield Progress, not take a callback"
    params = inspect.signature(found).parameters
    assert not {"progress", "on_progress", "callback"} & set(params), f"{module}.{name} still takes a callback"


def test_a_scan_and_hashing_yield_only_progress_and_return_their_result(demo_library):
    from catalog.files import hashing
    from catalog.index.scan import ScanSummary, scan

    (demo_library.root / "style" / "extra.safetensors").write_bytes(
        next(demo_library.root.rglob("*.safetensors")).read_bytes())
    steps, summary = collect(scan(demo_library, full=True))
    assert isinstance(summary, ScanSummary) and summary.total == len(demo_library.entries())
    assert steps and all(type(s) is Progress for s in steps)
    read = [s for s in steps if s.phase == "read"]
    assert read[-1].done == read[-1].total == summary.total  # full: every file read
    steps, hashes = collect(hashing.compute(demo_library, ["style/extra.safetensors"]))
    assert steps and all(type(s) is Progress for s in steps) and steps[-1].done == steps[-1].total
    assert list(hashes) == ["style/extra.safetensors"]


def test_a_pull_yields_each_file_it_fetches(tmp_path):
    from catalog.index.library import Library
    from lutnav.pull.local import open_local
    from lutnav.pull.pipeline import PullOptions, pull
    from tests.hubserver import lora_bytes, new_library

    lib = Library(new_library(tmp_path))
    folder = tmp_path / "downloads"
    folder.mkdir()
    for n in (1, 2):
        (folder / f"ink_{n}.safetensors").write_bytes(lora_bytes(seed=n))
    source = open_local(folder)
    steps, report = collect(pull(lib, source, PullOptions(take_all=True, category="style", theme="ink")))
    assert [(s.done, s.total) for s in steps] == [(1, 2), (2, 2)]
    assert sorted(s.item for s in steps) == ["ink_1.safetensors", "ink_2.safetensors"]
    assert sorted(p.rel for p in report.placed) == ["style/ink/ink_1.safetensors", "style/ink/ink_2.safetensors"]


def test_labelling_yields_each_image_and_writes_only_at_the_end(tmp_path):
    from trainers.label.write import label_folder

    for i in range(3):
        Image.new("RGB", (32, 32), (40 * i, 100, 200)).save(tmp_path / f"im{i}.png")
    work = label_folder(tmp_path, lambda paths: ((p, f"photo {p.stem}") for p in paths), fmt="csv")
    assert next(work) == Progress(1, 3, "im0.png")
    assert not (tmp_path / "metadata.csv").exists()  # captions are written once, all together
    assert finish(work).images == 3 and (tmp_path / "metadata.csv").is_file()


def _work(notes: bool = False):
    """Two phases, a note in the middle; returns "result"."""
    for n in range(1, 4):
        yield Progress(n, None, f"walked {n}", "walk")
    for n in range(1, 21):
        yield Progress(n, 20, f"item{n}", "read")
        if notes and n == 10:
            yield Progress(n, 20, phase="read", note="saved checkpoint-10")
    return "result"


def test_on_a_terminal_the_renderer_draws_one_bar_restarted_per_phase_with_notes_above():
    out = io.StringIO()
    assert run_with_progress(_work(notes=True), "scanning", stream=out, tty=True) == "result"
    text = out.getvalue()
    assert "\rscanning: walk  1  walked 1" in text  # a phase's first step always drawn
    assert "\rscanning: read  [" + "#" * 24 + "]  20/20  item20" in text  # the last step always drawn
    assert "\nsaved checkpoint-10\n\rscanning: read  [" + "#" * 12 + "-" * 12 + "]  10/20  item10" in text
    # a note gets a line of its own, and the bar is drawn again below it as it stands
    assert text.endswith("\n")  # the bar's line is ended: what the command prints next starts clean


def test_piped_the_renderer_is_quiet_but_for_notes_and_logs_a_tenth_at_a_time_when_asked():
    out = io.StringIO()
    assert run_with_progress(_work(notes=True), "scanning", stream=out, tty=False) == "result"
    assert out.getvalue() == "saved checkpoint-10\n"
    out = io.StringIO()
    run_with_progress(_work(notes=True), "training", log=True, stream=out, tty=False)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[:2] for line in lines if line.startswith("read")] == \
        [[f"read {n}/20", f"item{n}"] for n in range(2, 21, 2)]
    assert "saved checkpoint-10" in lines
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()  # a log holds no control characters


def test_the_renderer_shows_a_hostile_item_as_one_line():
    out = io.StringIO()
    run_with_progress(iter_once(Progress(1, 1, "evil\n\x1b[2Jname")), "hashing", stream=out, tty=True)
    assert "evil\\n\\x1b[2Jname" in out.getvalue() and "\x1b[2J" not in out.getvalue()


def iter_once(step: Progress):
    yield step


def test_the_tui_follower_reports_each_step_and_a_cancel_closes_the_work():
    seen: list[Progress] = []
    closed = []

    def work():
        try:
            return (yield from _work())
        finally:
            closed.append(True)

    assert follow(work(), seen.append) == "result" and len(seen) == 23
    seen.clear()
    assert follow(work(), seen.append, cancel=lambda: len(seen) == 5) is None
    assert len(seen) == 5 and closed == [True, True]  # cleanup ran on the cancelled work too


def test_within_counts_a_part_of_a_larger_job():
    steps, result = collect(within(_work(), 10, 99))
    assert result == "result" and steps[0] == Progress(11, 99, "walked 1", "walk")


def _drawing_calls() -> dict[str, list[str]]:
    """Where bars are drawn: tqdm, click's progress bar, Textual's ProgressBar widget."""
    found: dict[str, list[str]] = {}
    for path in [*ROOT.glob("catalog/**/*.py"), *ROOT.glob("trainers/**/*.py"), *ROOT.glob("lutnav/**/*.py")]:
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            hits = [n for n in names if n.split(".")[0] == "tqdm" or n in ("progressbar", "ProgressBar")]
            if hits:
                found.setdefault(path.relative_to(ROOT).as_posix(), []).extend(hits)
    return found


def test_only_the_cli_renderer_and_the_tui_draw_progress():
    """No module draws a bar of its own: the CLI's is lutnav/output.py, and the TUI's one
    ProgressBar (lutnav/tui) is fed by jobs.follow; huggingface_hub's bars are turned off."""
    drawing = _drawing_calls()
    assert set(drawing) <= {"lutnav/tui/background.py", "lutnav/tui/app.py"}, drawing
    assert "tqdm" not in (ROOT / "lutnav/output.py").read_text("utf-8")
    background = (ROOT / "lutnav/tui/background.py").read_text("utf-8")
    assert "jobs.scan(" in background and "jobs.preview(" in background
    jobs = (ROOT / "lutnav/tui/jobs.py").read_text("utf-8")
    assert jobs.count("drive(") == 1  # inside follow: every TUI job runs through it
    assert "disable_progress_bars()" in (ROOT / "lutnav/pull/hub.py").read_text("utf-8")


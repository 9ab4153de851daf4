"""Card edits keep the user's text and lose no edit: layout, BOM, concurrent writers, conflicts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.cards import card_file
from catalog.cards.card_file import card_lock, read_card, write_card
from catalog.errors import CardBusy, CardConflict
from catalog.index.library import Library
from lutnav.cli import cli
from tests.mixlib import SD1_PICK, pick, write_lora

HAND_EDITED = """\
# Ink wash — my notes, keep them
title   = "Ink wash"        # shown in the TUI
strength = 0.7
trigger_words = [
    "mo_shui",   # the real trigger
    "ink",
]
notes = '''
Keep away from strong contrast.
'''

[training]
# from the kohya run
steps = 1200
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "style" / "ink"
    folder.mkdir(parents=True)
    (folder / "ink.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the user's text survives --------------------------------------------------------


def test_set_changes_only_the_line_of_the_field(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    card, digest = read_card(path)
    write_card(path, {"strength": 0.55}, expected_digest=digest, base=card.to_dict())
    assert path.read_text("utf-8") == HAND_EDITED.replace("strength = 0.7", "strength = 0.55")


def test_new_field_goes_with_the_top_level_keys_and_cleared_field_goes(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    _, digest = read_card(path)
    write_card(path, {"themes": ["landscape"], "title": None, "training": {"lr": 1e-4}},
               expected_digest=digest)
    text = path.read_text("utf-8")
    assert "# Ink wash — my notes, keep them" in text and "# the real trigger" in text
    assert "# from the kohya run" in text and 'title' not in text
    raw = tomllib.loads(text)
    assert raw["themes"] == ["landscape"] and raw["training"] == {"steps": 1200, "lr": 1e-4}
    assert text.index("themes") < text.index("[training]")


def test_setting_a_field_to_its_value_leaves_the_bytes(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    before = path.read_bytes()
    _, digest = read_card(path)
    write_card(path, {"strength": 0.7, "trigger_words": ["mo_shui", "ink"]}, expected_digest=digest)
    assert path.read_bytes() == before


def test_windows_line_endings_are_kept_for_new_lines(folder):
    path = folder / "ink.toml"
    path.write_bytes(b'title = "Ink"\r\nstrength = 0.7\r\n')
    _, digest = read_card(path)
    write_card(path, {"notes": "two\nlines", "strength": 0.6}, expected_digest=digest)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") == 3
    assert tomllib.loads(data.decode())["notes"] == "two\nlines"


# --- a BOM (Windows Notepad) ------------------------------------------------------------


def test_a_card_with_a_bom_is_read_and_edited_keeping_it(folder):
    path = folder / "ink.toml"
    path.write_bytes(b"\xef\xbb\xbf" + HAND_EDITED.encode("utf-8"))
    card, digest = read_card(path)
    assert card.strength == 0.7 and card.trigger_words == ["mo_shui", "ink"]
    write_card(path, {"strength": 0.6}, expected_digest=digest)
    assert path.read_bytes() == b"\xef\xbb\xbf" + HAND_EDITED.replace("0.7", "0.6").encode("utf-8")


def test_scan_and_cli_accept_a_card_with_a_bom(tmp_path):
    root = tmp_path / "loras"
    write_lora(root / "style/ink/ink.safetensors", pick("sd1", SD1_PICK))
    (root / "style/ink/ink.toml").write_bytes(b"\xef\xbb\xbf" + 'strength = 0.7\n# mine\n'.encode())
    lib = Library(root)
    lib.scan_all()
    [entry] = lib.entries()
    assert entry.strength == 0.7 and entry.warnings == []
    res = CliRunner().invoke(cli, ["--library", str(root), "card", "ink", "--set", "notes=soft"])
    assert res.exit_code == 0, res.output
    assert (root / "style/ink/ink.toml").read_bytes() == (
        b"\xef\xbb\xbf" + b'strength = 0.7\n# mine\nnotes = "soft"\n')


# --- another writer got there first ---------------------------------------------------


def test_edit_is_applied_onto_another_edit_of_other_fields(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    card, digest = read_card(path)
    path.write_text(HAND_EDITED.replace("Keep away", "Stay away"), "utf-8")  # someone else's edit
    write_card(path, {"strength": 0.9}, expected_digest=digest, base=card.to_dict())
    text = path.read_text("utf-8")
    assert "Stay away" in text and "strength = 0.9" in text and "# the real trigger" in text


def test_training_keys_merge_one_by_one_across_writers(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    card, digest = read_card(path)
    write_card(path, {"training": {"steps": 1500}}, expected_digest=digest, base=card.to_dict())
    write_card(path, {"training": {"lr": 0.001}}, expected_digest=digest, base=card.to_dict())
    assert tomllib.loads(path.read_text("utf-8"))["training"] == {"steps": 1500, "lr": 0.001}


def test_same_field_changed_on_disk_is_a_conflict_that_names_it(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    card, digest = read_card(path)
    theirs = HAND_EDITED.replace("strength = 0.7", "strength = 0.55")
    path.write_text(theirs, "utf-8")
    with pytest.raises(CardConflict) as err:
        write_card(path, {"strength": 0.9, "notes": "x"}, expected_digest=digest, base=card.to_dict())
    assert "`strength` is 0.55 on disk now, this edit sets 0.9" in str(err.value)
    assert err.value.fields == [("strength", 0.55, 0.9)]
    assert path.read_text("utf-8") == theirs


def test_an_editor_saving_during_the_write_is_merged_not_lost(folder, monkeypatch):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    card, digest = read_card(path)
    real_fsync, saves = os.fsync, []

    def fsync_then_editor_saves(fd):
        real_fsync(fd)
        if not saves:  # an editor that takes no lock saves once, between our read and rename
            saves.append(1)
            path.write_text(HAND_EDITED.replace('"Ink wash"', '"Ink wash v2"'), "utf-8")

    monkeypatch.setattr(card_file.os, "fsync", fsync_then_editor_saves)
    write_card(path, {"strength": 0.9}, expected_digest=digest, base=card.to_dict())
    raw = tomllib.loads(path.read_text("utf-8"))
    assert raw["title"] == "Ink wash v2" and raw["strength"] == 0.9
    assert sorted(p.name for p in folder.iterdir()) == ["ink.safetensors", "ink.toml"]


# --- many writers at once ------------------------------------------------------------------


def test_300_concurrent_pairs_of_writers_lose_no_edit(tmp_path):
    """Each pair read the same card, then both write a different field at the same moment."""
    pairs = 300
    folders = []
    for i in range(pairs):
        folder = tmp_path / f"t{i % 10}"
        folder.mkdir(exist_ok=True)
        (folder / f"l{i}.toml").write_text('title = "t"  # keep\n', "utf-8")
        folders.append(folder / f"l{i}.toml")
    starts = [threading.Barrier(2) for _ in range(pairs)]

    def one(i: int, field: str, value) -> None:
        path = folders[i]
        card, digest = read_card(path)
        starts[i].wait()
        write_card(path, {field: value}, expected_digest=digest, base=card.to_dict())

    jobs = [(i, "strength", i / 1000) for i in range(pairs)] + [(i, "notes", f"n{i}") for i in range(pairs)]
    jobs.sort(key=lambda job: job[0])  # the two halves of a pair run side by side
    with ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(one, *job) for job in jobs]:
            future.result()
    for i, path in enumerate(folders):
        raw = tomllib.loads(path.read_text("utf-8"))
        assert (raw["strength"], raw["notes"]) == (i / 1000, f"n{i}"), path
        assert path.read_text("utf-8").startswith('title = "t"  # keep\n')
    assert not [p for p in tmp_path.rglob("*.tmp")]


def _write_all_after_reading_all(paths: list[str], field: str, go, ready) -> None:
    """One process: read every card first (so every base goes stale), then write them all."""
    reads = [(Path(p), *read_card(p)) for p in paths]
    ready.set()
    go.wait()
    for i, (path, card, digest) in enumerate(reads):
        write_card(path, {field: i / 1000 if field == "strength" else f"n{i}"},
                   expected_digest=digest, base=card.to_dict())


def test_two_processes_writing_300_cards_each_lose_no_edit(tmp_path):
    import multiprocessing

    paths = []
    for i in range(300):
        path = tmp_path / f"t{i % 10}" / f"l{i}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text("# mine\n", "utf-8")
        paths.append(str(path))
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = []
    for field in ("strength", "notes"):
        ready = ctx.Event()
        proc = ctx.Process(target=_write_all_after_reading_all, args=(paths, field, go, ready))
        proc.start()
        workers.append((proc, ready))
    for _, ready in workers:
        ready.wait(120)
    go.set()
    for proc, _ in workers:
        proc.join(300)
        assert proc.exitcode == 0
    for i, path in enumerate(paths):
        raw = tomllib.loads(Path(path).read_text("utf-8"))
        assert (raw["strength"], raw["notes"]) == (i / 1000, f"n{i}"), path


@pytest.mark.slow
def test_concurrent_card_commands_lose_no_edit(tmp_path):
    """The same over the real CLI: pairs of `lutnav card --set` processes at once."""
    root = tmp_path / "loras"
    pairs = 12
    for i in range(pairs):
        write_lora(root / f"style/t{i}/l{i}.safetensors", pick("sd1", SD1_PICK[:1]), seed=i)
        (root / f"style/t{i}/l{i}.toml").write_text("# mine\n", "utf-8")
    Library(root).scan_all()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    base = [sys.executable, "-c", "from lutnav.cli import main; main()", "--library", str(root), "card"]
    procs = []
    for i in range(pairs):
        for item in (f"strength=0.{i + 1}", f"notes=n{i}"):
            procs.append(subprocess.Popen([*base, f"l{i}", "--set", item], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [(p.wait(300), p.stdout.read().decode()) for p in procs]
    assert all(code == 0 for code, _ in outputs), outputs
    for i in range(pairs):
        text = (root / f"style/t{i}/l{i}.toml").read_text("utf-8")
        raw = tomllib.loads(text)
        assert text.startswith("# mine\n") and (raw["strength"], raw["notes"]) == (float(f"0.{i + 1}"), f"n{i}")


# --- the lock ----------------------------------------------------------------------------


def test_a_writer_that_holds_the_folder_too_long_gives_a_message_not_a_hang(folder):
    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    before = path.read_bytes()
    _, digest = read_card(path)
    with card_lock(path):  # held, as by a stopped process
        with pytest.raises(CardBusy, match="another program is writing cards"):
            with card_lock(path, wait_s=0.05):
                pass
    assert path.read_bytes() == before
    write_card(path, {"strength": 0.1}, expected_digest=digest)  # free again


def test_a_file_system_without_locks_still_writes(folder, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = folder / "ink.toml"
    write_card(path, {"strength": 0.4}, expected_digest=None)
    assert read_card(path)[0].strength == 0.4


# --- `lutnav card` when the card changed since lutnav read it -----------------------------


@pytest.fixture
def indexed(tmp_path):
    root = tmp_path / "loras"
    write_lora(root / "style/ink/ink.safetensors", pick("sd1", SD1_PICK))
    (root / "style/ink/ink.toml").write_text(HAND_EDITED, "utf-8")
    Library(root).scan_all()
    return root


def card(root: Path, *sets: str):
    args = ["--library", str(root), "card", "ink"]
    for item in sets:
        args += ["--set", item]
    return CliRunner().invoke(cli, args)


def test_cli_applies_an_edit_onto_a_hand_edit_of_another_field(indexed):
    path = indexed / "style/ink/ink.toml"
    path.write_text(HAND_EDITED.replace("Keep away", "Stay away"), "utf-8")  # after the last scan
    res = card(indexed, "strength=0.8")
    assert res.exit_code == 0, res.output
    assert path.read_text("utf-8") == HAND_EDITED.replace("Keep away", "Stay away").replace("0.7", "0.8")


def test_cli_conflict_names_the_field_and_the_command_that_then_works(indexed):
    path = indexed / "style/ink/ink.toml"
    theirs = HAND_EDITED.replace("strength = 0.7", "strength = 0.55")
    path.write_text(theirs, "utf-8")
    res = card(indexed, "strength=0.9")
    assert res.exit_code == 1
    assert "`strength` is 0.55 on disk now, this edit sets 0.9" in res.output
    command = f"lutnav --library {indexed} card ink --set strength=0.9"
    assert f"run: {command}" in res.output and "Traceback" not in res.output
    assert path.read_text("utf-8") == theirs
    again = CliRunner().invoke(cli, command.split()[1:])
    assert again.exit_code == 0, again.output
    assert path.read_text("utf-8") == HAND_EDITED.replace("strength = 0.7", "strength = 0.9")


# --- odd places -----------------------------------------------------------------------------


def test_a_card_with_a_name_of_245_bytes_is_written(tmp_path):
    path = tmp_path / ("é" * 120 + ".toml")  # 245 bytes: a temp name built from it would not fit
    write_card(path, {"strength": 0.5}, expected_digest=None)
    assert read_card(path)[0].strength == 0.5
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_card_that_cannot_be_written_is_one_line_and_the_old_card_stays(indexed, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(card_file, "atomic_write", denied)
    res = card(indexed, "strength=0.1")
    assert res.exit_code == 1 and "ink.toml: cannot write the card (Permission denied)" in res.output
    assert "Traceback" not in res.output
    assert (indexed / "style/ink/ink.toml").read_text("utf-8") == HAND_EDITED


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_card_set_in_a_read_only_folder_is_one_line(indexed):
    folder = indexed / "style/ink"
    folder.chmod(0o555)
    try:
        res = card(indexed, "strength=0.1")
    finally:
        folder.chmod(0o755)
    assert res.exit_code == 1 and "cannot write the card (Permission denied)" in res.output
    assert "Traceback" not in res.output and (folder / "ink.toml").read_text("utf-8") == HAND_EDITED


def test_a_form_opened_before_another_edit_saves_onto_it(folder):
    from catalog.index.browse import changed_fields, open_card
    from catalog.cards.card import parse_set

    path = folder / "ink.toml"
    path.write_text(HAND_EDITED, "utf-8")
    draft = open_card(path)
    write_card(path, {"tags": ["ink"]}, expected_digest=draft.digest)  # `lutnav card` while the form is open
    items = changed_fields(draft, {**draft.fields, "strength": "0.3"})
    write_card(path, parse_set(items), expected_digest=draft.digest, base=draft.values)
    raw = tomllib.loads(path.read_text("utf-8"))
    assert raw["tags"] == ["ink"] and raw["strength"] == 0.3


def test_a_card_that_is_a_link_is_refused_and_neither_end_changes(indexed, tmp_path):
    """A scan never reads a linked card; an edit through one would copy the target's text into
    the library, or clash with it on every retry."""
    lib = indexed
    card = lib / "style" / "ink" / "ink.toml"
    outside = tmp_path / "pyproject.toml"
    outside.write_text('[project]\nname = "mine"\n')
    card.unlink(missing_ok=True)
    card.symlink_to(outside)
    for _ in range(2):  # the retry the message suggests does not loop into the same refusal elsewhere
        result = CliRunner().invoke(cli, ["--library", str(lib), "card", "ink", "--set", "strength=0.5"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{card}: the card is a link" in result.output and len(result.output.strip().splitlines()) == 1
    assert card.is_symlink() and outside.read_text() == '[project]\nname = "mine"\n'

"""Every command that writes a card asks first: never over another file's card, never over a card
without being told, and a refusal comes before anything is written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.cards.card_slot import card_slot, claim_card
from catalog.errors import CardExists, CardTaken
from lutnav.cli import cli
from tests.mixlib import SD1_PICK, build_library, pick, write_lora

PYPROJECT = b'[project]\nname = "mine"\nversion = "1.0"\n'
MY_CARD = b'# my blend notes\nnotes = "keep"\nstrength = 0.4\n'


@pytest.fixture
def lib(tmp_path):
    return build_library(tmp_path / "loras")


def run(lib, *args):
    return CliRunner().invoke(cli, ["--library", str(lib.root), *args])


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the one rule ----------------------------------------------------------------------


def test_card_slot_tells_free_own_orphan_and_someone_elses(tmp_path):
    lora = tmp_path / "x.safetensors"
    assert card_slot(lora).free
    (tmp_path / "x.toml").write_bytes(MY_CARD)
    orphan = card_slot(lora)
    assert orphan.taken_by is None and orphan.values == {"notes": "keep", "strength": 0.4}
    with pytest.raises(CardExists, match="a card with no x.safetensors beside it"):
        claim_card(lora, replace=False)
    assert claim_card(lora, replace=True).digest == orphan.digest
    (tmp_path / "x.ckpt").write_bytes(b"pickle")
    with pytest.raises(CardTaken, match="belongs to x.ckpt .its card."):
        claim_card(lora, replace=True)
    (tmp_path / "x.ckpt").unlink()
    (tmp_path / "x.toml").write_bytes(PYPROJECT)
    with pytest.raises(CardTaken, match="not a lutnav card .it holds `project`, not a card field"):
        claim_card(lora, replace=True)
    (tmp_path / "x.toml").unlink()
    (tmp_path / "x.toml").symlink_to(tmp_path / "elsewhere.toml")
    with pytest.raises(CardTaken, match="is a link"):
        claim_card(lora, replace=True)


# --- mix --out ---------------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_mix_refuses_a_card_name_held_by_a_project_file_before_merging(lib, tmp_path, overwrite):
    (tmp_path / "pyproject.toml").write_bytes(PYPROJECT)
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(tmp_path / "pyproject.safetensors"), *overwrite)
    assert res.exit_code == 1
    assert "pyproject.toml: is not a lutnav card" in res.output and "Traceback" not in res.output
    assert "wrote" not in res.output
    assert (tmp_path / "pyproject.toml").read_bytes() == PYPROJECT
    assert not (tmp_path / "pyproject.safetensors").exists()


def test_mix_never_writes_over_another_entrys_card(lib):
    card = lib.root / "style/old/old.toml"
    card.write_bytes(MY_CARD)  # the card of style/old/old.ckpt
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(lib.root / "style/old/old.safetensors"),
              "--overwrite")
    assert res.exit_code == 1 and "old.toml: belongs to old.ckpt (its card)" in res.output
    assert card.read_bytes() == MY_CARD
    assert names(card.parent) == ["old.ckpt", "old.toml"]
    card.unlink()  # no card yet: the name is still old.ckpt's
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(lib.root / "style/old/old.safetensors"))
    assert res.exit_code == 1 and "old.toml: belongs to old.ckpt (its card)" in res.output
    assert names(card.parent) == ["old.ckpt"]


def test_mix_keeps_a_card_outside_the_library_unless_told(lib, tmp_path):
    other = tmp_path / "other.toml"
    other.write_bytes(MY_CARD)
    out = tmp_path / "other.safetensors"
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(out))
    assert res.exit_code == 1 and "--overwrite" in res.output and "other.toml" in res.output
    assert other.read_bytes() == MY_CARD and not out.exists()
    res = run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    text = other.read_text("utf-8")
    assert text.startswith("# my blend notes\n")  # told to replace: the fields mix sets, in place
    assert tomllib.loads(text)["parents"] == ["style/ink/ink.safetensors", "character/hero/hero.safetensors"]


def test_mix_overwrite_of_its_own_output_updates_the_card_in_place(lib, tmp_path):
    out = tmp_path / "blend.safetensors"
    assert run(lib, "mix", "ink:0.5", "hero:0.3", "--out", str(out)).exit_code == 0
    card = tmp_path / "blend.toml"
    card.write_text("# tuned by hand\n" + card.read_text("utf-8") + 'themes = ["ink"]\n', "utf-8")
    res = run(lib, "mix", "ink:0.4", "hero:0.3", "--out", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    text = card.read_text("utf-8")
    assert text.startswith("# tuned by hand\n") and tomllib.loads(text)["themes"] == ["ink"]
    assert "ink at 0.4" in tomllib.loads(text)["description"]


# --- convert ------------------------------------------------------------------------------


def test_convert_refuses_before_writing_and_carries_the_source_card(lib, tmp_path):
    (lib.root / "style/ink/ink.diffusers.toml").write_bytes(PYPROJECT)
    res = run(lib, "convert", "ink", "--to", "diffusers", "--overwrite")
    assert res.exit_code == 1 and "ink.diffusers.toml: is not a lutnav card" in res.output
    assert not (lib.root / "style/ink/ink.diffusers.safetensors").exists()
    (lib.root / "style/ink/ink.diffusers.toml").unlink()
    res = run(lib, "convert", "ink", "--to", "diffusers")
    assert res.exit_code == 0, res.output
    card = tomllib.loads((lib.root / "style/ink/ink.diffusers.toml").read_text("utf-8"))
    assert card == {"strength": 0.6, "strength_range": [0.4, 0.8], "trigger_words": ["ink wash"]}
    entry = lib.get("style/ink/ink.diffusers.safetensors")
    assert entry.trigger_words == ["ink wash"] and entry.strength == 0.6


def test_convert_keeps_an_existing_card_unless_told(lib, tmp_path):
    out = tmp_path / "ink2.safetensors"
    (tmp_path / "ink2.toml").write_bytes(MY_CARD)
    res = run(lib, "convert", "ink", "--to", "kohya", "--out", str(out))
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert not out.exists() and (tmp_path / "ink2.toml").read_bytes() == MY_CARD


# --- pull ----------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["x.ckpt", None])
def test_pull_takes_another_name_when_the_card_name_is_someone_elses(tmp_path, owner):
    from tests.hubserver import lora_bytes, new_library, run as hub_run

    library = new_library(tmp_path)
    theme = library / "style" / "ink"
    theme.mkdir(parents=True)
    foreign = MY_CARD if owner else PYPROJECT
    (theme / "x.toml").write_bytes(foreign)
    if owner:
        (theme / owner).write_bytes(b"pickle")
    src = tmp_path / "dl" / "x.safetensors"
    src.parent.mkdir()
    src.write_bytes(lora_bytes(seed=3))
    (src.parent / "x.toml").write_text('strength = 0.9\n', "utf-8")
    hub_run(library, "pull", str(src), "--category", "style", "--theme", "ink", "--overwrite")
    assert (theme / "x.toml").read_bytes() == foreign
    assert not (theme / "x.safetensors").exists()
    assert tomllib.loads((theme / "x_2.toml").read_text("utf-8"))["strength"] == 0.9


# --- train (filing the result) ---------------------------------------------------------------


def _trained(tmp_path: Path) -> Path:
    return write_lora(tmp_path / "out" / "cats.safetensors", pick("sd1", SD1_PICK))


def test_filing_never_deletes_a_file_that_holds_the_card_name(tmp_path):
    from trainers.handoff import file_into_library

    library = tmp_path / "loras"
    (library / "character/cats").mkdir(parents=True)
    project = library / "character/cats/my_cat.toml"
    project.write_bytes(PYPROJECT)
    with pytest.raises(CardTaken, match="not a lutnav card"):
        file_into_library(library, _trained(tmp_path), category="character", theme="cats", name="my_cat",
                          card={"title": "my_cat"}, overwrite=True)
    assert project.read_bytes() == PYPROJECT
    assert names(project.parent) == ["my_cat.toml"]


def test_filing_replaces_a_left_over_card_only_with_overwrite(tmp_path):
    from trainers.handoff import check_filing, file_into_library

    library = tmp_path / "loras"
    (library / "character/cats").mkdir(parents=True)
    card = library / "character/cats/my_cat.toml"
    card.write_bytes(MY_CARD)
    with pytest.raises(CardExists, match="overwrite = true"):  # checked before training starts
        check_filing(library, category="character", theme="cats", name="my_cat", is_folder=False)
    with pytest.raises(CardExists):
        file_into_library(library, _trained(tmp_path), category="character", theme="cats", name="my_cat",
                          card={"title": "my_cat"})
    assert card.read_bytes() == MY_CARD and names(card.parent) == ["my_cat.toml"]
    file_into_library(library, _trained(tmp_path), category="character", theme="cats", name="my_cat",
                      card={"title": "my_cat"}, overwrite=True)
    assert tomllib.loads(card.read_text("utf-8")) == {"title": "my_cat"}


# --- demo ------------------------------------------------------------------------------------------


def test_demo_keeps_a_card_the_user_edited_unless_told(tmp_path):
    root = tmp_path / "loras"
    assert CliRunner().invoke(cli, ["demo", "--into", str(root)]).exit_code == 0
    card = root / "character/cats/zzcat.toml"
    demo_card = card.read_bytes()
    card.write_text("# mine\n" + card.read_text("utf-8").replace("0.8", "0.65"), "utf-8")
    edited = card.read_bytes()
    res = CliRunner().invoke(cli, ["demo", "--into", str(root)])
    assert res.exit_code == 0, res.output
    assert card.read_bytes() == edited and "kept character/cats/zzcat.toml" in res.output
    res = CliRunner().invoke(cli, ["demo", "--into", str(root), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert card.read_bytes() == demo_card


def test_demo_again_keeps_comments_added_to_a_card_whose_values_it_would_write(tmp_path):
    root = tmp_path / "loras"
    assert CliRunner().invoke(cli, ["demo", "--into", str(root)]).exit_code == 0
    card = root / "character/cats/zzcat.toml"
    card.write_bytes(b"# where I use it: posters\r\n" + card.read_bytes().replace(b"\n", b"\r\n"))
    edited = card.read_bytes()
    res = CliRunner().invoke(cli, ["demo", "--into", str(root)])
    assert res.exit_code == 0, res.output
    assert card.read_bytes() == edited


@pytest.mark.parametrize("spelling", ["plain", "dotted"])
def test_mix_out_onto_one_of_its_inputs_is_refused_even_with_overwrite(lib, spelling):
    ink = lib.root / "style/ink/ink.safetensors"
    before, card = ink.read_bytes(), (lib.root / "style/ink/ink.toml").read_bytes()
    out = ink if spelling == "plain" else lib.root / "style/ink/../ink/./ink.safetensors"
    result = run(lib, "mix", "ink:0.5", "hero:0.4", "--out", str(out), "--force", "--overwrite")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "refusing to write the blend over ink, one of the files it blends" in result.output
    assert ink.read_bytes() == before and (lib.root / "style/ink/ink.toml").read_bytes() == card

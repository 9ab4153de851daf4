"""lutnav's own card: schema, `--set` parsing, strict reads and safe writes."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import schemas
from catalog.cards import card_file
from catalog.cards.card import Card, card_schema, card_schema_text, check_card_dict, parse_set
from catalog.cards.card_file import read_card, write_card
from catalog.errors import CardConflict, CardError, SidecarError

SCHEMA_FILE = Path(schemas.__file__).parent / "model-card.schema.json"

CARD_TEXT = """\
title = "Ink wash"
trigger_words = ["mo_shui", "ink"]
strength = 0.7
strength_range = [0.6, 0.8]
themes = ["landscape"]

[training]
steps = 1200
"""


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "style" / "ink"
    folder.mkdir(parents=True)
    (folder / "ink.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- schema ----------------------------------------------------------------------


def test_committed_schema_file_is_the_generated_one():
    assert SCHEMA_FILE.read_text("utf-8") == card_schema_text(), "run `python -m catalog.cards.card` to regenerate"
    assert schemas.load("model-card") == card_schema()


def test_schema_is_valid_draft_2020_12_and_closed():
    Draft202012Validator.check_schema(card_schema())
    assert card_schema()["additionalProperties"] is False
    assert set(card_schema()["properties"]) == set(Card.__dataclass_fields__)


@pytest.mark.parametrize(
    ("card", "valid"),
    [
        ({"strength": 0.7, "trigger_words": ["a"], "strength_range": [0.5, 0.9]}, True),
        ({"training": {"steps": 10, "optimizer": "adamw"}, "previews": ["ink.preview.png", "img/a.png"]}, True),
        ({"strength": "abc"}, False),
        ({"trigger_words": [1, 2]}, False),
        ({"strength_range": [0.5]}, False),
        ({"strength_range": [0.5, 0.6, 0.7]}, False),
        ({"strenght": 0.7}, False),
        ({"previews": ["/etc/passwd"]}, False),
        ({"previews": ["../other/x.png"]}, False),
        ({"training": "fast"}, False),
    ],
)
def test_code_checks_agree_with_the_shipped_schema(card, valid):
    schema_ok = Draft202012Validator(schemas.load("model-card")).is_valid(card)
    _, problems = check_card_dict(card)
    assert schema_ok is valid
    assert (not problems) is valid


# --- parse_set ---------------------------------------------------------------------


def test_parse_set_values_by_type():
    updates = parse_set([
        "strength=0.7",
        "trigger_words=mo_shui, ink，水墨",
        "strength_range=0.6~0.8",
        "themes=山水、花鸟",
        "notes=",
        "training.steps=1000",
        "training.lr=1e-4",
        "training.optimizer=adamw8bit",
    ])
    assert updates == {
        "strength": 0.7,
        "trigger_words": ["mo_shui", "ink", "水墨"],
        "strength_range": [0.6, 0.8],
        "themes": ["山水", "花鸟"],
        "notes": None,
        "training": {"steps": 1000, "lr": 1e-4, "optimizer": "adamw8bit"},
    }
    assert parse_set(["strength_range=0.6,0.8"]) == {"strength_range": [0.6, 0.8]}
    assert parse_set(["trigger_words=无"]) == {"trigger_words": []}


def test_parse_set_unknown_key_suggests_the_nearest():
    with pytest.raises(CardError) as err:
        parse_set(["strenght=0.7"])
    assert "`strenght`" in str(err.value) and "did you mean `strength`" in str(err.value)
    with pytest.raises(CardError, match="did you mean `trigger_words`"):
        parse_set(["trigger=foo"])


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("strength=abc", ["strength", "'abc'", "number"]),
        ("strength_range=0.9~0.4", ["strength_range", "0.9~0.4", "low"]),
        ("strength_range=lots", ["strength_range", "two numbers"]),
        ("previews=/etc/passwd", ["previews", "relative"]),
        ("strength", ["KEY=VALUE"]),
    ],
)
def test_parse_set_bad_values_name_key_value_and_type(item, words):
    with pytest.raises(CardError) as err:
        parse_set([item])
    for word in words:
        assert word in str(err.value)


# --- read_card ---------------------------------------------------------------------


def test_read_card_round_trip_and_digest(library):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    card, digest = read_card(path)
    assert card.strength == 0.7 and card.strength_range == (0.6, 0.8)
    assert card.trigger_words == ["mo_shui", "ink"] and card.training == {"steps": 1200}
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_card(library / "missing.toml") == (Card(), None)


def test_read_card_malformed_toml_names_the_line(library):
    path = library / "ink.toml"
    path.write_text('title = "x"\nstrength = 0.7\ntrigger_words = [oops\n', "utf-8")
    with pytest.raises(SidecarError) as err:
        read_card(path)
    assert "ink.toml" in str(err.value) and "line 3" in str(err.value)


def test_read_card_bad_value_names_the_key(library):
    path = library / "ink.toml"
    path.write_text('strength = "strong"\n', "utf-8")
    with pytest.raises(SidecarError, match="`strength`"):
        read_card(path)


# --- write_card --------------------------------------------------------------------


def test_write_new_card_then_update_keeps_other_fields(library):
    path = library / "ink.toml"
    lora_before = (library / "ink.safetensors").read_bytes()
    write_card(path, parse_set(["strength=0.7", "trigger_words=mo_shui, ink"]), expected_digest=None)
    card, digest = read_card(path)
    assert card.strength == 0.7 and card.trigger_words == ["mo_shui", "ink"]

    write_card(path, parse_set(["strength=1", "notes=keep away from high contrast"]), expected_digest=digest)
    card, _ = read_card(path)
    assert card.strength == 1.0 and card.trigger_words == ["mo_shui", "ink"]
    assert card.notes == "keep away from high contrast"
    assert "strength = 1.0" in path.read_text("utf-8")
    assert (library / "ink.safetensors").read_bytes() == lora_before
    assert listing(library) == ["ink.safetensors", "ink.toml"]


def test_clearing_and_training_merge(library):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    _, digest = read_card(path)
    write_card(path, parse_set(["themes=", "training.lr=1e-4"]), expected_digest=digest)
    raw = tomllib.loads(path.read_text("utf-8"))
    assert "themes" not in raw
    assert raw["training"] == {"steps": 1200, "lr": 1e-4}
    assert raw["title"] == "Ink wash"


@pytest.mark.parametrize(
    "updates",
    [{"strength": "abc"}, {"strenght": 0.7}, {"strength_range": [0.9, 0.1]}, {"trigger_words": 5}],
)
def test_invalid_update_leaves_the_file_byte_for_byte(library, updates):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    before = path.read_bytes()
    _, digest = read_card(path)
    with pytest.raises(CardError):
        write_card(path, updates, expected_digest=digest)
    assert path.read_bytes() == before
    assert listing(library) == ["ink.safetensors", "ink.toml"]


def test_card_edited_between_read_and_write_is_refused(library):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    _, digest = read_card(path)
    edited = CARD_TEXT.replace("0.7", "0.55")
    path.write_text(edited, "utf-8")  # someone else's edit, between `show` and `card --set`
    with pytest.raises(CardConflict):
        write_card(path, {"strength": 0.9}, expected_digest=digest)
    assert path.read_text("utf-8") == edited


def test_card_created_or_deleted_since_read_is_refused(library):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    with pytest.raises(CardConflict, match="created"):
        write_card(path, {"strength": 0.9}, expected_digest=None)
    assert path.read_text("utf-8") == CARD_TEXT
    _, digest = read_card(path)
    path.unlink()
    with pytest.raises(CardConflict, match="deleted"):
        write_card(path, {"strength": 0.9}, expected_digest=digest)
    assert not path.exists()


def test_malformed_existing_card_is_not_overwritten(library):
    path = library / "ink.toml"
    path.write_text("strength = = 1\n", "utf-8")
    data = path.read_bytes()
    with pytest.raises(SidecarError, match="line 1"):
        write_card(path, {"strength": 0.9}, expected_digest=hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data


def test_failed_rename_leaves_old_card_and_no_temp_file(library, monkeypatch):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    _, digest = read_card(path)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(card_file.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_card(path, {"strength": 0.9}, expected_digest=digest)
    assert path.read_text("utf-8") == CARD_TEXT
    assert listing(library) == ["ink.safetensors", "ink.toml"]


def test_edit_racing_the_write_is_caught_before_rename(library, monkeypatch):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    _, digest = read_card(path)
    real_fsync = os.fsync

    def fsync_then_someone_edits(fd):
        real_fsync(fd)
        path.write_text("title = \"theirs\"\n", "utf-8")

    monkeypatch.setattr(card_file.os, "fsync", fsync_then_someone_edits)
    with pytest.raises(CardConflict):
        write_card(path, {"strength": 0.9}, expected_digest=digest)
    assert path.read_text("utf-8") == 'title = "theirs"\n'
    assert listing(library) == ["ink.safetensors", "ink.toml"]


def test_refuses_to_write_anything_but_a_toml(library):
    lora = library / "ink.safetensors"
    before = lora.read_bytes()
    with pytest.raises(CardError, match=".toml"):
        write_card(lora, {"strength": 0.9}, expected_digest=None)
    assert lora.read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_of_an_existing_card_are_kept(library):
    path = library / "ink.toml"
    path.write_text(CARD_TEXT, "utf-8")
    path.chmod(0o600)
    _, digest = read_card(path)
    write_card(path, {"strength": 0.9}, expected_digest=digest)
    assert path.stat().st_mode & 0o777 == 0o600


def test_bad_key_already_in_the_file_is_named_as_such(library):
    path = library / "ink.toml"
    path.write_text('strenght = 0.7\n', "utf-8")
    before = path.read_bytes()
    with pytest.raises(CardError) as err:
        write_card(path, {"notes": "x"}, expected_digest=hashlib.sha256(before).hexdigest())
    assert "`strenght`" in str(err.value) and "already in the file" in str(err.value)
    assert path.read_bytes() == before

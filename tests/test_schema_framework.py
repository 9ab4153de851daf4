"""One schema framework for the card, the train config and the mix recipe: the same mistakes get
the same kind of message — the file, the line, the key, what was expected, the nearest real key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import schemas
from catalog.cards.card_file import read_card, write_card
from catalog.errors import CardError, SidecarError
from catalog.schema import check_table, declared
from catalog.schema.json_schema import schema_text
from lutnav.mix.errors import RecipeError
from lutnav.mix.recipe import load_recipe, recipe_schema
from trainers.config import load_config
from trainers.errors import ConfigError

CONFIG_HEAD = 'task_type = "text-generation"\nbase_model = "m"\ntrain_data = "d.jsonl"\n'
RECIPE_HEAD = 'name = "ink_hero"\n\n[[lora]]\nname = "ink"\n'


def _error(path: Path, text: str, load, error: type[Exception]) -> str:
    path.write_text(text, "utf-8")
    with pytest.raises(error) as err:
        load(path)
    return str(err.value)


def card_error(tmp_path: Path, text: str) -> str:
    return _error(tmp_path / "ink.toml", text, read_card, SidecarError)


def config_error(tmp_path: Path, text: str) -> str:
    return _error(tmp_path / "cfg.toml", text, load_config, ConfigError)


def recipe_error(tmp_path: Path, text: str) -> str:
    return _error(tmp_path / "blend.toml", text, load_recipe, RecipeError)


# --- the same three mistakes in each file ---------------------------------------------------------


def test_unknown_key_gets_its_line_and_the_nearest_key(tmp_path):
    card = card_error(tmp_path, 'title = "Ink"\n\nstrenght = 0.7\n')
    assert "ink.toml: line 3: `strenght` is not a card field — did you mean `strength`?" in card

    config = config_error(tmp_path, CONFIG_HEAD + "\nlearning_rat = 1e-4\n")
    assert "cfg.toml:5: `learning_rat` is not a setting — did you mean `learning_rate`?" in config

    recipe = recipe_error(tmp_path, RECIPE_HEAD + "\n[preview]\nprompt = \"hills\"\nstpes = 4\n")
    assert "blend.toml: line 8: `stpes` in `preview` is not a recipe key — did you mean `steps`?" in recipe


def test_a_foreign_spelling_points_at_the_real_key(tmp_path):
    assert "did you mean `trigger_words`" in card_error(tmp_path, 'activation_text = "ink"\n')
    assert "cfg.toml:4: `network_dim` is not a setting — did you mean `lora_rank`?" in config_error(
        tmp_path, CONFIG_HEAD + "network_dim = 8\n")


def test_wrong_type_names_key_line_and_expected_type(tmp_path):
    card = card_error(tmp_path, 'title = "Ink"\nstrength = "strong"\n')
    assert "line 2: `strength` = 'strong': expected a number" in card

    config = config_error(tmp_path, CONFIG_HEAD + 'batch_size = "four"\n')
    assert "cfg.toml:4: `batch_size` = 'four': expected an integer" in config

    recipe = recipe_error(tmp_path, RECIPE_HEAD + '\n[[lora]]\nname = "hero"\nweight = "strong"\n')
    assert "line 8: `lora.1.weight` = 'strong': expected a number" in recipe


def test_a_bound_of_zero_is_a_bound(tmp_path):
    config = config_error(tmp_path, CONFIG_HEAD + "weight_decay = -0.1\n")
    assert "cfg.toml:4: `weight_decay` = -0.1: expected a value >= 0" in config


def test_bad_choice_lists_the_choices_and_the_nearest(tmp_path):
    config = config_error(tmp_path, CONFIG_HEAD + 'optimizer = "adamw9bit"\n')
    assert ("cfg.toml:4: `optimizer` = 'adamw9bit': expected one of 'AdamW', 'AdamW8bit', 'Adafactor', "
            "'Prodigy' — did you mean 'AdamW8bit'?") in config


def test_bad_choice_in_any_declared_table():
    """Neither the card nor the recipe has a field with choices today; the framework serves them alike."""

    @dataclass(kw_only=True)
    class Sampler:
        scheduler: str = declared("euler", "Sampler.", choices=("euler", "dpm++", "ddim"))

    clean, findings = check_table(Sampler, {"scheduler": "DDIM"})
    assert clean == {"scheduler": "ddim"} and findings == []
    _, findings = check_table(Sampler, {"scheduler": "eulr"}, text='\n scheduler = "eulr"\n', noun="option")
    assert [str(f) for f in findings] == [
        "line 2: `scheduler` = 'eulr': expected one of 'euler', 'dpm++', 'ddim' — did you mean 'euler'?"]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    recipe = recipe_error(tmp_path, 'nmae = "x"\nrank = 0\n[[lora]]\nweight = 1\n')
    assert "line 1: `nmae`" in recipe and "line 2: `rank` = 0: expected a value >= 1" in recipe
    assert "line 3: `lora.0.name` is required" in recipe


def test_a_card_write_that_breaks_the_schema_names_the_line_and_changes_nothing(tmp_path):
    path = tmp_path / "ink.toml"
    path.write_text('title = "Ink"\nstrenght = 0.7\n', "utf-8")
    before = path.read_bytes()
    with pytest.raises(CardError) as err:
        write_card(path, {"notes": "soft"}, expected_digest=None, base={})
    assert "line 2: `strenght` is not a card field" in str(err.value)
    assert "already in the file" in str(err.value)
    assert path.read_bytes() == before


# --- the recipe's schema comes from the same declaration ---------------------------------------


def test_committed_recipe_schema_is_the_generated_one():
    committed = Path(schemas.__file__).parent / "mix-recipe.schema.json"
    assert committed.read_text("utf-8") == schema_text(recipe_schema()), "run `python -m lutnav.mix.recipe`"
    Draft202012Validator.check_schema(recipe_schema())


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('[[lora]]\nname = "ink"\nweight = 0.6\n', True),
        ('out = "a.safetensors"\nrank = 4\n[[lora]]\nname = "ink"\n[preview]\nsize = 512\nguidance = 7\n', True),
        ('lora = []\n', False),
        ('[[lora]]\nname = ""\n', False),
        ('[[lora]]\nweight = 1\n', False),
        ('out = "a.ckpt"\n[[lora]]\nname = "ink"\n', False),
        ('rank = 0\n[[lora]]\nname = "ink"\n', False),
        ('[[lora]]\nname = "ink"\n[preview]\nsize = 100\n', False),
        ('[[lora]]\nname = "ink"\nwieght = 1\n', False),
        ('force = "yes"\n[[lora]]\nname = "ink"\n', False),
    ],
)
def test_recipe_checks_agree_with_the_shipped_schema(tmp_path, text, valid):
    import tomllib

    path = tmp_path / "blend.toml"
    path.write_text(text, "utf-8")
    schema_ok = Draft202012Validator(schemas.load("mix-recipe")).is_valid(tomllib.loads(text))
    try:
        load_recipe(path)
        loaded = True
    except RecipeError:
        loaded = False
    assert schema_ok is valid and loaded is valid


def test_nested_tables_become_closed_objects_with_their_own_required_keys():
    lora = recipe_schema()["properties"]["lora"]
    assert lora["minItems"] == 1
    assert lora["items"]["required"] == ["name"] and lora["items"]["additionalProperties"] is False

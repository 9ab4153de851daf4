"""Image training data: every layout people use, every check reported at once (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from trainers.config import parse_config
from trainers.errors import ConfigError, DatasetError
from trainers.image.buckets import make_buckets, nearest_bucket, place
from trainers.image.checks import check_dataset, tag_frequency
from trainers.image.dataset import read_dataset


def _img(path: Path, size=(64, 64), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _check(layout, size=(64, 64), trigger=(), **kw):
    return check_dataset(layout, size=size, bucketed=False, trigger_words=list(trigger), **kw)


def test_csv_with_bom_crlf_quotes_and_other_column_names(tmp_path):
    for i in range(3):
        _img(tmp_path / f"{i}.png", color=(i * 40, 10, 10))
    text = ('\ufefffile_name,text\r\n0.png,"zzcat, a cat, on a sofa"\r\n'
            '1.png,"zzcat said ""hi"""\r\n2.png,"two\r\nlines"\r\n')
    (tmp_path / "metadata.csv").write_bytes(text.encode("utf-8"))
    layout = read_dataset(tmp_path)
    assert layout.kind == "metadata.csv"
    checked = _check(layout)
    assert [i.caption for i in checked.items] == ["zzcat, a cat, on a sofa", 'zzcat said "hi"', "two lines"]
    assert [r.line for r in layout.rows] == [2, 3, 4]
    assert tag_frequency(checked.items)[tmp_path.name] == {"zzcat": 1, "a cat": 1, "on a sofa": 1,
                                                          'zzcat said "hi"': 1, "two lines": 1}


def test_jsonl_and_sidecar_captions(tmp_path):
    jsonl_dir = tmp_path / "j"
    _img(jsonl_dir / "a.png")
    _img(jsonl_dir / "b.png", color=(1, 2, 3))
    (jsonl_dir / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "zzcat one"}\n'
                                              '{"image": "b.png", "caption": "zzcat two"}\n', "utf-8")
    assert [i.caption for i in _check(read_dataset(jsonl_dir)).items] == ["zzcat one", "zzcat two"]

    side = tmp_path / "s"
    _img(side / "a.png")
    _img(side / "b.jpg", color=(9, 9, 9))
    (side / "a.txt").write_text("zzcat  first\n", "utf-8")
    (side / "b.caption").write_text("zzcat second", "utf-8")
    layout = read_dataset(side)
    assert layout.kind == "captions beside images"
    assert [i.caption for i in _check(layout).items] == ["zzcat first", "zzcat second"]


def test_kohya_folders_repeats_and_dash_spelling(tmp_path):
    _img(tmp_path / "10_zzcat" / "a.png")
    (tmp_path / "10_zzcat" / "a.txt").write_text("zzcat on grass", "utf-8")
    _img(tmp_path / "10_zzcat" / "b.png", color=(5, 5, 5))          # no caption: the class word
    _img(tmp_path / "3-cat" / "c.png", color=(7, 7, 7))
    (tmp_path / "misc").mkdir()
    layout = read_dataset(tmp_path)
    assert layout.kind == "kohya folders"
    checked = _check(layout)
    by_name = {i.path.name: i for i in checked.items}
    assert by_name["a.png"].repeats == 10 and by_name["a.png"].caption == "zzcat on grass"
    assert by_name["b.png"].caption == "zzcat"
    assert by_name["c.png"].repeats == 3 and by_name["c.png"].folder == "3-cat"
    notes = "\n".join(checked.warnings)
    assert "3-cat/: read as 3 repeats of 'cat'" in notes
    assert "misc/: not a kohya" in notes
    assert "use the class word 'zzcat'" in notes


def test_every_error_is_reported_at_once_with_file_and_row(tmp_path):
    _img(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _img(tmp_path / "blank.png", color=(0, 0, 9))
    rows = ["filename,prompt", "ok.png,zzcat a", "missing.png,zzcat b", "broken.png,zzcat c",
            "ok.png,zzcat again", "blank.png,   "]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n", "utf-8")
    with pytest.raises(DatasetError) as info:
        _check(read_dataset(tmp_path))
    problems = {p.line: p.message for p in info.value.problems}
    assert set(problems) == {3, 4, 5, 6}
    assert "missing.png: image file not found" in problems[3]
    assert "not a decodable image" in problems[4]
    assert "listed twice" in problems[5] and ":2" in problems[5]
    assert "empty caption" in problems[6]
    text = str(info.value)
    assert "metadata.csv:3" in text and "4 problems" in text


def test_csv_without_caption_column_or_with_unquoted_commas(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_text("filename,tags\na.png,x\n", "utf-8")
    with pytest.raises(DatasetError, match=r"metadata.csv:1: header \['filename', 'tags'\]: expected a caption"):
        _check(read_dataset(tmp_path))
    (tmp_path / "metadata.csv").write_text("filename,prompt\na.png,zzcat, a cat\n", "utf-8")
    with pytest.raises(DatasetError, match=r"metadata.csv:2: 3 fields, expected 2: quote captions"):
        _check(read_dataset(tmp_path))


def test_warnings_small_same_picture_long_caption_trigger_and_few_images(tmp_path):
    _img(tmp_path / "big.png", size=(128, 128))
    _img(tmp_path / "small.png", size=(40, 64), color=(1, 1, 1))
    _img(tmp_path / "copy.png", size=(128, 128))   # same pixels, same bytes as big.png
    rows = ["filename,prompt", "big.png,zzcat big", "small.png,a small one", "copy.png," + "word " * 30]
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n", "utf-8")
    checked = _check(read_dataset(tmp_path), trigger=["zzcat"], token_count=lambda t: len(t.split()),
                     token_limit=20)
    text = "\n".join(checked.warnings)
    assert "small.png is 40x64, smaller than the training size 64x64" in text
    assert "copy.png is the same picture as big.png" in text
    assert "1 caption(s) are longer than the text encoder's 20 tokens" in text and "metadata.csv:4" in text
    assert "trigger word 'zzcat' is missing from 2 of 3 captions" in text
    assert "only 3 images" in text


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no images found"):
        _check(read_dataset(tmp_path))


def test_buckets_keep_the_area_and_pick_the_nearest_ratio():
    buckets = make_buckets((512, 512), min_side=256, max_side=1024, steps=64)
    assert (512, 512) in buckets
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert nearest_bucket(1000, 500, buckets) in {(704, 320), (768, 320), (704, 384), (640, 384)}
    assert nearest_bucket(500, 1000, buckets)[1] > nearest_bucket(500, 1000, buckets)[0]
    p = place(200, 100, (64, 64))
    assert p.scaled == (128, 64) and (p.crop_left, p.crop_top) == (32, 0)


def _image_config(tmp_path, body: str):
    text = 'task_type = "image-generation"\nbase_model = "sd"\ntrain_data_dir = "data"\n' + body
    return parse_config(text, tmp_path / "cfg.toml")


def test_image_config_keys_aliases_and_rules(tmp_path):
    config = _image_config(tmp_path, "alpha = 4\nresolution = [768, 512]\nconv_lora = true\nconv_dim = 2\n")
    assert config.alpha == 4 and config.size == (768, 512) and config.conv_rank_value == 2
    assert config.train_data_dir == str((tmp_path / "data").resolve())
    with pytest.raises(ConfigError) as info:
        _image_config(tmp_path, "resolution = 500\nconv_rank = 4\nstrength_range = [0.9, 0.5]\nlora_rnak = 8\n")
    text = str(info.value)
    assert "cfg.toml:7: `lora_rnak` is not a setting — did you mean `lora_rank`?" in text
    with pytest.raises(ConfigError) as info:
        _image_config(tmp_path, "resolution = 500\nconv_rank = 4\nstrength_range = [0.9, 0.5]\n")
    text = str(info.value)
    assert "cfg.toml:4: `resolution` = [500]: expected multiples of 8" in text
    assert "cfg.toml:5: `conv_rank` has no effect without conv_lora = true" in text
    assert "cfg.toml:6: `strength_range` = [0.9, 0.5]: expected [low, high]" in text


def _config_only_model(folder: Path, cross: int = 768) -> Path:
    """A diffusers folder with configs but no weights: enough for `--check`, which loads none."""
    (folder / "unet").mkdir(parents=True)
    (folder / "scheduler").mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}', "utf-8")
    (folder / "unet" / "config.json").write_text(f'{{"cross_attention_dim": {cross}}}', "utf-8")
    (folder / "scheduler" / "scheduler_config.json").write_text('{"prediction_type": "v_prediction"}', "utf-8")
    return folder


def test_check_reports_every_data_problem_through_the_cli(tmp_path):
    from click.testing import CliRunner

    from lutnav.cli import cli

    _config_only_model(tmp_path / "sd", cross=1024)
    data = tmp_path / "data"
    for i in range(3):
        _img(data / f"{i}.png", color=(i, 2, 3))
    (data / "metadata.csv").write_text("filename,prompt\n0.png,zzcat\n9.png,zzcat\n1.png,\n2.png,zzcat\n", "utf-8")
    (tmp_path / "cfg.toml").write_text('task_type = "image-generation"\nbase_model = "sd"\ntrain_data_dir = "data"\n'
                                       'resolution = 64\n', "utf-8")
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "cfg.toml"), "--check"])
    assert result.exit_code == 1
    assert "2 problems" in result.output
    assert "metadata.csv:3: " in result.output and "9.png: image file not found" in result.output
    assert "metadata.csv:4: 1.png: empty caption" in result.output
    assert "Traceback" not in result.output

    (data / "metadata.csv").write_text("filename,prompt\n0.png,zzcat\n1.png,zzcat\n2.png,a dog\n", "utf-8")
    (tmp_path / "cfg.toml").write_text('task_type = "image-generation"\nbase_model = "sd"\ntrain_data_dir = "data"\n'
                                       'resolution = 64\ntrigger_words = ["zzcat"]\n', "utf-8")
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "cfg.toml"), "--check"])
    assert result.exit_code == 0, result.output
    assert "family          sd2 — UNet cross-attention width 1024, v-prediction" in result.output
    assert "trigger word 'zzcat' is missing from 1 of 3 captions: " in result.output
    assert "only 3 images" in result.output
    assert "est. memory     unknown" in result.output


ISSUE_EXAMPLE = '''
task_type = "image-generation"
base_model = "path/to/diffusers-folder"
model_family = "auto"
train_data_dir = "data/cats"
metadata_path = "data/cats/metadata.csv"
resolution = 512
lora_rank = 8
lora_alpha = 8
conv_lora = false
target = "unet"
batch_size = 4
gradient_accumulation_steps = 1
epochs = 10
learning_rate = 1e-4
text_encoder_lr = 5e-5
optimizer = "AdamW"
scheduler = "cosine"
mixed_precision = "fp16"
gradient_checkpointing = true
cache_latents = true
noise_offset = 0.0
min_snr_gamma = 5.0
seed = 42
output_dir = "output/cats"
save_steps = 500
sample_prompts = ["zzcat, a cat on a sofa"]
sample_steps = 20
log_with = "tensorboard"
resume = "auto"
name = "my_cat"
category = "character"
theme = "cats"
trigger_words = ["zzcat"]
strength_range = [0.6, 0.8]
'''


def test_the_documented_example_config_loads_and_fits_the_schema(tmp_path):
    import tomllib

    from jsonschema import Draft202012Validator

    from trainers.schema import train_config_schema

    config = parse_config(ISSUE_EXAMPLE, tmp_path / "cats.toml")
    assert (config.lora_rank, config.alpha, config.min_snr_gamma, config.strength_range) == (8, 8, 5.0, (0.6, 0.8))
    assert config.metadata_path == str((tmp_path / "data" / "cats" / "metadata.csv").resolve())
    validator = Draft202012Validator(train_config_schema())
    assert list(validator.iter_errors(tomllib.loads(ISSUE_EXAMPLE))) == []
    wrong = tomllib.loads(ISSUE_EXAMPLE) | {"conv_lora": "yes", "lora_rnak": 4}
    assert len(list(validator.iter_errors(wrong))) >= 2


def test_header_metadata_names_family_prediction_and_network(tmp_path):
    from trainers.image.export import lora_metadata

    config = _image_config(tmp_path, 'conv_lora = true\nconv_rank = 4\nconv_alpha = 1\nlora_alpha = 4\n'
                           'trigger_words = ["zzcat", "zz style"]\nname = "cats"\n')
    meta = lora_metadata(config=config, family="sd2", prediction_type="v_prediction", step=10, epoch=2,
                         total_steps=20, num_epochs=4, images=12, tag_frequency={"10_cat": {"zzcat": 12}},
                         resolution=(768, 768), base_name="sd2-base", started_at=0.0)
    assert meta["modelspec.architecture"] == "stable-diffusion-v2-768-v/lora"
    assert meta["modelspec.prediction_type"] == "v" and meta["ss_v2"] == "True"
    assert meta["ss_base_model_version"] == "sd_v2" and meta["ss_v_parameterization"] == "True"
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "1"}
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("8", "4")
    assert meta["modelspec.trigger_phrase"] == "zzcat, zz style"
    assert all(isinstance(v, str) for v in meta.values())


def test_bad_jsonl_lines_and_non_utf8_captions_are_listed_with_their_lines(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png", color=(1, 2, 3))
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "zzcat"}\n'
                                             '{"file_name": "b.png", "text": "zzcat\n["b.png"]\n', "utf-8")
    with pytest.raises(DatasetError) as info:
        _check(read_dataset(tmp_path))
    text = str(info.value)
    assert "metadata.jsonl:2: not valid JSON" in text and "metadata.jsonl:3: expected a JSON object" in text
    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "metadata.csv").write_bytes("filename,prompt\na.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"metadata.csv: not UTF-8 text \(bad byte at offset 25\); save it as UTF-8"):
        _check(read_dataset(tmp_path))

"""`lutnav label`: the plumbing from a local captioning model to caption files (not caption quality)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from catalog.progress import finish
from lutnav.label_cli import label_cmd
from trainers.errors import ModelLoadError
from trainers.label.models import find_model
from trainers.label.write import LabelConflict, label_folder, with_trigger

WORDS = ["a", "cat", "on", "the", "sofa", "red", "blue", "dog"]


def _images(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40 + 8 * i, 32), (40 * i, 100, 200)).save(folder / f"im{i}.png")
    return folder


def _fake(paths):
    for p in paths:
        yield p, f"  a photo of {p.stem} "


def test_trigger_is_prepended_once():
    assert with_trigger("a cat", "zzcat") == "zzcat, a cat"
    assert with_trigger("ZZcat sits", "zzcat") == "ZZcat sits"
    assert with_trigger("", "zzcat") == "zzcat"
    assert with_trigger(" a cat ", None) == "a cat"


def test_csv_and_txt_outputs_and_the_overwrite_guard(tmp_path):
    folder = _images(tmp_path / "imgs")
    done = finish(label_folder(folder, _fake, fmt="csv", trigger="zzcat"))
    with (folder / "metadata.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "prompt"]
    assert rows[1:] == [[f"im{i}.png", f"zzcat, a photo of im{i}"] for i in range(3)]
    assert done.images == 3

    with pytest.raises(LabelConflict, match=r"metadata.csv: would be replaced"):
        finish(label_folder(folder, _fake, fmt="csv"))
    (folder / "im1.txt").write_text("hand-written caption", "utf-8")
    with pytest.raises(LabelConflict) as info:
        finish(label_folder(folder, _fake, fmt="txt"))
    assert [Path(p.path).name for p in info.value.problems] == ["im1.txt"]
    assert (folder / "im1.txt").read_text("utf-8") == "hand-written caption"
    assert not (folder / "im0.txt").exists()   # refused before writing anything

    finish(label_folder(folder, _fake, fmt="txt", trigger="zzcat", overwrite=True))
    assert (folder / "im1.txt").read_text("utf-8") == "zzcat, a photo of im1\n"


def test_the_labelled_folder_reads_back_as_training_data(tmp_path):
    from trainers.image.checks import check_dataset
    from trainers.image.dataset import read_dataset

    folder = _images(tmp_path / "imgs")
    finish(label_folder(folder, _fake, fmt="txt", trigger="zzcat"))
    layout = read_dataset(folder)
    checked = check_dataset(layout, size=(32, 32), bucketed=False, trigger_words=["zzcat"])
    assert [i.caption for i in checked.items] == [f"zzcat, a photo of im{i}" for i in range(3)]


def test_a_missing_model_is_never_downloaded(tmp_path):
    with pytest.raises(ModelLoadError, match="hf download"):
        find_model(None)   # the HF cache is an empty temp folder in tests
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        find_model("someone/some-captioner")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a captioning model"):
        find_model(str(tmp_path / "empty"))


def _tiny_captioner(folder: Path) -> Path:
    """A random ViT → GPT-2 VisionEncoderDecoder with a word-level tokenizer, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (GPT2Config, PreTrainedTokenizerFast, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel, ViTConfig, ViTImageProcessor)

    torch.manual_seed(0)
    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>"] + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>")
    encoder = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                        image_size=32, patch_size=8)
    decoder = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=1, n_head=4, n_positions=64,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_label_command_with_a_tiny_captioning_model(tmp_path):
    model = _tiny_captioner(tmp_path / "captioner")
    folder = _images(tmp_path / "imgs", 3)
    runner = CliRunner()
    result = runner.invoke(label_cmd, [str(folder), "--model", str(model), "--trigger", "zzcat",
                                       "--max-new-tokens", "5"])
    assert result.exit_code == 0, result.output
    assert "captioned 3 images" in result.output
    with (folder / "metadata.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["filename"] for r in rows] == ["im0.png", "im1.png", "im2.png"]
    for r in rows:
        assert r["prompt"].startswith("zzcat")
        assert set(r["prompt"].removeprefix("zzcat").replace(",", " ").split()) <= set(WORDS)

    again = runner.invoke(label_cmd, [str(folder), "--model", str(model)])
    assert isinstance(again.exception, LabelConflict)
    txt = runner.invoke(label_cmd, [str(folder), "--model", str(model), "--format", "txt", "--max-new-tokens", "3"])
    assert txt.exit_code == 0, txt.output
    assert sorted(p.name for p in folder.glob("*.txt")) == ["im0.txt", "im1.txt", "im2.txt"]


@pytest.mark.slow
def test_wd14_style_tagger(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from trainers.label.tagger import Tagger

    size, tags = 8, ["general", "safe", "red_hair", "cat", "some_character"]
    # probabilities = sigmoid(mean of each BGR channel / 255 * weight + bias): a real graph, known answer
    weights = [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 8, 0, 0]]   # only the red channel drives red_hair
    bias = [5, 5, -4, -5, 5]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input_1"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("Div", ["mean", "scale"], ["unit"]),
         helper.make_node("MatMul", ["unit", "w"], ["logits0"]),
         helper.make_node("Add", ["logits0", "b"], ["logits"]),
         helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"])],
        "tagger", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [None, size, size, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, [None, len(tags)])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0]),
         helper.make_tensor("w", TensorProto.FLOAT, [3, len(tags)], sum(weights, [])),
         helper.make_tensor("b", TensorProto.FLOAT, [len(tags)], bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    folder = tmp_path / "wd14"
    folder.mkdir()
    onnx.save(model, folder / "model.onnx")
    lines = ["tag_id,name,category,count", "0,general,9,1", "1,safe,9,1", "2,red_hair,0,1", "3,cat,0,1",
             "4,some_character,4,1"]
    (folder / "selected_tags.csv").write_text("\n".join(lines) + "\n", "utf-8")
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("RGB", (10, 10), (0, 0, 255)).save(tmp_path / "blue.png")
    assert find_model(str(folder)).kind == "tagger"
    got = dict(Tagger(folder, threshold=0.5).caption([tmp_path / "red.png", tmp_path / "blue.png"]))
    # the red image, padded with white to a square, is mostly red: red_hair fires; ratings are never written
    assert got[tmp_path / "red.png"] == "some character, red hair"
    assert got[tmp_path / "blue.png"] == "some character"


def _tiny_blip(folder: Path) -> Path:
    """A random BLIP captioner (BlipForConditionalGeneration + BlipProcessor) with a BERT vocab written here."""
    import torch
    from transformers import (BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor)

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(specials + WORDS) + "\n", "utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), bos_token="[DEC]")
    text = dict(vocab_size=len(specials) + len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                intermediate_size=37, encoder_hidden_size=32, bos_token_id=5, pad_token_id=0, sep_token_id=3,
                eos_token_id=3, max_position_embeddings=64)
    vision = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32)) \
        .save_pretrained(folder)
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_label_command_with_a_tiny_blip(tmp_path):
    model = _tiny_blip(tmp_path / "blip")
    folder = _images(tmp_path / "imgs", 2)
    result = CliRunner().invoke(label_cmd, [str(folder), "-m", str(model), "-t", "zzcat", "--format", "txt",
                                            "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    for i in range(2):
        caption = (folder / f"im{i}.txt").read_text("utf-8").strip()
        assert caption.startswith("zzcat")
        assert set(caption.removeprefix("zzcat").replace(",", " ").split()) <= set(WORDS)

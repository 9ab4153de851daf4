"""Resuming never runs code from a checkpoint folder.

A checkpoint folder can come from anyone: ``resume = "<folder>"`` in a shared
config, or a ``checkpoint-N`` dropped into ``output_dir`` that ``resume =
"auto"`` picks up.  Each test plants a pickle that would create a marker file
if it were ever unpickled, in a place where a checkpoint's state was (or
could be) read, resumes both ways, and checks that the marker does not exist
and that the refusal is one line naming the file and what to do.

The per-file cases call :func:`trainers.checkpoint.find_resume`, the one gate
a run passes before it reads anything from a checkpoint; the CLI cases run
``lutnav train`` whole (on the previous checkpoint format they ran the pickle).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lutnav.cli import cli  # noqa: E402
from trainers import checkpoint as ckpt  # noqa: E402
from trainers.errors import ResumeError  # noqa: E402
from trainers.text.tiny import color_facts, write_jsonl, write_tiny_llama  # noqa: E402

CONFIG = """\
task_type = "text-generation"
base_model = "tiny-llama"
train_data = "facts.jsonl"
eval_split = 0.0
lora_rank = 4
batch_size = 8
max_steps = 4
save_steps = 2
learning_rate = 1e-2
name = "safe"
theme = "colors"
output_dir = "output"
resume = {resume}
"""

#: where accelerate kept a run's state (and torch/transformers/peft their weights), and extra pickles
PLANTED = [
    "training_state/custom_checkpoint_0.pkl", "training_state/random_states_0.pkl",
    "training_state/random_states_1.pkl", "training_state/optimizer.bin", "training_state/scheduler.bin",
    "training_state/sampler.bin", "training_state/scaler.pt", "training_state/pytorch_model.bin",
    "adapter_model.bin", "training_args.bin", "extra.pt", "extra.pkl", "training_state/extra.pth",
    "deeper/nested/extra.ckpt",
]


class _Plant:
    """Unpickling this creates the marker file (what an attacker's pickle would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Plant(marker)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run that saved checkpoint-2 and checkpoint-4."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("safety")
    write_tiny_llama(root / "tiny-llama")
    write_jsonl(root / "facts.jsonl", color_facts(40, seed=5))
    (root / "lib").mkdir()
    cfg = write_config(root, '"none"')
    result = CliRunner().invoke(cli, ["--library", str(root / "lib"), "train", str(cfg)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "output").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    return root


def write_config(root: Path, resume: str) -> Path:
    path = root / "cfg.toml"
    path.write_text(CONFIG.format(resume=resume), "utf-8")
    return path


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the run's output folder, to plant files in."""
    out = tmp_path / "output"
    shutil.copytree(trained / "output", out, symlinks=True)
    return out


def test_the_checkpoint_holds_safetensors_json_and_a_manifest_only(trained):
    state = trained / "output" / "checkpoint-4" / ckpt.STATE_DIR
    assert sorted(p.name for p in state.iterdir()) == ["lutnav_state.json", "manifest.json",
                                                        "optimizer.safetensors", "rng-0.safetensors",
                                                        "trainable.safetensors"]
    listed = json.loads((state / "manifest.json").read_text())["files"]
    assert "adapter_model.safetensors" in listed and "training_state/optimizer.safetensors" in listed
    ckpt.verify(state.parent)  # what lutnav wrote passes


@pytest.mark.parametrize("name", PLANTED)
@pytest.mark.parametrize("how", ["folder", "auto"])
def test_a_planted_pickle_is_refused_and_never_loaded(run_copy, tmp_path, name, how):
    marker = tmp_path / "pwned"
    target = run_copy / "checkpoint-4"
    plant(target / name, marker)
    with pytest.raises(ResumeError) as caught:
        ckpt.find_resume(run_copy, str(target) if how == "folder" else "auto")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(target / name) + ":")
    assert "lutnav did not write" in message and 'resume = "none"' in message
    assert not marker.exists()
    (target / name).unlink()  # removing what was planted makes the checkpoint usable again
    assert ckpt.find_resume(run_copy, str(target) if how == "folder" else "auto") == target


@pytest.mark.parametrize("how", ["folder", "auto"])
def test_state_files_swapped_for_pickles_or_edited_are_refused(run_copy, tmp_path, how):
    marker = tmp_path / "pwned"
    target = run_copy / "checkpoint-4"
    where = str(target) if how == "folder" else "auto"
    for name in ("training_state/trainable.safetensors", "training_state/rng-0.safetensors",
                 "training_state/lutnav_state.json", "adapter_model.safetensors"):
        saved = (target / name).read_bytes()
        plant(target / name, marker)
        with pytest.raises(ResumeError, match="sha256 does not match the manifest") as caught:
            ckpt.find_resume(run_copy, where)
        assert str(caught.value).startswith(f"{target / name}:") and "\n" not in str(caught.value)
        (target / name).write_bytes(saved)
    (target / "notes.txt").write_text("hello")
    with pytest.raises(ResumeError, match="not in the manifest"):
        ckpt.find_resume(run_copy, where)
    (target / "notes.txt").unlink()
    os.symlink(target / "training_state" / "trainable.safetensors", target / "link.safetensors")
    with pytest.raises(ResumeError, match="holds a link"):
        ckpt.find_resume(run_copy, where)
    assert not marker.exists()


def test_odd_names_still_give_one_line(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    target = run_copy / "checkpoint-4"
    for name in ("evil\nname.pkl", "training_state/.hidden.PT", "samples/x.npy"):
        plant(target / name, marker)
        with pytest.raises(ResumeError) as caught:
            ckpt.find_resume(run_copy, "auto")
        assert "\n" not in str(caught.value) and "lutnav did not write" in str(caught.value)
        (target / name).unlink()
    assert not marker.exists()


def test_an_accelerate_style_checkpoint_without_manifest_is_refused(run_copy, tmp_path):
    """What older versions wrote (or an attacker imitates): never unpickled, refused with a reason."""
    marker = tmp_path / "pwned"
    fake = run_copy / "checkpoint-99"
    (fake / "training_state").mkdir(parents=True)
    (fake / "training_state" / "lutnav_state.json").write_text(json.dumps({"step": 99}))
    with pytest.raises(ResumeError, match="no training_state/manifest.json") as caught:
        ckpt.find_resume(run_copy, "auto")   # the newest checkpoint-N is the one checked, not skipped
    assert str(caught.value).startswith(f"{fake}:")
    plant(fake / "training_state" / "random_states_0.pkl", marker)
    with pytest.raises(ResumeError, match="random_states_0.pkl: this checkpoint holds a file lutnav did not"):
        ckpt.find_resume(run_copy, str(fake))
    assert not marker.exists()


@pytest.mark.parametrize("how", ["folder", "auto"])
def test_lutnav_train_refuses_with_one_line_and_exit_1(trained, tmp_path, how):
    marker = tmp_path / "pwned"
    root = tmp_path / "run"
    root.mkdir()
    for name in ("tiny-llama", "facts.jsonl"):
        os.symlink(trained / name, root / name)
    (root / "lib").mkdir()  # an empty library: nothing but the checkpoint stands in the way
    shutil.copytree(trained / "output", root / "output")
    target = root / "output" / "checkpoint-4"
    plant(target / "training_state" / "custom_checkpoint_0.pkl", marker)
    cfg = write_config(root, json.dumps(str(target)) if how == "folder" else '"auto"')
    result = CliRunner().invoke(cli, ["--library", str(root / "lib"), "train", str(cfg)])
    assert not marker.exists()   # the planted pickle never ran
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [errors[0]] and "Traceback" not in result.output
    assert f"{target / 'training_state' / 'custom_checkpoint_0.pkl'}: this checkpoint holds a file lutnav did " \
           "not write" in errors[0]
    assert 'set resume = "none" to start over' in errors[0]
    assert not (root / "output" / "checkpoint-6").exists()


@pytest.mark.parametrize("change", [{"step": "4; rm -rf /"}, {"processes": 0}, {"fingerprint": []},
                                    {"optimizer": None}, {"format": 1}])
def test_a_forged_state_with_a_matching_manifest_is_refused_in_one_line(run_copy, change):
    """Someone may rewrite the manifest too: the state's values are still checked before use."""
    from trainers import manifest

    target = run_copy / "checkpoint-4"
    path = target / "training_state" / "lutnav_state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    manifest.write(target, ckpt.STATE_DIR)
    with pytest.raises(ResumeError) as caught:
        ckpt.find_resume(run_copy, "auto")
    assert str(caught.value).startswith(f"{path}:") and "\n" not in str(caught.value)


@pytest.mark.parametrize("forged", [{"scheduler": {"last_epoch": "x"}}, {"optimizer": {"groups": [{"lr": "x"}]}},
                                    {"optimizer": {"groups": "x", "scalars": []}}])
def test_forged_schedule_or_optimizer_values_are_refused_before_training(trained, tmp_path, forged):
    """Values that would only fail mid-training are refused at resume, in one line."""
    import shutil

    from trainers import manifest
    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    root = tmp_path / "run"
    root.mkdir()
    for name in ("tiny-llama", "facts.jsonl"):
        os.symlink(trained / name, root / name)
    shutil.copytree(trained / "output", root / "output")
    target = root / "output" / "checkpoint-2"
    shutil.rmtree(root / "output" / "checkpoint-4")
    path = target / "training_state" / "lutnav_state.json"
    state = json.loads(path.read_text())
    for key, value in forged.items():
        state[key] = value if key != "scheduler" else {**state[key], **value}
    path.write_text(json.dumps(state))
    manifest.write(target, ckpt.STATE_DIR)
    with pytest.raises(ResumeError) as caught:
        finish(train(load_config(write_config(root, '"auto"'))))
    assert "\n" not in str(caught.value) and "does not fit this run" in str(caught.value)


def _forge(run_root: Path, edit) -> Path:
    """A run folder whose checkpoint-2 was edited by ``edit(training_state)`` and re-manifested
    (someone who forges the state forges the manifest too); the run resumes from it."""
    from trainers import manifest

    target = run_root / "output" / "checkpoint-2"
    shutil.rmtree(run_root / "output" / "checkpoint-4")
    edit(target / ckpt.STATE_DIR)
    manifest.write(target, ckpt.STATE_DIR)
    return target


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    root = tmp_path / "run"
    root.mkdir()
    for name in ("tiny-llama", "facts.jsonl"):
        os.symlink(trained / name, root / name)
    shutil.copytree(trained / "output", root / "output")
    return root


def _edit_tensors(name: str, change):
    from safetensors.torch import load_file, save_file

    def edit(state: Path) -> None:
        tensors = load_file(str(state / name))
        save_file(change(tensors), str(state / name))
    return edit


@pytest.mark.parametrize("change", [
    # a moment of another shape: the fused AdamW kernel wrote past its end (a crash, not an error)
    lambda t: {k: torch.zeros(3, 3) if k.endswith("exp_avg") else v for k, v in t.items()},
    lambda t: {k: v.to(torch.int64) if k.endswith("exp_avg_sq") else v for k, v in t.items()},
    lambda t: {k: torch.tensor([1.0, 2.0]) if k.endswith(".step") else v for k, v in t.items()},
    lambda t: {**t, "999.exp_avg": torch.zeros(2)},
], ids=["shape", "dtype", "step", "index"])
def test_forged_optimizer_tensors_are_refused_before_training(trained, tmp_path, change):
    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    root = _copy_run(trained, tmp_path)
    _forge(root, _edit_tensors("optimizer.safetensors", change))
    with pytest.raises(ResumeError) as caught:
        finish(train(load_config(write_config(root, '"auto"'))))
    assert "\n" not in str(caught.value) and "the optimizer state does not fit this run" in str(caught.value)
    assert not (root / "output" / "checkpoint-4").exists()


def test_forged_trainable_tensors_of_a_non_float_dtype_are_refused(trained, tmp_path):
    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    root = _copy_run(trained, tmp_path)
    _forge(root, _edit_tensors("trainable.safetensors", lambda t: {k: v.to(torch.bool) for k, v in t.items()}))
    with pytest.raises(ResumeError, match="not a floating-point type"):
        finish(train(load_config(write_config(root, '"auto"'))))


def test_random_state_metadata_out_of_range_is_one_line(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    def edit(state: Path) -> None:
        tensors = load_file(str(state / "rng-0.safetensors"))
        save_file(tensors, str(state / "rng-0.safetensors"),
                  metadata={"numpy": '["MT19937", 1e999, 0, 0]', "python": "[3, null]"})
    root = _copy_run(trained, tmp_path)
    _forge(root, edit)
    with pytest.raises(ResumeError, match="random generator state is unreadable"):
        finish(train(load_config(write_config(root, '"auto"'))))


@pytest.mark.parametrize("name", ["manifest.json", "lutnav_state.json"])
def test_deeply_nested_json_is_one_line(run_copy, name):
    from trainers import manifest

    target = run_copy / "checkpoint-4"
    (target / ckpt.STATE_DIR / name).write_text("[" * 100_000 + "]" * 100_000)
    if name != "manifest.json":
        manifest.write(target, ckpt.STATE_DIR)
    with pytest.raises(ResumeError) as caught:
        ckpt.find_resume(run_copy, "auto")
    assert str(caught.value).startswith(f"{target / ckpt.STATE_DIR / name}:") and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["link", "file"])
def test_a_checkpoint_name_that_is_a_link_or_a_file_is_refused(run_copy, tmp_path, kind):
    """``auto`` neither follows a ``checkpoint-N`` link out of the output folder nor passes over it."""
    outside = tmp_path / "elsewhere"
    shutil.copytree(run_copy / "checkpoint-2", outside)
    stand_in = run_copy / "checkpoint-9"
    if kind == "link":
        os.symlink(outside, stand_in)
    else:
        stand_in.write_text("not a folder")
    with pytest.raises(ResumeError) as caught:
        ckpt.find_resume(run_copy, "auto")
    assert str(caught.value).startswith(f"{stand_in}: checkpoint-9 in the output folder is "
                                        f"{'a link' if kind == 'link' else 'not a folder'}")
    assert "\n" not in str(caught.value)


def test_leftover_staging_links_are_removed_without_touching_their_target(run_copy, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    for name in (".checkpoint-6.partial", ".checkpoint-4.old"):
        os.symlink(outside, run_copy / name)
    (run_copy / ".checkpoint-8.partial").write_text("a file in the way")
    ckpt.clean_staging(run_copy)
    assert sorted(p.name for p in run_copy.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert (outside / "keep.txt").read_text() == "keep"


def test_resume_pointed_at_a_large_tree_is_refused_without_walking_it_all(tmp_path, monkeypatch):
    from trainers import manifest

    monkeypatch.setattr(manifest, "MAX_ENTRIES", 50)
    tree = tmp_path / "big"
    for i in range(30):
        (tree / f"d{i}").mkdir(parents=True)
        (tree / f"d{i}" / "f.txt").write_text("x")
    with pytest.raises(ResumeError, match="more than 50 files and folders"):
        ckpt.find_resume(tmp_path, str(tree))

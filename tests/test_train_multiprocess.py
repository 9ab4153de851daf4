"""`lutnav train` on two processes (CPU, gloo), started the way the README says.

Text runs go through `accelerate launch --multi_gpu --num_processes 2 -m lutnav`,
image runs through `torchrun --standalone --nproc_per_node 2 -m lutnav`.  What
a user would check: every rank exits 0, one entry is filed, TensorBoard is
written by one process; two processes at batch_size B train the same adapter
as one process at 2B; Ctrl-C saves one checkpoint and the rerun ends where an
uninterrupted two-process run does.

Tolerances: the two-process and one-process runs sum the same gradients in
another order, so they agree to float rounding, which AdamW can blow up to a
few percent of one step (lr) on the odd weight whose gradient is ~0, and
which compounds over steps: 1e-5 for text after 40 steps at lr 1e-2 (seen:
5e-7; it passes 1e-5 near step 80 and reaches 4e-3 by step 120), 1e-4 for
images after 4 steps (seen: 1.5e-5, and only 2 of 45,056 weights apart by
more than 1e-6) — both far below what training moves the weights (checked
too).  Text runs use lora_dropout = 0: dropout masks come from each process's
generator and cannot match one process's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parent.parent

TEXT_CONFIG = """\
task_type = "text-generation"
base_model = "{root}/tiny-llama"
train_data = "{root}/facts.jsonl"
eval_split = 0.0
lora_rank = 4
lora_dropout = 0.0
batch_size = {batch}
max_steps = {steps}
save_steps = {save}
learning_rate = 1e-2
scheduler = "constant"
name = "{name}"
theme = "colors"
output_dir = "{out}"
log_with = "tensorboard"
"""

IMAGE_CONFIG = """\
task_type = "image-generation"
base_model = "{root}/sd"
train_data_dir = "{root}/data"
resolution = 64
lora_rank = 4
lora_alpha = 2
batch_size = {batch}
learning_rate = 1e-3
seed = 7
name = "{name}"
category = "character"
theme = "cats"
max_steps = 4
save_steps = 2
output_dir = "{out}"
log_with = "tensorboard"
sample_prompts = ["zzcat, a red square"]
sample_steps = 2
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "-m", "lutnav", *args]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "lutnav", *args]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def entries(library: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "lutnav", "--library", str(library), "ls", "--json"], env=_env(),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def tensorboard_writers(logs: Path) -> tuple[set[str], list[int]]:
    """(pids that wrote event files, steps of every logged train/loss)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list(logs.rglob("events.out.tfevents.*"))
    pids = {f.name.split(".")[-2] for f in files}
    steps = []
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        if "train/loss" in acc.Tags().get("scalars", []):
            steps += [e.step for e in acc.Scalars("train/loss")]
    return pids, sorted(steps)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def share_apart(a: dict, b: dict, by: float = 1e-6) -> float:
    """The share of weights that differ by more than ``by``."""
    apart = sum(int(((a[k] - b[k]).abs() > by).sum()) for k in a)
    return apart / sum(a[k].numel() for k in a)


def in_process(config_path: Path):
    """One process, in this interpreter (the reference the launched runs are compared with)."""
    from trainers.config import load_config
    from catalog.progress import finish
    from trainers.run import train

    torch.set_num_threads(1)
    return finish(train(load_config(config_path)))


# --- text -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    from trainers.text.tiny import color_facts, write_jsonl, write_tiny_llama

    root = tmp_path_factory.mktemp("mp-text")
    write_tiny_llama(root / "tiny-llama")
    write_jsonl(root / "facts.jsonl", color_facts(64, seed=3))
    (root / "lib").mkdir()
    return root


def text_config(root: Path, name: str, *, batch: int, steps: int = 120, save: int = 40, extra: str = "") -> Path:
    return write(root / f"{name}.toml", TEXT_CONFIG.format(root=root, batch=batch, steps=steps, save=save,
                                                          name=name, out=root / "out" / name) + extra)


@pytest.fixture(scope="module")
def text_two(text_root):
    """The uninterrupted two-process text run, filed into the library."""
    cfg = text_config(text_root, "two", batch=4)
    done = run(accelerate_launch("--library", str(text_root / "lib"), "train", str(cfg)))
    return cfg, done


def test_two_processes_train_text_file_one_entry_and_log_once(text_root, text_two):
    _, done = text_two
    assert done.returncode == 0, done.stderr[-3000:]   # the launcher exits 0 only if every rank did
    assert done.stdout.count("filed industry/colors/two") == 1
    assert done.stderr.count("effective batch 8 (batch_size 4 × 2 processes)") == 1  # the plan, printed once
    assert done.stderr.count("saved ") == 3 and "Traceback" not in done.stderr
    assert [e["name"] for e in entries(text_root / "lib")] == ["two"]
    state = text_root / "out" / "two" / "checkpoint-120" / "training_state"
    assert {"rng-0.safetensors", "rng-1.safetensors"} <= {p.name for p in state.iterdir()}
    pids, steps = tensorboard_writers(text_root / "out" / "two" / "logs")
    assert len(pids) == 1 and steps == list(range(1, 121))   # one writer, each step logged once


def test_two_processes_at_batch_b_equal_one_process_at_2b_text(text_root, text_two):
    from safetensors.torch import load_file

    one = in_process(text_config(text_root, "one", batch=8, steps=40))   # constant lr: the first 40 steps
    assert one.result.step == 40                                         # are the two-process run's
    two = load_file(str(text_root / "out" / "two" / "checkpoint-40" / "adapter_model.safetensors"))
    ref = load_file(str(one.artifact / "adapter_model.safetensors"))
    assert max_diff(two, ref) <= 1e-5
    later = load_file(str(text_root / "out" / "two" / "checkpoint-80" / "adapter_model.safetensors"))
    assert max_diff(two, later) > 1e-2   # training moves weights far more than the tolerance


def test_ctrl_c_on_two_processes_saves_once_and_the_rerun_matches(text_root, text_two):
    from safetensors.torch import load_file

    cfg = text_config(text_root, "stopped", batch=4, save=20)   # save_steps never changes the weights
    out = text_root / "out" / "stopped"
    command = accelerate_launch("train", str(cfg))
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        while not (out / "checkpoint-20").is_dir() and proc.poll() is None:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does: every process of the group
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    last = saved[-1]
    assert saved[0] == 20 and 20 < last < 120, stderr[-3000:]
    assert stderr.count(f"interrupted at step {last}/120") == 1   # one save, reported once
    assert not list(out.glob(".checkpoint-*"))   # no half-written save left behind

    again = run(accelerate_launch("train", str(cfg)))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{last}'}" in again.stderr
    got = load_file(str(out / "checkpoint-120" / "adapter_model.safetensors"))
    want = load_file(str(text_root / "out" / "two" / "checkpoint-120" / "adapter_model.safetensors"))
    assert max_diff(got, want) == 0.0   # bit for bit


def test_resuming_on_another_process_count_needs_the_same_global_batch(text_root, text_two):
    from trainers.errors import ResumeError

    cfg = text_root / "two.toml"
    with pytest.raises(ResumeError, match=r"trained on 2 process\(es\) × batch_size 4 \(global batch 8\); this run "
                       r"has 1 × batch_size 4 .*--num_processes 2.*or set batch_size = 8"):
        in_process(cfg)
    write(cfg, cfg.read_text().replace("batch_size = 4", "batch_size = 8"))
    same_global = in_process(cfg)   # 1 × 8 continues 2 × 4 exactly: nothing left to train here
    assert same_global.result.resumed_from == 120 and same_global.result.step == 120


def test_check_prints_the_global_batch_and_the_steps_it_gives(text_root, monkeypatch):
    from click.testing import CliRunner

    from lutnav.cli import cli

    cfg = text_config(text_root, "plan", batch=4, extra="gradient_accumulation_steps = 2\n")
    write(cfg, cfg.read_text().replace("max_steps = 120\n", "epochs = 2\n"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = CliRunner().invoke(cli, ["train", str(cfg), "--check"]).output
    assert "effective batch 16 (batch_size 4 × 2 processes × 2 accumulation steps)" in out
    assert "steps           8 (4 per epoch, 2.00 epochs)" in out   # 64 examples / 16 per step
    assert "processes       2" in out


def test_accelerate_cpu_mode_starting_one_process_is_pointed_out(text_root, monkeypatch):
    """`accelerate launch --cpu --num_processes 2` without mpirun starts one plain process."""
    from click.testing import CliRunner

    from lutnav.cli import cli

    cfg = text_config(text_root, "cpu-mode", batch=4)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = CliRunner().invoke(cli, ["train", str(cfg), "--check"]).output
    assert "warning: accelerate launch --cpu started one process" in out
    assert "torchrun --nproc_per_node N -m lutnav train CFG" in out


def test_sharded_setups_are_refused_with_what_to_launch_instead():
    from types import SimpleNamespace

    from trainers.errors import UnsupportedSetting
    from trainers.run import check_sharding

    config = SimpleNamespace(source="cfg.toml")
    for kind in ("DistributedType.FSDP", "DistributedType.DEEPSPEED"):
        with pytest.raises(UnsupportedSetting, match=r"cfg.toml: this accelerate setup shards the model .*launch "
                           r"without FSDP/DeepSpeed"):
            check_sharding(SimpleNamespace(distributed_type=kind), config)
    check_sharding(SimpleNamespace(distributed_type="DistributedType.MULTI_CPU"), config)


def test_fsdp_on_the_cpu_is_one_line_not_a_traceback(text_root):
    """accelerate runs FSDP on GPUs only; on the CPU its set-up fails, which lutnav reports plainly."""
    cfg = text_config(text_root, "fsdp", batch=4)
    command = accelerate_launch("train", str(cfg))
    command[command.index("--multi_gpu")] = "--use_fsdp"
    done = run(command)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "accelerate cannot set up this launch (FSDP" in lines[0]   # said once
    assert "launch without FSDP/DeepSpeed" in lines[0]
    assert "RuntimeError: FSDP" not in done.stderr   # no traceback from the training processes
    assert not (text_root / "out" / "fsdp").exists()


# --- images -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    from trainers.image.tiny import caption_words, write_image_set, write_tiny_sd

    root = tmp_path_factory.mktemp("mp-image")
    write_tiny_sd(root / "sd", words=caption_words())
    write_image_set(root / "data", 8)
    (root / "lib").mkdir()
    return root


def image_config(root: Path, name: str, batch: int) -> Path:
    return write(root / f"{name}.toml", IMAGE_CONFIG.format(root=root, batch=batch, name=name,
                                                           out=root / "out" / name))


def test_two_processes_train_images_once_and_match_one_process(image_root):
    from safetensors.torch import load_file

    cfg = image_config(image_root, "two", batch=2)
    done = run(torchrun("--library", str(image_root / "lib"), "train", str(cfg)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("filed character/cats/two.safetensors") == 1
    (entry,) = entries(image_root / "lib")
    assert entry["name"] == "two" and entry["previews"]
    out = image_root / "out" / "two"
    assert sorted(p.name for p in (out / "checkpoint-4" / "samples").iterdir()) == ["two-step4-0.png"]
    assert len(list((out / "latent_cache").rglob("*.safetensors"))) == 8   # each image encoded once
    pids, steps = tensorboard_writers(out / "logs")
    assert len(pids) == 1 and steps == [1, 2, 3, 4]

    one = in_process(image_config(image_root, "one", batch=4))
    state = "training_state/trainable.safetensors"
    two = load_file(str(out / "checkpoint-4" / state))
    ref = load_file(str(one.result.output_dir / "checkpoint-4" / state))
    assert max_diff(two, ref) <= 1e-4 and share_apart(two, ref) < 0.001
    assert share_apart(two, load_file(str(out / "checkpoint-2" / state))) > 0.5   # what two steps change

"""Text LoRA training end to end on a tiny random Llama built by code (CPU, no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from trainers.config import load_config  # noqa: E402
from trainers.loop import SaveEvent, StepEvent  # noqa: E402
from catalog.progress import Progress, finish  # noqa: E402
from trainers.run import check, train  # noqa: E402
from trainers.text.tiny import color_facts, write_jsonl, write_tiny_llama  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text")
    write_tiny_llama(root / "tiny-llama")
    write_jsonl(root / "facts.jsonl", color_facts(96))
    return root


def make_config(root: Path, name: str, **settings):
    values = {"task_type": "text-generation", "base_model": "tiny-llama", "train_data": "facts.jsonl",
              "eval_split": 0.1, "lora_rank": 8, "batch_size": 8, "max_steps": 40, "learning_rate": 1e-2,
              "save_steps": 0, "scheduler": "constant", "resume": "none", "theme": "colors",
              "output_dir": f"out/{name}", **settings}
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = root / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def trained(workdir):
    config = make_config(workdir, "colors")
    events = []
    generator = train(config, check(config))
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return config, stop.value, events


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_loss_goes_down_and_eval_loss_is_reported(trained):
    config, done, events = trained
    losses = done.result.losses
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.4
    saves = [e for e in events if isinstance(e, SaveEvent)]
    assert [e.step for e in saves] == [40]
    assert saves[0].metrics["eval_loss"] < losses[0]
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].unit == "tok" and steps[-1].rate > 0
    assert all(isinstance(e, Progress) for e in events)  # the one progress protocol
    assert [(e.done, e.total) for e in steps] == [(n, 40) for n in range(1, 41)]
    assert saves[0].note.startswith(f"saved {saves[0].path}  (eval_loss ")


def test_adapter_loads_in_peft_with_every_key_and_changes_generation(trained, workdir):
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, done, _ = trained
    folder = done.artifact
    adapter_config = json.loads((folder / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(workdir / "tiny-llama")
    assert adapter_config["r"] == 8 and adapter_config["lora_alpha"] == 8
    assert not (folder / "README.md").exists()

    base = AutoModelForCausalLM.from_pretrained(adapter_config["base_model_name_or_path"])
    tok = AutoTokenizer.from_pretrained(adapter_config["base_model_name_or_path"])
    ids = tok.apply_chat_template([{"role": "user", "content": "what is the color of the sky ?"}],
                                  add_generation_prompt=True, tokenize=False)
    ids = tok(ids, add_special_tokens=False, return_tensors="pt")["input_ids"]
    before = base.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)

    model = PeftModel.from_pretrained(base, str(folder))
    saved = weights(folder)
    assert set(get_peft_model_state_dict(model)) == set(saved)  # nothing missing, nothing extra
    assert len(saved) == 2 * 2 * 7  # A and B, 2 layers, 7 projections
    after = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert not torch.equal(before, after)
    assert tok.decode(after[0, ids.shape[1]:]).split()[:1] == ["the"]  # it learned how answers start


def run_until(generator, stop_after_save: int | None):
    """Drain a training generator; closing it after a save is a kill (nothing else written)."""
    while True:
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, SaveEvent) and event.step == stop_after_save:
            generator.close()
            return None


def test_resume_after_kill_and_after_ctrl_c_is_exact(workdir):
    settings = {"max_steps": 8, "save_steps": 4, "gradient_accumulation_steps": 2, "batch_size": 4,
                "lora_dropout": 0.2, "scheduler": "cosine", "warmup_steps": 2, "eval_split": 0.0}
    straight = run_until(train(make_config(workdir, "straight", **settings)), None)

    killed = make_config(workdir, "killed", **settings)
    assert run_until(train(killed), stop_after_save=4) is None
    state = workdir / "out" / "killed"
    assert [p.name for p in state.iterdir() if not p.name.startswith(".")] == ["checkpoint-4"]
    resumed_cfg = make_config(workdir, "killed", **{**settings, "resume": "auto"})
    events = []
    gen = train(resumed_cfg)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            resumed = stop.value
            break
    assert "resuming from" in events[0].note and events[1].step == 5

    presses = iter([False, False, True])  # Ctrl-C during step 3: saved there, mid save_steps
    stopped_cfg = make_config(workdir, "ctrl_c", **settings)
    stopped = finish(train(stopped_cfg, cancel=lambda: next(presses, False)))
    assert stopped.result.interrupted and stopped.result.step == 3
    assert (workdir / "out" / "ctrl_c" / "checkpoint-3").is_dir()
    continued = finish(train(make_config(workdir, "ctrl_c", **{**settings, "resume": "auto"})))

    expected = weights(straight.artifact)
    for other in (resumed, continued):
        assert other.result.step == 8
        got = weights(other.artifact)
        assert set(got) == set(expected)
        worst = max(float((got[k] - expected[k]).abs().max()) for k in expected)
        assert worst == 0.0   # bit for bit
    assert any(float(t.abs().max()) > 0 for k, t in expected.items() if "lora_B" in k)


def test_ctrl_c_saves_and_stops_and_tensorboard_logs(workdir):
    import os
    import signal

    calls = iter(range(100))

    def press_ctrl_c_during_step_2():
        if next(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return False

    config = make_config(workdir, "sigint", max_steps=6, log_with="tensorboard", eval_split=0.0)
    done = finish(train(config, cancel=press_ctrl_c_during_step_2))
    assert done.result.interrupted and done.result.step == 3
    assert done.artifact.name == "checkpoint-3" and (done.artifact / "adapter_model.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back
    events = list((workdir / "out" / "sigint" / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_resume_refuses_changed_settings(workdir):
    from trainers.errors import ResumeError

    settings = {"max_steps": 3, "save_steps": 1, "keep_checkpoints": 2, "eval_split": 0.0}
    finish(train(make_config(workdir, "refuse", **settings)))
    kept = sorted(p.name for p in (workdir / "out" / "refuse").iterdir())
    assert kept == ["checkpoint-2", "checkpoint-3"]  # the oldest pruned, no staging left behind
    with pytest.raises(ResumeError, match="lora_rank: 8 → 4"):
        finish(train(make_config(workdir, "refuse", **{**settings, "lora_rank": 4, "resume": "auto"})))


def test_qlora_is_refused_clearly_without_cuda(workdir):
    from trainers.errors import MissingDependency, UnsupportedSetting

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = make_config(workdir, "qlora", quantization="4bit")
    with pytest.raises((UnsupportedSetting, MissingDependency), match="4bit"):
        finish(train(config))
    assert any("CUDA" in w or "bitsandbytes" in w for w in check(config).warnings)


def test_out_of_memory_becomes_advice(workdir):
    from trainers.interrupt import out_of_memory_error

    config = make_config(workdir, "oom")
    err = out_of_memory_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"),
                              ["batch_size (now 8)", "max_seq_length (now 2048)"], config)
    assert "out of host (CPU) memory" in str(err) and "batch_size (now 8)" in str(err)
    assert out_of_memory_error(ValueError("shape mismatch"), [], config) is None


def test_memory_advice_puts_the_batch_first_and_skips_what_is_already_on(workdir):
    from trainers.interrupt import memory_hints

    off = memory_hints(make_config(workdir, "oom-off", gradient_checkpointing=False), ["max_seq_length (now 512)"])
    assert off[0].startswith("batch_size (now 8") and off[1] == "max_seq_length (now 512)"
    assert "gradient_checkpointing = true" in off
    on = memory_hints(make_config(workdir, "oom-on", gradient_checkpointing=True), [])
    assert "gradient_checkpointing = true" not in on


def test_blend_two_adapters(trained, workdir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainers.errors import TrainerError
    from trainers.text.blend import blend_adapters

    _, done, _ = trained
    other = finish(train(make_config(workdir, "rank4", lora_rank=4, max_steps=2))).artifact
    with pytest.raises(TrainerError, match="equal ranks"):
        blend_adapters(None, [(done.artifact, 0.5), (other, 0.5)], tmp_path / "lin")
    blended = blend_adapters(None, [(done.artifact, 0.7), (other, 0.3)], tmp_path / "cat", combination_type="cat")
    assert blended.rank == 12
    config = json.loads((tmp_path / "cat" / "adapter_config.json").read_text())
    assert config["r"] == 12 and config["base_model_name_or_path"] == str(workdir / "tiny-llama")
    base = AutoModelForCausalLM.from_pretrained(str(workdir / "tiny-llama"))
    PeftModel.from_pretrained(base, str(tmp_path / "cat"))

"""Train configs and text-data checks: every mistake reported with its file and line (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainers.config import key_lines, load_config
from trainers.errors import ConfigError, DatasetError
from trainers.schema import schema_text, train_config_schema
from trainers.text.checks import check_data, split_eval
from trainers.text.config import TextConfig

ISSUE_EXAMPLE = """\
task_type = "text-generation"
base_model = "models/tiny"
train_data = "data/med.jsonl"
eval_data = "data/med_eval.jsonl"
format = "auto"
max_seq_length = 2048
packing = false
train_on_prompt = false
lora_rank = 16
lora_alpha = 32
lora_dropout = 0.05
target_modules = "auto"
quantization = "none"
batch_size = 4
gradient_accumulation_steps = 4
epochs = 3
learning_rate = 2e-4
optimizer = "AdamW"
scheduler = "cosine"
warmup_ratio = 0.03
mixed_precision = "bf16"
gradient_checkpointing = true
seed = 42
output_dir = "output/med"
save_steps = 200
log_with = "tensorboard"
resume = "auto"
name = "med_qa"
category = "industry"
theme = "medical"
"""


def write(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


def minimal(extra: str = "") -> str:
    return 'task_type = "text-generation"\nbase_model = "m"\ntrain_data = "d.jsonl"\n' + extra


def problems_of(exc: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in exc.value.problems]


# --- config loading ---------------------------------------------------------------------------


def test_issue_example_loads_with_paths_beside_the_config(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_EXAMPLE))
    assert isinstance(cfg, TextConfig)
    assert (cfg.lora_rank, cfg.alpha, cfg.gradient_accumulation_steps) == (16, 32.0, 4)
    assert cfg.train_data == str(tmp_path / "data" / "med.jsonl")
    assert cfg.output_dir == str(tmp_path / "output" / "med")
    assert cfg.base_model == "models/tiny"  # no such folder: kept as a hub id
    assert (cfg.category, cfg.theme, cfg.name) == ("industry", "medical", "med_qa")


def test_defaults_name_and_output_dir_come_from_the_file(tmp_path):
    (tmp_path / "m").mkdir()
    cfg = load_config(write(tmp_path, minimal(), "legal_qa.toml"))
    assert cfg.name == "legal_qa"
    assert cfg.output_dir == str(tmp_path / "output" / "legal_qa")
    assert cfg.base_model == str(tmp_path / "m")  # an existing local folder is resolved
    assert cfg.alpha == cfg.lora_rank  # alpha defaults to the rank


def test_alpha_is_an_alias_and_choices_are_case_insensitive(tmp_path):
    cfg = load_config(write(tmp_path, minimal('alpha = 8\noptimizer = "adamw"\nscheduler = "COSINE"\n')))
    assert cfg.lora_alpha == 8.0 and cfg.optimizer == "AdamW" and cfg.scheduler == "cosine"


def test_every_problem_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, minimal('lora_rnak = 8\nbatch_size = "four"\nlearning_rate = -1\nnetwork_dim = 4\n'
                                   'scheduler = "cosin"\n'))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = problems_of(exc)
    assert len(found) == 5
    assert f"{path}:4: `lora_rnak` is not a setting — did you mean `lora_rank`?" in found
    assert any(p.startswith(f"{path}:5:") and "expected an integer" in p for p in found)
    assert any(p.startswith(f"{path}:6:") and "expected a value > 0" in p for p in found)
    assert any(p.startswith(f"{path}:7:") and "did you mean `lora_rank`" in p for p in found)
    assert any(p.startswith(f"{path}:8:") and "'cosine_with_restarts'" in p for p in found)
    assert "lutnav train CFG --check" in str(exc.value)


def test_alias_and_key_together_and_tables_are_refused(tmp_path):
    path = write(tmp_path, minimal("lora_alpha = 8\nalpha = 16\n[lora]\nrank = 4\n"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = problems_of(exc)
    assert any(":5:" in p and "same setting" in p for p in found)
    assert any(":6:" in p and "is a table" in p for p in found)


def test_missing_required_and_unknown_task(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, 'task_type = "text-generation"\n'))
    found = "\n".join(problems_of(exc))
    assert "`base_model` is required" in found and "`train_data` is required" in found

    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, 'base_model = "m"\ntask_type = "text-generaton"\n'))
    assert ":2:" in str(exc.value) and "'text-generation'" in str(exc.value)


def test_cross_field_rules(tmp_path):
    path = write(tmp_path, minimal('warmup_steps = 10\nwarmup_ratio = 0.1\ntarget_modules = "everything"\n'
                                   'theme = "a/b"\n'))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = problems_of(exc)
    assert any(":5:" in p and "not both" in p for p in found)
    assert any(":6:" in p and "all-linear" in p for p in found)
    assert any(":7:" in p and "one folder name" in p for p in found)


def test_bad_toml_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, minimal("lora_rank = = 3\n")))
    assert f"{tmp_path / 'cfg.toml'}:4:" in str(exc.value)


def test_key_lines_skip_multiline_values():
    text = 'a = 1\nb = [\n  "c = 2",\n  3,\n]\n  d = """\ne = 5\n"""\nf = 6\n[t]\ng = 1\n'
    assert key_lines(text) == {"a": 1, "b": 2, "d": 6, "f": 9, "t": 10}


# --- schema -------------------------------------------------------------------------------------


def test_committed_schema_is_the_generated_one():
    committed = Path(__file__).resolve().parent.parent / "schemas" / "train-config.schema.json"
    assert committed.read_text("utf-8") == schema_text(), "run `python -m trainers.schema`"


def test_schema_accepts_the_example_and_refuses_what_the_loader_refuses():
    import tomllib

    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(train_config_schema())
    good = tomllib.loads(ISSUE_EXAMPLE)
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({**good, "alpha": 16})) == []
    assert list(validator.iter_errors({**good, "lora_rnak": 8}))
    assert list(validator.iter_errors({**good, "lora_rank": 0}))
    assert list(validator.iter_errors({**good, "format": "yaml"}))
    assert list(validator.iter_errors({k: v for k, v in good.items() if k != "train_data"}))


# --- data checks --------------------------------------------------------------------------------


def config_for(tmp_path: Path, data: str, extra: str = "") -> TextConfig:
    return load_config(write(tmp_path, f'task_type = "text-generation"\nbase_model = "m"\n'
                                       f'train_data = "{data}"\neval_split = 0\n{extra}'))


def jsonl(path: Path, lines: list) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), "utf-8")


def test_all_data_problems_at_once_with_lines(tmp_path):
    jsonl(tmp_path / "d.jsonl", [
        {"instruction": "a", "output": "b"},
        {"instruction": "c", "output": "d"},
        '{"instruction": "broken",',
        "",
        {"instruction": "no answer"},
        {"instruction": "x", "output": "   "},
        ["not", "an", "object"],
        {"instruction": 5, "output": "y"},
    ])
    with pytest.raises(DatasetError) as exc:
        check_data(config_for(tmp_path, "d.jsonl"))
    found = problems_of(exc)
    where = str(tmp_path / "d.jsonl")
    assert found[0].startswith(f"{where}:3: not valid JSON")
    assert f"{where}:5: missing field `output`" in found
    assert f"{where}:6: empty response (`output`)" in found
    assert any(p.startswith(f"{where}:7: expected a JSON object") for p in found)
    assert any(p.startswith(f"{where}:8:") and "must be a string" in p for p in found)
    assert len(found) == 5


def test_chat_roles_out_of_order_and_sharegpt(tmp_path):
    good = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                         {"role": "assistant", "content": "a"}]}
    sharegpt = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    jsonl(tmp_path / "c.jsonl", [
        good, sharegpt,
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
        {"conversations": [{"from": "tool", "value": "x"}]},
    ])
    with pytest.raises(DatasetError) as exc:
        check_data(config_for(tmp_path, "c.jsonl"))
    found = problems_of(exc)
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in found] == ["3", "4", "5", "6"]
    assert "roles out of order (assistant → user)" in found[0]
    assert "empty response" in found[2] and "'tool'" in found[3]

    jsonl(tmp_path / "c.jsonl", [good, sharegpt])
    report = check_data(config_for(tmp_path, "c.jsonl"))
    assert report.format == "chat" and report.reason.startswith("auto:")
    assert report.train[1].parts == (("user", "q"), ("assistant", "a"))


@pytest.mark.parametrize("name, body, fmt", [
    ("t.txt", "first line\n\nsecond line\n", "text"),
    ("t.csv", "\ufeffinstruction,input,output\r\n\"say, hi\",,hello\r\nb,c,d\r\n", "instruction"),
    ("t.json", '[\n  {"text": "a"},\n\n  {"text": "b"}\n]\n', "text"),
])
def test_auto_detects_each_file_type(tmp_path, name, body, fmt):
    (tmp_path / name).write_text(body, "utf-8")
    report = check_data(config_for(tmp_path, name))
    assert report.format == fmt and len(report.train) == 2
    if name == "t.csv":
        assert report.train[0].parts == ("say, hi", "", "hello")
    if name == "t.json":
        assert [e.line for e in report.train] == [2, 4]
    if name == "t.txt":
        assert [e.line for e in report.train] == [1, 3]


def test_folder_of_files_duplicates_and_explicit_format(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    jsonl(folder / "a.jsonl", [{"text": "one"}, {"text": "two"}])
    jsonl(folder / "b.jsonl", [{"text": "one"}])
    (folder / ".hidden.jsonl").write_text("garbage\n", "utf-8")
    report = check_data(config_for(tmp_path, "data", 'format = "text"\n'))
    assert report.reason == "set in the config" and len(report.train) == 3
    assert report.warnings == ["1 duplicate example(s): b.jsonl:1 repeats line 1"]

    with pytest.raises(DatasetError) as exc:
        check_data(config_for(tmp_path, "data", 'format = "instruction"\n'))
    assert len(exc.value.problems) == 6  # each row misses instruction and output


def test_eval_split_is_seeded_and_disjoint(tmp_path):
    jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}"} for i in range(40)])
    cfg = config_for(tmp_path, "d.jsonl")
    examples = check_data(cfg).train
    train, held = split_eval(examples, 0.1, seed=1)
    again, held_again = split_eval(examples, 0.1, seed=1)
    assert len(held) == 4 and held == held_again and train == again
    assert not {e.line for e in train} & {e.line for e in held}
    assert split_eval(examples[:5], 0.05, seed=1)[1] == []


def test_checking_config_and_data_loads_no_torch(tmp_path):
    jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}])
    write(tmp_path, minimal())
    code = (
        "import sys\n"
        "from trainers.config import load_config\n"
        "from trainers.text.checks import check_data\n"
        "from trainers.schema import schema_text\n"
        f"check_data(load_config({str(tmp_path / 'cfg.toml')!r}))\n"
        "schema_text()\n"
        "import lutnav.train_cli\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)

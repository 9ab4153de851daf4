"""Text LoRA training speed: lutnav's loop vs a plain transformers ``Trainer`` + peft reference.

    python bench/train_text.py [--examples 384] [--threads 1] [--hidden 256] [--layers 4]

Builds one random Llama (default hidden 256, 4 layers, 4k-word vocabulary) and
one instruction set of varied lengths, then trains one epoch of LoRA (rank 16,
all projections) three ways, each in its own process so peak memory is its
own: the reference ``Trainer`` (dynamic padding), lutnav without packing, and
lutnav with packing (same batch_size: its batches hold about twice the
tokens, hence more activation memory).  Prints real (unpadded) tokens per
second of wall time and per CPU second, and peak RSS.  One run each.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEQ = 256


def build(folder: Path, args) -> None:
    from trainers.text.tiny import WORDS, write_jsonl, write_tiny_llama

    words = WORDS + [f"w{i:04d}" for i in range(4000)]
    write_tiny_llama(folder / "model", hidden=args.hidden, layers=args.layers, heads=max(4, args.hidden // 64),
                     words=words, max_positions=SEQ * 2)
    rng = random.Random(0)
    rows = []
    for _ in range(args.examples):
        prompt = " ".join(rng.choice(words[len(WORDS):]) for _ in range(rng.randint(8, 60)))
        answer = " ".join(rng.choice(words[len(WORDS):]) for _ in range(rng.randint(8, 150)))
        rows.append({"instruction": prompt, "output": answer})
    write_jsonl(folder / "data.jsonl", rows)


def config_text(folder: Path, packing: bool, batch: int) -> Path:
    path = folder / f"cfg_{'packed' if packing else 'plain'}.toml"
    path.write_text(f"""task_type = "text-generation"
base_model = "model"
train_data = "data.jsonl"
eval_split = 0
max_seq_length = {SEQ}
packing = {str(packing).lower()}
lora_rank = 16
lora_dropout = 0.0
batch_size = {batch}
epochs = 1
learning_rate = 1e-4
scheduler = "constant"
save_steps = 0
resume = "none"
output_dir = "out_{'packed' if packing else 'plain'}"
""", "utf-8")
    return path


class Meter:
    """Tokens per wall second and per CPU second, from the end of step 1 to the end of the last step.

    Both runs are timed the same way: setup and the first (warm-up) step are
    left out.  CPU seconds of this process are what a shared machine cannot
    steal, so their ratio is the steadier comparison.
    """

    def __init__(self):
        self.first = None
        self.last = None

    def step(self, units: int) -> None:
        mark = (time.perf_counter(), time.process_time(), units)
        if self.first is None:
            self.first = mark
        self.last = mark

    def result(self, steps: int, sequences: int) -> dict:
        wall, cpu, units = (b - a for a, b in zip(self.first, self.last))
        return {"tokens_per_s": units / wall, "tokens_per_cpu_s": units / cpu, "steps": steps,
                "sequences": sequences}


def run_lutnav(folder: Path, packing: bool, batch: int) -> dict:
    from trainers.config import load_config
    from trainers.loop import StepEvent
    from trainers.run import check, train

    config = load_config(config_text(folder, packing, batch))
    plan = check(config)
    meter, steps = Meter(), 0
    gen = train(config, plan)
    while True:
        try:
            event = next(gen)
        except StopIteration:
            break
        if isinstance(event, StepEvent):
            meter.step(event.units)
            steps = event.step
    return meter.result(steps, plan.examples)


def run_reference(folder: Path, batch: int) -> dict:
    """transformers Trainer + peft on the very same tokenized examples and batches (no packing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)

    from trainers.config import load_config
    from trainers.text.planning import plan_text

    config = load_config(config_text(folder, False, batch))
    plan = plan_text(config)
    tok = plan.payload["tokenizer"]
    from trainers.loop import epoch_batches

    # the batches lutnav draws, in its order, so both runs pad exactly the same batches
    order = [i for b in epoch_batches(len(plan.payload["train"]), batch_size=batch, seed=config.seed, epoch=0)
             for i in b]
    data = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e), "labels": e.labels}
            for e in (plan.payload["train"][i] for i in order)]
    model = AutoModelForCausalLM.from_pretrained(str(folder / "model"), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    meter, seen = Meter(), {"tokens": 0}

    class Counting(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset or self.train_dataset)

        def compute_loss(self, model, inputs, *args, **kwargs):
            seen["tokens"] += int(inputs["attention_mask"].sum())
            return super().compute_loss(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            meter.step(seen["tokens"])

    args = TrainingArguments(output_dir=str(folder / "out_ref"), per_device_train_batch_size=batch,
                             num_train_epochs=1, learning_rate=1e-4, lr_scheduler_type="constant",
                             save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
                             disable_tqdm=True, remove_unused_columns=False, logging_steps=10**6, seed=42)
    trainer = Counting(model=model, args=args, train_dataset=data, callbacks=[Clock()],
                       data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    trainer.train()
    return meter.result(trainer.state.global_step, len(data))


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    if args.mode == "reference":
        out = run_reference(folder, args.batch)
    else:
        out = run_lutnav(folder, args.mode == "lutnav-packed", args.batch)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=384)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--mode", choices=["reference", "lutnav", "lutnav-packed"])
    parser.add_argument("--folder", help="keep the model and data here (reused when present)")
    args = parser.parse_args()
    if args.mode:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="lutnav-bench-") as tmp:
        folder = Path(args.folder or tmp)
        if not (folder / "data.jsonl").exists():
            build(folder, args)
        results = {}
        for mode in ("reference", "lutnav", "lutnav-packed"):
            proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--folder", str(folder),
                                   "--batch", str(args.batch), "--threads", str(args.threads)],
                                  capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(line[7:])
    ref = results["reference"]
    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, vocab ~4k; LoRA r16 on all projections; "
          f"{args.examples} examples, batch {args.batch}, 1 epoch, {args.threads} thread(s), max_seq_length {SEQ}")
    print(f"{'run':<15}{'steps':>6}{'tokens/s':>10}{'tok/CPU-s':>11}{'speed':>7}{'peak RSS MiB':>14}{'memory':>8}")
    for mode, r in results.items():
        speed = r["tokens_per_cpu_s"] / ref["tokens_per_cpu_s"]
        print(f"{mode:<15}{r['steps']:>6}{r['tokens_per_s']:>10,.0f}{r['tokens_per_cpu_s']:>11,.0f}{speed:>6.2f}x"
              f"{r['peak_rss_mib']:>14,.0f}{r['peak_rss_mib'] / ref['peak_rss_mib']:>7.2f}x")
    print("speed: tokens per CPU second relative to the reference (steady on a shared machine); "
          "tokens are real (unpadded) tokens")


if __name__ == "__main__":
    main()

"""The plan of a text run: data checked, tokenized, steps counted — no model loaded.

``lutnav train cfg.toml --check`` prints this; the run trains from the same
plan.  :func:`plan_text` adds the tokenizer to :func:`~trainers.text.checks.check_data`:
lengths, how many examples will be truncated, packing, and the step counts.
"""

from __future__ import annotations

from pathlib import Path

from trainers.errors import DatasetError, Problem
from trainers.plan import Plan, effective_batch, launched_processes, schedule
from trainers.text.checks import check_data
from trainers.text.config import TextConfig


def plan_text(config: TextConfig) -> Plan:
    """The checked data, tokenized when the tokenizer is at hand, and the step counts."""
    report = check_data(config)
    facts = [("base model", config.base_model),
             ("data", ", ".join(Path(f).name for f in report.files[:3]) + (" …" if len(report.files) > 3 else "")),
             ("format", f"{report.format} ({report.reason})"),
             ("loss on", "prompt and response" if config.train_on_prompt else "response tokens + EOS only"),
             ("lora", f"rank {config.lora_rank}, alpha {config.alpha:g}, dropout {config.lora_dropout:g}, "
                      f"targets {_targets_fact(config)}")]
    warnings = list(report.warnings)
    if config.quantization != "none":
        facts.append(("quantization", f"{config.quantization} (QLoRA, bitsandbytes)"))
        warnings += _quantization_warnings(config)
    data = {"files": [Path(f).name for f in report.files], "format": report.format,
            "train_examples": len(report.train), "eval_examples": len(report.eval)}
    payload, count = None, len(report.train)
    try:
        from trainers.text.model import load_tokenizer

        tokenizer = load_tokenizer(config)
    except Exception as err:  # the check still reports the data; the run will fail loudly
        warnings.append(f"tokenizer not loaded ({err}); token counts and truncation not checked")
    else:
        payload, count = _tokenize(config, report, tokenizer, facts, warnings, data)
    processes = launched_processes()
    sched = schedule(count, batch_size=config.batch_size, accumulation=config.gradient_accumulation_steps,
                     epochs=config.epochs, max_steps=config.max_steps, processes=processes)
    out = Path(config.output_dir)
    writes = [f"{out}/checkpoint-<step>/ (PEFT adapter + training_state/) every "
              f"{config.save_steps or 'end-of-run'}{' steps' if config.save_steps else ''}",
              f"<library>/{config.category}/{config.theme}/{config.name}/ (adapter + lutnav.toml card)"]
    if config.log_with == "tensorboard":
        writes.append(f"{out}/logs/ (TensorBoard)")
    return Plan("text-generation", count, len(payload["eval"]) if payload else len(report.eval), sched,
                effective_batch(config.batch_size, config.gradient_accumulation_steps, processes)[0], facts,
                warnings, writes, data, payload, processes=processes, batch_size=config.batch_size,
                accumulation=config.gradient_accumulation_steps)


def _tokenize(config, report, tokenizer, facts, warnings, data):
    from trainers.text.tokenize import Renderer, encode_all, pack

    renderer = Renderer(tokenizer, system_prompt=config.system_prompt)
    if report.format == "chat" and not renderer.has_template:
        raise DatasetError("chat data needs a chat template", [Problem(
            config.base_model, None, "the tokenizer has no chat_template; set format = \"text\", convert the data "
            "to instruction rows, or use a model whose tokenizer has one")])
    kw = {"max_len": config.max_seq_length, "train_on_prompt": config.train_on_prompt}
    try:
        train, held = encode_all(report.train, renderer, **kw), encode_all(report.eval, renderer, **kw)
    except ValueError as err:
        raise DatasetError("cannot render the data", [Problem(config.base_model, None, str(err))]) from None
    cut = [e for e, enc in zip(report.train + report.eval, train + held) if enc.truncated]
    if cut:
        where = ", ".join(f"{Path(e.path).name}:{e.line}" for e in cut[:3])
        warnings.append(f"{len(cut)} example(s) longer than max_seq_length = {config.max_seq_length} will be "
                        f"truncated (e.g. {where})")
    empty = sum(1 for enc in train if all(label < 0 for label in enc.labels))
    if empty:
        warnings.append(f"{empty} example(s) keep no response tokens after truncation and are skipped")
    train = [enc for enc in train if any(label >= 0 for label in enc.labels)]
    held = [enc for enc in held if any(label >= 0 for label in enc.labels)]
    lengths = [len(enc) for enc in train] or [0]
    tokens = sum(lengths)
    facts.append(("layout", renderer.layout(report.format)))
    facts.append(("tokens", f"{tokens} train (mean {tokens / len(lengths):.0f}, max {max(lengths)} per example)"))
    items = pack(train, config.max_seq_length) if config.packing else train
    if config.packing:
        facts.append(("packing", f"{len(train)} examples → {len(items)} sequences of ≤ {config.max_seq_length}"))
    data.update(train_tokens=tokens, truncated=len(cut))
    return {"tokenizer": tokenizer, "train": items, "eval": held}, len(items)


def _targets_fact(config: TextConfig) -> str:
    if isinstance(config.target_modules, list):
        return ", ".join(config.target_modules)
    from trainers.text.modules import auto_targets_for_folder

    found = auto_targets_for_folder(config.base_model) if config.target_modules == "auto" else None
    return f"{config.target_modules} ({', '.join(found)})" if found else config.target_modules


def _quantization_warnings(config: TextConfig) -> list[str]:
    import importlib.util

    found = []
    if importlib.util.find_spec("bitsandbytes") is None:
        found.append("quantization needs bitsandbytes (pip install bitsandbytes)")
    try:
        import torch

        if not torch.cuda.is_available():
            found.append(f"quantization = \"{config.quantization}\" runs on CUDA GPUs only; training here will stop")
    except ImportError:
        found.append("quantization needs torch with CUDA")
    return found

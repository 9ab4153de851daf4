"""The blend guards: one pure function that the CLI, the TUI basket and recipes all call.

The rules come from how people actually stack LoRAs: more than two at once, or a
total strength above 1.0, and the picture breaks. Those rules are soft (``force``
passes them, and the reason is still reported); a blend across base models, a
broken or pickle entry and the same LoRA twice are hard, because no flag can make
the result work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from catalog.detect.registry import IMAGE_FAMILIES
from catalog.index.entry import Entry

DEFAULTS = {"max_loras": 2, "max_total": 1.0, "weight_range": (-2.0, 2.0)}
CONFIG_HINT = "[mix] in .lutnav/config.toml"


@dataclass
class Verdict:
    """What the guards decided. ``ok`` is False exactly when ``refusals`` is not empty."""

    ok: bool = True
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Every message, prefixed with its kind, in the order a user should read them."""
        return ([f"refused: {r}" for r in self.refusals] + [f"warning: {w}" for w in self.warnings]
                + [f"note: {n}" for n in self.notes])


def mix_config(config: dict | None) -> dict:
    """The ``[mix]`` limits with defaults filled in; a wrong type is a one-line error."""
    from .errors import MixError

    raw = dict((config or {}).get("mix") or {})
    out = dict(DEFAULTS)
    for key, value in raw.items():
        if key not in DEFAULTS:
            continue  # other [mix] settings (recipes, output) are not guard limits
        if key == "weight_range":
            ok = (isinstance(value, (list, tuple)) and len(value) == 2
                  and all(_is_number(v) for v in value) and value[0] <= value[1])
            if not ok:
                raise MixError(f"{CONFIG_HINT}: weight_range must be [low, high], not {value!r}")
            value = (float(value[0]), float(value[1]))
        elif not _is_number(value) or (key == "max_loras" and int(value) != value) or value < 0:
            raise MixError(f"{CONFIG_HINT}: {key} must be a non-negative number, not {value!r}")
        out[key] = value
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def entry_problem(entry: Entry, name: str | None = None) -> str | None:
    """Why an entry's weights cannot be used — broken or a pickle — in the words every verb
    uses (mix, prompt, export, preview), or ``None`` when they can."""
    name = name or entry.name or entry.path
    if entry.error:
        return f"{name} is broken: {entry.error} — fix or remove the file"
    if entry.format == "pickle":
        return f"{name} is a pickle file that lutnav never loads — use a .safetensors version of it"
    return None


def check_blend(entries: list[Entry], weights: list[float], config: dict | None = None, *,
                force: bool = False, modules: list[set] | None = None) -> Verdict:
    """Judge a blend of ``entries`` (``Entry`` objects) at ``weights``.

    ``config`` is the library config (its ``[mix]`` table is read). ``modules``, when
    given, holds each entry's set of adapted layers (see :func:`module_set`) for the
    "no common module" note; without it the entries' ``parts`` stand in.
    """
    if len(entries) != len(weights):
        raise ValueError("check_blend needs one weight per entry")
    limits = mix_config(config)
    v = Verdict()
    soft: list[tuple[str, str]] = []  # (what is wrong, how to pass it)
    names = [e.name or e.path for e in entries]

    for e, name in zip(entries, names):
        problem = entry_problem(e, name)
        if problem:
            v.refusals.append(problem)
    seen: dict[str, str] = {}
    for e, name in zip(entries, names):
        key = e.path or name
        if key in seen:
            v.refusals.append(f"{name} is in the blend twice — give it once with the summed weight")
        seen[key] = name

    _check_bases(entries, names, v)

    lo, hi = limits["weight_range"]
    for name, w in zip(names, weights):
        if not math.isfinite(w):
            v.refusals.append(f"{name}: weight {w} is not a finite number")
        elif not lo <= w <= hi:
            soft.append((f"weight {w:g} of {name} is outside weight_range [{lo:g}, {hi:g}] "
                         f"({CONFIG_HINT})", "pick a weight inside it or pass --force"))
    if len(entries) > limits["max_loras"]:
        soft.append((f"{len(entries)} LoRAs > max_loras {limits['max_loras']:g} ({CONFIG_HINT})",
                     "drop one, raise the limit, or pass --force"))
    total = sum(abs(w) for w in weights if math.isfinite(w))
    if total > limits["max_total"] + 1e-9:
        parts = " + ".join(f"{n} {abs(w):g}" for n, w in zip(names, weights))
        soft.append((f"total strength {total:.2f} > max_total {limits['max_total']:g} ({parts}; "
                     f"{CONFIG_HINT})", "lower the weights, raise the limit, or pass --force"))
    if force:
        v.warnings += [f"{what} — passed with --force" for what, _ in soft]
    else:
        v.refusals += [f"{what} — {fix}" for what, fix in soft]

    for e, name, w in zip(entries, names, weights):
        rng = e.strength_range
        if rng and math.isfinite(w) and not rng[0] <= w <= rng[1]:
            v.warnings.append(f"weight {w:g} of {name} is outside its card's strength_range "
                              f"[{rng[0]:g}, {rng[1]:g}]")
    _check_overlap(entries, names, modules, v)
    v.ok = not v.refusals
    return v


def _check_bases(entries: list[Entry], names: list[str], v: Verdict) -> None:
    known: dict[str, list[str]] = {}
    for e, name in zip(entries, names):
        base = e.base_model or "unknown"
        if e.error or e.format == "pickle":
            continue
        if base == "unknown":
            v.warnings.append(f"{name}: base model unknown — lutnav cannot check it fits the others")
        else:
            known.setdefault(base, []).append(name)
    if len(known) > 1:
        what = ", ".join(f"{'/'.join(ns)} is {b}" for b, ns in known.items())
        kinds = {"image" if b in IMAGE_FAMILIES else "llm" for b in known}
        why = "image LoRAs and LLM adapters cannot blend" if len(kinds) > 1 else \
            "a blend needs one base model"
        v.refusals.append(f"base models differ: {what} — {why} (--force does not pass this)")


def _check_overlap(entries: list[Entry], names: list[str], modules: list[set] | None,
                   v: Verdict) -> None:
    if len(entries) < 2 or v.refusals and any("base models differ" in r for r in v.refusals):
        return
    sets = modules if modules is not None else [set(e.parts or []) for e in entries]
    for (i, a), (j, b) in combinations(enumerate(sets), 2):
        if a and b and not a & b:
            v.notes.append(f"{names[i]} and {names[j]} touch no common module: "
                           "each acts on its own layers")


def module_set(path: str | Path) -> set[tuple[str, str]]:
    """The layers a LoRA file adapts, named canonically (kohya and diffusers spellings agree).

    Reads only the header. Keys the mapper does not know (Flux, LLMs) are kept
    verbatim up to the role, so two such files still compare.
    """
    from catalog.files.header import read_header
    from catalog.detect.kohya_names import parse_key

    p = Path(path)
    if p.is_dir():
        p = p / "adapter_model.safetensors"
    out: set[tuple[str, str]] = set()
    from catalog.detect.dit_keys import parse_dit_key

    for key in read_header(p).tensors:
        name = parse_key(key)
        if name is not None:
            out.add(name.module)
        elif (d := parse_dit_key(key)) is not None:
            out.add(("transformer", d.flat))  # one identity for every prefix of the same names
        else:
            out.add(("other", key))
    return out

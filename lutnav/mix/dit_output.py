"""Which key spelling a merged or converted transformer-family LoRA is written in, and its key names.

The rule (issue: keep what loads): when every input uses one spelling that the
family's usual client loads fully (ComfyUI, or diffusers for families ComfyUI
has no rules for), the output keeps it; otherwise the first spelling that client
loads. ``--to`` picks another, and a target no client loads is refused with the
ones that would work. kohya-style outputs carry ``.alpha``; the others carry no
alpha, so the scale is folded into ``up`` and loaders take alpha = rank.
"""

from __future__ import annotations

from catalog.detect.dit_keys import DitKey, names_of, render
from catalog.detect.kohya_names import KeyName, diffusers_key
from catalog.detect.registry import CLIENTS, FAMILIES, TARGET_PREFIX

from .errors import MixError

KEEP_PREFIX = {"kohya": "lora_unet_", "kohya-transformer": "lora_transformer_", "lycoris": "lycoris_",
               "comfyui": "diffusion_model.", "peft": "base_model.model.", "diffusers": "transformer.", "bare": ""}
WITH_ALPHA = frozenset({"kohya", "kohya-transformer", "lycoris"})


def usual_client(family: str) -> str:
    return "comfyui" if "comfyui" in FAMILIES[family].loads else "diffusers"


def input_spelling(loras: list, family: str) -> tuple[set[str], str]:
    """(prefix kinds the inputs use, the one names-kind they share); refuses original + diffusers mixed."""
    prefixes, names = set(), set()
    for lora in loras:
        for d in lora.names.values():
            prefixes.add(d.prefix)
            if (n := names_of(d.flat, family)) != "unknown":
                names.add(n)
    if len(names) > 1:
        raise MixError(f"the inputs name {FAMILIES[family].label} layers two ways ({' and '.join(sorted(names))} "
                       "module names); lutnav merges files of one naming",
                       hint="merge the files that share a naming, or convert one first")
    return prefixes, (names.pop() if names else FAMILIES[family].native)


def harmonise(loras: list, family: str | None, to: str | None) -> None:
    """Flux.1/Chroma files in diffusers names move onto the original layers (exact) when they are mixed
    with original-named files, or when the output is asked in kohya/comfyui names, which load fully."""
    if family not in ("flux", "chroma"):
        return
    names = {names_of(d.flat, family) for lora in loras for d in lora.names.values()} - {"unknown"}
    if "diffusers" in names and (len(names) > 1 or to in ("kohya", "comfyui")):
        from .flux_names import to_original

        for lora in loras:
            lora.modules, lora.names = to_original(lora.modules, lora.names)


def choose_target(loras: list, family: str, to: str | None) -> tuple[str, str]:
    """(prefix kind of the output, names kind) for ``loras`` of ``family``."""
    fam = FAMILIES[family]
    prefixes, names = input_spelling(loras, family)
    client = usual_client(family)
    if to is not None:
        if to not in TARGET_PREFIX:
            raise MixError(f"--to must be one of {', '.join(TARGET_PREFIX)}, not {to!r}")
        if not any(fam.loaded_by(c, f"{to}:{names}") for c in CLIENTS):
            works = [t for t in TARGET_PREFIX if any(fam.loaded_by(c, f"{t}:{names}") for c in CLIENTS)]
            raise MixError(f"no client lutnav knows loads {fam.label} {names}-named layers with the {to} prefix",
                           hint=f"use --to {' or --to '.join(works)}" if works else "keep the input spelling")
        return to, names
    if len(prefixes) == 1 and fam.loaded_by(client, f"{(kept := next(iter(prefixes)))}:{names}"):
        return kept, names
    for target in TARGET_PREFIX:
        if fam.loaded_by(client, f"{target}:{names}"):
            return target, names
    for target in TARGET_PREFIX:
        if any(fam.loaded_by(c, f"{target}:{names}") for c in CLIENTS):
            return target, names
    raise MixError(f"no client lutnav knows loads {fam.label} {names}-named LoRAs in any spelling it writes")


def module_key(module: tuple[str, str], written: DitKey | None, target: str, family: str) -> str:
    """The module part of the output keys (before ``.lora_down.weight`` / ``.lora_A.weight``)."""
    part, path = module
    if part != "transformer":  # a text encoder beside the transformer (CLIP-L, T5)
        if target in WITH_ALPHA:
            return f"lora_{part}_" + path.replace(".", "_")
        return diffusers_key(KeyName(part, path, "down", "diffusers")).removesuffix(".lora_A.weight")
    d = written or DitKey("kohya", path, "down")
    if d.prefix == target and target in KEEP_PREFIX:
        return KEEP_PREFIX[target] + d.module
    name = render(d, target) if target in TARGET_PREFIX else KEEP_PREFIX[target] + d.flat
    if name is None:
        raise MixError(f"module {d.flat!r} of {FAMILIES[family].label} cannot be written with dots "
                       f"(a name piece lutnav does not know)", hint="keep the input spelling (leave out --to)")
    return name


def role_suffixes(target: str) -> tuple[str, str, bool]:
    """(down suffix, up suffix, writes .alpha)."""
    if target in WITH_ALPHA:
        return ".lora_down.weight", ".lora_up.weight", True
    return ".lora_A.weight", ".lora_B.weight", False

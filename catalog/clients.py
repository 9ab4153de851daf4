"""Which keys of a LoRA each client maps, and which it silently drops.

The rules are the measured behaviour of the loaders (see FORMATS.md, "Loaders"):
ComfyUI maps kohya names completely but, for diffusers/PEFT-named SD files,
drops every UNet attention ``to_q/to_k/to_v/to_out.0`` pair; AUTOMATIC1111/Forge
loads kohya names only; diffusers loads kohya and diffusers names but no LoHa or
LoKr. Pure Python over key names (imports only :mod:`catalog.keynames`), so the
scanner can use :func:`client_warning` for the one-line catalog warning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat

from catalog.keynames import UNET, parse_key

CLIENTS = {"comfyui": "ComfyUI", "a1111": "AUTOMATIC1111/Forge", "diffusers": "diffusers"}
_ATTENTION = re.compile(r"(^|\.)attn[12]\.to_(q|k|v|out\.0)$")
_LYCORIS_ROLE = re.compile(r"^(hada_|lokr_)")
_FIX_KOHYA = "`lutnav convert --to kohya`"


@dataclass
class ClientReport:
    client: str
    total: int  # tensors in the file
    mapped: int
    dropped: list[str] = field(default_factory=list)  # keys the client would ignore
    unknown: list[str] = field(default_factory=list)  # keys outside the SD UNet/CLIP rules
    reason: str = ""
    fix: str | None = None

    @property
    def label(self) -> str:
        return CLIENTS[self.client]

    def summary(self) -> str:
        """One line: what maps, what is dropped and why, and how to fix it."""
        head = f"{self.label}: maps {self.mapped} of {self.total} tensors"
        if self.dropped:
            head += f", ignores {len(self.dropped)} ({self.reason})"
        if self.unknown:
            head += f"; {len(self.unknown)} keys are outside the SD rules lutnav knows (not checked)"
        if self.dropped and self.fix:
            head += f" — {self.fix}"
        return head


@lru_cache(maxsize=1 << 17)  # a library repeats the same few thousand key names in every file
def _dropped_by(client: str, key: str) -> str | None:
    """Why ``client`` ignores ``key``; ``None`` when it maps it, ``?`` when lutnav cannot tell."""
    name = parse_key(key)
    if name is None:
        return "?"
    diffusers_named = name.style == "diffusers"
    lycoris = bool(_LYCORIS_ROLE.match(name.role))
    if client == "comfyui":
        if diffusers_named and name.part == UNET and _ATTENTION.search(name.path):
            return "UNet attention pairs in diffusers/PEFT names"
    elif client == "a1111":
        if diffusers_named:
            return "diffusers/PEFT key names"
    elif client == "diffusers":
        if lycoris:
            return "LoHa/LoKr layers"
    else:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, not {client!r}")
    return None


def check_client(keys: Iterable[str], client: str) -> ClientReport:
    """Sort every tensor key of a file into mapped / dropped / unknown for ``client``.

    A library repeats the same few thousand key names in every file, so each name's
    verdict is computed once (``_dropped_by`` is memoised) and a file's keys are
    sorted by whole-list operations rather than a Python loop per key.
    """
    keys = list(keys)
    report = ClientReport(client, len(keys), 0)
    verdicts = list(map(_dropped_by, repeat(client, len(keys)), keys))
    counts = Counter(verdicts)  # in order of first appearance, as the reasons are listed
    report.mapped = counts.pop(None, 0)
    unknown = counts.pop("?", 0)
    if unknown:
        report.unknown = [key for key, why in zip(keys, verdicts) if why == "?"]
    if counts and not unknown and not report.mapped:  # every key dropped (A1111 on diffusers names)
        report.dropped = keys
    elif counts:
        report.dropped = [key for key, why in zip(keys, verdicts) if why is not None and why != "?"]
    reasons = dict(counts)
    report.reason = ", ".join(reasons)
    if report.dropped:
        lycoris_only = set(reasons) == {"LoHa/LoKr layers"}
        report.fix = "load it in ComfyUI or AUTOMATIC1111/Forge" if lycoris_only else _FIX_KOHYA
    return report


def check_all(keys: Iterable[str]) -> list[ClientReport]:
    keys = list(keys)
    return [check_client(keys, c) for c in CLIENTS]


def client_warnings(keys: Iterable[str]) -> list[str]:
    """One catalog-style line per client that would drop tensors of this file."""
    return [f"{r.label} will ignore {len(r.dropped)} of {r.total} tensors — {r.fix}"
            for r in check_all(keys) if r.dropped]


def client_warning(keys: Iterable[str]) -> str | None:
    """The single line for the catalog's ``warnings``: the client that drops most is named first.

    e.g. "ComfyUI will ignore 256 of 528 tensors — `lutnav convert --to kohya`".
    A file that every client maps fully gives ``None``.
    """
    reports = [r for r in check_all(keys) if r.dropped]
    if not reports:
        return None
    # ComfyUI's partial drop is the silent one (A1111 fails loudly on a file it loads none of)
    reports.sort(key=lambda r: (r.client != "comfyui", -len(r.dropped)))
    first = reports[0]
    line = f"{first.label} will ignore {len(first.dropped)} of {first.total} tensors"
    others = [r.label for r in reports[1:]]
    if others:
        line += f" ({', '.join(others)} too)"
    return f"{line} — {first.fix}"

"""Which keys of a LoRA each client maps, and which it silently drops.

The rules are the measured behaviour of the loaders (see FORMATS.md, "Loaders"):
ComfyUI maps kohya names completely but, for diffusers/PEFT-named SD files,
drops every UNet attention ``to_q/to_k/to_v/to_out.0`` pair; AUTOMATIC1111/Forge
loads kohya names only; diffusers loads kohya and diffusers names but no LoHa or
LoKr. For the transformer families the family registry says which spellings
each client maps (:meth:`catalog.detect.registry.Family.loaded_by`): ComfyUI loses every
key of an XLabs- or PEFT-spelled Flux file, for example. Pure Python over key
names, so the scanner can use :func:`client_warning` for the one-line catalog warning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from catalog.detect.dit_keys import names_of, parse_dit_key
from catalog.detect.kohya_names import UNET, parse_key
from catalog.detect.registry import FAMILIES

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
        head = f"{self.label}: will load {self.mapped} of {self.total} tensors"
        if self.dropped:
            head += f", ignores {len(self.dropped)} ({self.reason})"
        if self.unknown:
            head += f"; {len(self.unknown)} keys are outside the rules lutnav knows for this client (not checked)"
        if self.dropped and self.fix:
            head += f" — {self.fix}"
        return head


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


_SD = frozenset({"sd1", "sd2", "sdxl"})


def _dit_spellings(keys: list[str], family: str) -> dict[str, str | None]:
    """key -> "<prefix>:<names>" (None: not a LoRA key; "te": a text-encoder key), one pass per file."""
    fam = FAMILIES[family]
    parsed = {}
    counts: dict[str, int] = {}
    for k in keys:
        d = parse_dit_key(k)
        if d is None:
            parsed[k] = None
            continue
        names = names_of(d.flat, family)
        parsed[k] = (d, names)
        if names != "unknown":
            counts[names] = counts.get(names, 0) + 1
    usual = max(counts, key=counts.__getitem__) if counts else fam.native
    out: dict[str, str | None] = {}
    for k, found in parsed.items():
        if found is None:
            out[k] = None
        elif k.startswith("lora_te"):
            out[k] = "te"
        else:
            d, names = found
            out[k] = f"{d.prefix}:{usual if names == 'unknown' else names}" + \
                ("|lycoris" if d.role.startswith(("hada_", "lokr_")) else "")
    return out


def _dit_rules(spellings: dict[str, str | None], client: str, family: str):
    """``why(key)`` for a transformer family: the registry's verdict on each key's spelling."""
    fam = FAMILIES[family]
    verdicts: dict[str, str | None] = {}

    def why(key: str) -> str | None:
        spelling = spellings[key]
        if spelling is None:
            return "?"
        if spelling == "te":  # CLIP-L / T5 beside the transformer: the SD text-encoder rules
            return _dropped_by(client, key) if parse_key(key) is not None else "?"
        if spelling not in verdicts:
            plain, _, lycoris = spelling.partition("|")
            if client == "diffusers" and lycoris:  # newer diffusers converts some LoKr files: not checked
                verdicts[spelling] = "?"
            elif client == "a1111" and client not in fam.loads:
                verdicts[spelling] = f"{CLIENTS[client]} has no {fam.label} support"
            else:
                loads = fam.loaded_by(client, plain)
                verdicts[spelling] = "?" if loads is None else None if loads else \
                    f"{fam.label} keys spelled {plain.replace(':', ' prefix, ')} names"
        return verdicts[spelling]
    return why


def _dit_fix(family: str, client: str) -> str | None:
    fam = FAMILIES[family]
    for target in fam.targets:
        names = fam.native if target in ("kohya", "comfyui") else "diffusers"
        if fam.loaded_by(client, f"{target}:{names}"):
            return f"`lutnav convert --to {target}`"
    return None


def check_client(keys: Iterable[str], client: str, family: str | None = None,
                 spellings: dict[str, str | None] | None = None) -> ClientReport:
    """Sort every tensor key of a file into mapped / dropped / unknown for ``client``.

    ``family`` (the detected base model) selects the rules: the SD rules by default,
    the registry's spellings for a transformer family.
    """
    keys = list(keys)
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, not {client!r}")
    report = ClientReport(client, len(keys), 0)
    dit = family in FAMILIES and family not in _SD and FAMILIES[family].media != "llm"
    if dit:
        if spellings is None:
            spellings = _dit_spellings(keys, family)
        verdicts = list(map(_dit_rules(spellings, client, family), keys))
    else:  # the SD rules: each name's verdict is memoised, the file's keys sorted in whole-list passes
        column = list(CLIENTS).index(client)
        verdicts = [_sd_verdicts(key)[column] for key in keys]
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
        if lycoris_only:
            report.fix = "load it in ComfyUI or AUTOMATIC1111/Forge"
        else:
            report.fix = _dit_fix(family, client) if dit else _FIX_KOHYA
    return report


def check_all(keys: Iterable[str], family: str | None = None) -> list[ClientReport]:
    keys = list(keys)
    dit = family in FAMILIES and family not in _SD and FAMILIES[family].media != "llm"
    spellings = _dit_spellings(keys, family) if dit else None
    return [check_client(keys, c, family, spellings) for c in CLIENTS]


def client_warning(keys: Iterable[str], family: str | None = None) -> str | None:
    """The single line for the catalog's ``warnings``: the client that drops most is named first.

    e.g. "ComfyUI will ignore 256 of 528 tensors — `lutnav convert --to kohya`".
    A file that every client maps fully gives ``None``. The same key list (a
    trainer's files at one rank) is judged once per scan process.
    """
    keys = tuple(keys)
    memo_key = (family, keys)
    if memo_key in _WARNINGS:
        return _WARNINGS[memo_key]
    if len(_WARNINGS) >= 64:
        _WARNINGS.clear()
    line = _WARNINGS[memo_key] = _warning_line(keys, family)
    return line


#: client_warning's answers per (family, key list)
_WARNINGS: dict[tuple, str | None] = {}


def _warning_line(keys: tuple[str, ...], family: str | None) -> str | None:
    reports = [r for r in _tallies(keys, family) if r.dropped and r.mapped + r.unknown < r.total]
    if family in FAMILIES and family not in _SD:  # a client with no support at all for the family fails loudly
        reports = [r for r in reports if r.mapped or r.client == "comfyui"]
    if not reports:
        return None
    # ComfyUI's partial drop is the silent one (A1111 fails loudly on a file it loads none of)
    reports.sort(key=lambda r: (r.client != "comfyui", -r.dropped))
    first = reports[0]
    line = f"{first.label} will ignore {first.dropped} of {first.total} tensors"
    others = [r.label for r in reports[1:]]
    if others:
        line += f" ({', '.join(others)} too)"
    return f"{line} — {first.fix}" if first.fix else line


@dataclass
class _Tally:
    """A ``ClientReport`` as counts only: what the catalog's warning line needs."""
    client: str
    total: int
    mapped: int
    unknown: int
    dropped: int
    fix: str | None

    @property
    def label(self) -> str:
        return CLIENTS[self.client]


@lru_cache(maxsize=1 << 17)  # a library repeats the same few thousand key names in every file
def _sd_verdicts(key: str) -> tuple[str | None, ...]:
    """Every client's ``_dropped_by`` of one key, in ``CLIENTS`` order: judged once, shared by
    the full reports and the catalog's warning line."""
    return tuple(_dropped_by(client, key) for client in CLIENTS)


#: key -> number of its row of verdicts in ``_ROWS``: a file's keys are counted as small
#: ints (a file has a handful of distinct rows), not as tuples judged key by key
_ROW_OF: dict[str, int] = {}
_ROWS: dict[tuple[str | None, ...], int] = {}


def _sd_rows(keys: tuple[str, ...]) -> dict[tuple[str | None, ...], int]:
    """How many of ``keys`` get each row of SD verdicts (``_sd_verdicts``)."""
    numbers = Counter(map(_ROW_OF.get, keys))
    if None in numbers:
        if len(_ROW_OF) >= 1 << 17:
            _ROW_OF.clear()
        for key in keys:
            if key not in _ROW_OF:
                _ROW_OF[key] = _ROWS.setdefault(_sd_verdicts(key), len(_ROWS))
        numbers = Counter(map(_ROW_OF.get, keys))
    rows = list(_ROWS)
    return {rows[number]: count for number, count in numbers.items()}


def _tallies(keys: tuple[str, ...], family: str | None) -> list[_Tally]:
    """``check_all`` as counts: every key judged once for all clients, then counted
    per distinct verdict row (a file has a handful), not per key and client."""
    dit = family in FAMILIES and family not in _SD and FAMILIES[family].media != "llm"
    if dit:
        spellings = _dit_spellings(list(keys), family)
        whys = [_dit_rules(spellings, client, family) for client in CLIENTS]
        by_spelling: dict[str | None, tuple] = {}
        rows = []
        for key in keys:
            spelling = spellings[key]
            row = by_spelling.get(spelling) if spelling != "te" else None
            if row is None:  # text-encoder keys follow the SD rules, key by key
                row = tuple(why(key) for why in whys)
                if spelling != "te":
                    by_spelling[spelling] = row
            rows.append(row)
        counted = Counter(rows)
    else:
        counted = _sd_rows(keys)
    out = []
    for column, client in enumerate(CLIENTS):
        mapped = unknown = dropped = 0
        reasons: dict[str, None] = {}
        for row, count in counted.items():
            why = row[column]
            if why is None:
                mapped += count
            elif why == "?":
                unknown += count
            else:
                dropped += count
                reasons[why] = None
        if dropped and not unknown and not mapped:
            dropped = len(keys)
        fix = None
        if dropped:
            if set(reasons) == {"LoHa/LoKr layers"}:
                fix = "load it in ComfyUI or AUTOMATIC1111/Forge"
            else:
                fix = _dit_fix(family, client) if dit else _FIX_KOHYA
        out.append(_Tally(client, len(keys), mapped, unknown, dropped, fix))
    return out

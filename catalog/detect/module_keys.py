"""How a file spells its LoRA: which key names each module, and the module's widths.

Writers agree on little (kohya ``lora_down``/``lora_up`` + ``.alpha``, diffusers and
peft ``lora_A``/``lora_B`` with or without an adapter name, diffusers' older
``lora.down``/``_lora.down``/``lora_linear_layer.down``, XLabs ``proj_lora1.down``,
LyCORIS ``hada_*``/``lokr_*``), but each file uses one spelling throughout, and
every writer stores keys sorted, so a module's tensors sit side by side. The
first decisive key picks the spelling; the modules are then found as an evenly
strided run of anchor keys (one C-level check), with a full pass only for files
that do not fit that pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter, methodcaller, or_

Shape = tuple[int, ...]
_CONV3_NAMES = ("_conv1", "_conv2", "_conv", "_in_layers_2", "_out_layers_3", "_op")
_CHECKPOINT_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.")
_OTHER_LYCORIS = ((".on_input", "ia3"), (".oft_blocks", "other"), (".oft_diag", "other"),
                  (".a1.weight", "other"), (".diff", "other"))


class KeyIndex:
    """Name lookups that try the expected neighbour first and index all names only when it misses.

    ``position`` is the header table's own (cached) name index, shared so that it is
    built at most once per file.
    """

    __slots__ = ("names", "shapes", "dtypes", "_position")

    def __init__(self, names: Sequence[str], shapes: Sequence[Shape], dtypes: Sequence[str] = (),
                 position: Callable[[str], int | None] | None = None):
        self.names, self.shapes, self.dtypes = names, shapes, dtypes
        self._position = position

    def find(self, key: str, near: int = -1) -> int | None:
        if 0 <= near < len(self.names) and self.names[near] == key:
            return near
        if self._position is None:
            self._position = dict(zip(self.names, range(len(self.names)))).get
        return self._position(key)

    def shape(self, key: str, near: int = -1) -> Shape | None:
        at = self.find(key, near)
        return None if at is None else self.shapes[at]


@dataclass(slots=True)
class LoraKeys:
    format: str
    network: str
    anchors: Sequence[str]  # one key per module (down / lora_A / hada_w1_b / lokr_w1), file order
    positions: Sequence[int]  # where each anchor sits in the header (a range when evenly strided)
    cuts: list[int] | int  # length of the anchor's suffix (per anchor when it varies)
    index: KeyIndex
    suffixes: tuple[str, ...] = ()  # the anchor suffixes in use
    up: str = ""  # suffix of the partner of a low-rank pair
    ranks: list[int] = field(default_factory=list)  # per linear (and 1x1) module
    conv_ranks: list[int] = field(default_factory=list)  # per 3x3 conv module
    conv: frozenset[int] = frozenset()  # anchor numbers of 3x3 conv modules
    warnings: list[str] = field(default_factory=list)
    maybe_alpha: bool = True  # False when the key count leaves no room for .alpha tensors

    @property
    def has_conv(self) -> bool:
        return bool(self.conv)

    def module(self, i: int) -> str:
        cut = self.cuts if isinstance(self.cuts, int) else self.cuts[i]
        return self.anchors[i][:-cut]

    def modules(self) -> list[str]:
        cut = self.cuts
        return [a[:-cut] for a in self.anchors] if isinstance(cut, int) else list(map(self.module, range(len(cut))))

    def in_width(self, i: int) -> int | None:
        """Input width of module ``i`` (the cheap half of :meth:`widths`)."""
        if self.network in ("lora", "locon"):
            d = self.index.shapes[self.positions[i]]
            return d[1] if len(d) >= 2 else None
        w = self.widths(i)
        return w[0] if w else None

    def in_widths(self, indices: Sequence[int]) -> list[int | None]:
        """:meth:`in_width` of each module in ``indices``."""
        if self.network in ("lora", "locon"):
            shapes = map(self.index.shapes.__getitem__, map(self.positions.__getitem__, indices))
            return [d[1] if len(d) >= 2 else None for d in shapes]
        return list(map(self.in_width, indices))

    def widths(self, i: int) -> tuple[int, int, int | None] | None:
        """(in, out) of module ``i``'s full weight and the ndim of its anchor."""
        d = self.index.shapes[self.positions[i]]
        if self.network in ("lora", "locon"):
            if len(d) < 2:
                return None
            u = self.index.shape(self.module(i) + self.up, self.positions[i] + 1)
            return d[1], (u[0] if u else 0), len(d)
        if self.network == "loha":
            a = self.index.shape(self.module(i) + ".hada_w1_a", self.positions[i] - 1)
            return (d[1], a[0] if a else 0, None) if len(d) == 2 else None
        if self.network == "lokr":
            f1, f2 = _factor(self, self.module(i), "w1"), _factor(self, self.module(i), "w2")
            return (f1[1] * f2[1], f1[0] * f2[0], None) if f1 and f2 else None
        if self.network in ("none", "other") and len(d) >= 2:  # checkpoints and full deltas: (out, in)
            return d[1], d[0], len(d)
        return None

    def alpha_at(self, i: int) -> int | None:
        """Where module ``i``'s ``.alpha`` tensor sits, if the file has one."""
        return self.index.find(self.module(i) + ".alpha", self.positions[i] - 1)


def find_layout(index: KeyIndex, adapter_config: dict | None) -> LoraKeys | None:
    """The LoRA spelling of a file, or None when it holds no LoRA at all."""
    names = index.names
    for at, n in enumerate(names):
        if n.endswith(".lora_down.weight"):
            down, up = ".lora_down.weight", ".lora_up.weight"
        elif n.endswith(".lora_A.weight"):
            down, up = ".lora_A.weight", ".lora_B.weight"
        elif ".lora_A." in n and n.endswith(".weight"):  # peft keeping the adapter name
            adapter = n[n.rindex(".lora_A.") + 8: -7]
            down, up = f".lora_A.{adapter}.weight", f".lora_B.{adapter}.weight"
        elif n.endswith(".down.weight"):
            down, up = ".down.weight", ".up.weight"
        elif n.endswith(".hada_w1_b"):
            return _lycoris(index, "loha", (".hada_w1_b",))
        elif n.endswith((".lokr_w1", ".lokr_w1_a")):
            return _lycoris(index, "lokr", (".lokr_w1", ".lokr_w1_a"))
        else:
            continue
        if index.find(n[: -len(down)] + up, at + 1) is not None:
            return _pairs(index, down, up, adapter_config)
    return _other_lycoris(index)


def anchor_run(names: Sequence[str], suffix: str) -> Sequence[int]:
    """Positions of every key ending in ``suffix``: a strided range when the file allows it."""
    count = "\n".join(names).count(suffix + "\n") + (1 if names and names[-1].endswith(suffix) else 0)
    if not count:
        return []
    first = next(i for i, n in enumerate(names) if n.endswith(suffix))
    for stride in (3, 2, 1, 4, 5):
        run = names[first: first + stride * count: stride]
        if len(run) == count and ("\n".join(run) + "\n").count(suffix + "\n") == count:
            return range(first, first + stride * count, stride)
    return list(compress(range(len(names)), map(str.endswith, names, repeat(suffix))))


def _pairs(index: KeyIndex, down: str, up: str, adapter_config: dict | None) -> LoraKeys:
    names = index.names
    positions = anchor_run(names, down)
    if isinstance(positions, range):  # slices copy in C
        span = slice(positions.start, positions.stop, positions.step)
        anchors, down_shapes = names[span], index.shapes[span]
    else:
        anchors, down_shapes = [names[p] for p in positions], [index.shapes[p] for p in positions]
    first = anchors[0][: -len(down)]
    if adapter_config is not None or first.startswith("base_model.model."):
        fmt = "peft"
    elif first.startswith("lycoris_"):
        fmt = "lycoris"
    else:
        # a dotted module path (the first module of a bare file may be a top-level one: x_embedder)
        dotted = "." in first or any("." in a[: -len(down)] for a in (anchors[len(anchors) // 2], anchors[-1]))
        fmt = "diffusers" if dotted else "kohya"
    conv: frozenset[int] = frozenset()
    ndims = set(map(len, down_shapes))
    if 4 in ndims:
        four = compress(range(len(down_shapes)), map((4).__eq__, map(len, down_shapes)))
        conv = frozenset(i for i in four if down_shapes[i][2] > 1 or down_shapes[i][3] > 1)
    ranks = list(map(itemgetter(0), down_shapes)) if 0 not in ndims else [s[0] if s else 0 for s in down_shapes]
    keys = LoraKeys(fmt, "locon" if conv else "lora", anchors, positions, len(down), index, (down,), up,
                    ranks=[r for i, r in enumerate(ranks) if i not in conv] if conv else ranks,
                    conv_ranks=[ranks[i] for i in sorted(conv)], conv=conv)
    extra = len(names) - 2 * len(anchors)
    keys.maybe_alpha = extra > 0
    if extra not in (0, len(anchors)) or (extra and keys.alpha_at(0) is None):
        keys.warnings += _account(names, len(anchors), down, up)
    return keys


def _account(names: Sequence[str], count: int, down: str, up: str) -> list[str]:
    """Say what a file holds besides its pairs (the slow path: odd files only)."""
    ups = sum(1 for n in names if n.endswith(up))
    alphas = sum(1 for n in names if n.endswith(".alpha"))
    rest = [n for n in names if not n.endswith((down, up, ".alpha"))]
    out = []
    if ups != count:
        out.append(f"{count} {down.strip('.')} tensors but {ups} {up.strip('.')}: some modules are half missing")
    if alphas and alphas != count:
        out.append(f"only {alphas} of {count} modules have an .alpha tensor")
    if rest:
        kinds = []
        if any("dora_scale" in n or "magnitude" in n for n in rest):
            kinds.append("DoRA magnitude vectors")
        if any(n.endswith((".diff", ".diff_b")) for n in rest):
            kinds.append("full-weight deltas (.diff)")
        if any(n.startswith("lora_unet_") and n.endswith("_lora.down.weight") for n in rest):
            kinds.append("UNet pairs spelled `_lora.down.weight`, as diffusers' kohya converter mangles "
                         "them: diffusers refuses the file and other loaders skip those layers")
        what = f" ({', '.join(kinds)})" if kinds else ""
        out.append(f"{len(rest)} tensors outside the LoRA pairs{what}, e.g. {rest[0]!r}")
    return out


def _lycoris(index: KeyIndex, network: str, suffixes: tuple[str, ...]) -> LoraKeys:
    """LoHa/LoKr modules, found as ``_pairs`` finds its anchors: one whole-list pass picks
    the anchors and the per-module facts (Tucker cores, low-rank factors) together."""
    names, shapes = index.names, index.shapes
    facts = (".hada_t1", ".lokr_w2") + ((".lokr_w2_b", ".lokr_w1_b") if network == "lokr" else ())
    found: dict[str, list[int]] = {suffix: [] for suffix in suffixes + facts}
    for p in _ending(names, suffixes + facts):  # each suffix is "." and one dot-free word
        found[names[p][names[p].rindex("."):]].append(p)
    positions = sorted(found[suffixes[0]] + found[suffixes[1]]) if len(suffixes) > 1 else found[suffixes[0]]
    anchors = [names[p] for p in positions]
    if len(suffixes) == 1:
        cuts: list[int] | int = len(suffixes[0])
        modules = [a[:-cuts] for a in anchors]
    else:
        cuts = [len(suffixes[0]) if a.endswith(suffixes[0]) else len(suffixes[1]) for a in anchors]
        modules = list(map(_cut, anchors, cuts))
    keys = LoraKeys("lycoris", network, anchors, positions, cuts, index, suffixes)
    if anchors and anchors[0].startswith("base_model.model."):
        keys.format = "peft"

    def by_module(suffix: str) -> dict[str, Shape]:  # the last of repeated names wins, as KeyIndex.find
        cut = len(suffix)
        return {names[p][:-cut]: shapes[p] for p in found.get(suffix, ())}

    cores, w2 = by_module(".hada_t1"), by_module(".lokr_w2")
    tucker = [m in cores or len(w2.get(m) or ()) == 4 for m in modules] if cores or w2 else repeat(False)
    if network == "loha":
        ranks: list[int | None] = [shapes[p][0] for p in positions]
    else:
        w2_b, w1_b = by_module(".lokr_w2_b"), by_module(".lokr_w1_b")
        low = [w2_b.get(m) or w1_b.get(m) for m in modules]
        ranks = [s[0] if s else None for s in low]  # None: whole Kronecker factors, no rank
    conv3 = map(str.endswith, map(methodcaller("replace", ".", "_"), modules), repeat(_CONV3_NAMES))
    keys.conv = frozenset(compress(range(len(modules)), map(or_, tucker, conv3)))
    for i, rank in enumerate(ranks):
        if rank is not None:
            (keys.conv_ranks if i in keys.conv else keys.ranks).append(rank)
    if network == "lokr" and not keys.ranks and not keys.conv_ranks:
        keys.warnings.append("LoKr with whole Kronecker factors: it has no rank")
    return keys


def _ending(names: Sequence[str], suffixes: tuple[str, ...]) -> list[int]:
    """Positions of the names ending in any of ``suffixes``, in one C-level pass."""
    return list(compress(range(len(names)), map(str.endswith, names, repeat(suffixes))))


def _cut(name: str, cut: int) -> str:
    return name[:-cut]


def _factor(keys: LoraKeys, module: str, w: str) -> tuple[int, int] | None:
    """(out, in) of one Kronecker factor, whole or as a low-rank pair."""
    whole = keys.index.shape(f"{module}.lokr_{w}")
    if whole is not None:
        return whole[0], whole[1]
    a, b = keys.index.shape(f"{module}.lokr_{w}_a"), keys.index.shape(f"{module}.lokr_{w}_b")
    return (a[0], b[1]) if a and b else None


def _other_lycoris(index: KeyIndex) -> LoraKeys | None:
    """IA3, OFT, GLoRA and full-delta networks: named, but no rank to read."""
    names = index.names
    for suffix, network in _OTHER_LYCORIS:
        positions = [p for p, n in enumerate(names) if n.endswith(suffix)]
        if positions:
            anchors = [names[p] for p in positions]
            fmt = "peft" if anchors[0].startswith("base_model.model.") else "lycoris"
            return LoraKeys(fmt, network, anchors, positions, len(suffix), index, (suffix,))
    if any("ia3_l" in n for n in names[:20]):
        return LoraKeys("peft", "ia3", [], [], 0, index)
    return None


def checkpoint_layout(index: KeyIndex, *, known: bool = False) -> LoraKeys | None:
    """A full model misfiled as a LoRA: its own weights give the widths.

    ``known``: the key names already said it is a full model, so no size test is needed.
    """
    names, shapes = index.names, index.shapes
    big = 8 if known else sum(1 for s in shapes if len(s) == 2 and min(s) >= 256)
    if big < 8 and not any(n.startswith(_CHECKPOINT_PREFIXES) for n in names):
        return None
    positions = [p for p, (n, s) in enumerate(zip(names, shapes)) if n.endswith(".weight") and len(s) in (2, 4)]
    return LoraKeys("checkpoint", "none", [names[p] for p in positions], positions, 7, index, (".weight",))

"""Merge math: exact rank concatenation, and factored SVD to a target rank.

For LoRAs i at strengths sᵢ the blend of one layer is
``ΔW = Σ sᵢ·(αᵢ/rᵢ)·upᵢ @ downᵢ = [s₁α₁/r₁·up₁ | … ] @ [down₁; …]``, so stacking
along the rank axis with each scale folded into ``up`` is exact. To reach a
smaller rank N without forming ΔW: with ``U = QᵤRᵤ`` (the stacked ups) and
``Dᵀ = Q_dR_d`` (the stacked downs), ``ΔW = Qᵤ(RᵤR_dᵀ)Q_dᵀ``; the SVD of the small
R×R core gives the optimal rank-N truncation of ΔW itself, and its dropped
singular values give the error without a dense matrix.

Every yielded module is already scaled for the ``alpha`` the caller asks for
(one alpha for the whole file), so ``alpha / rank · up @ down`` is the blend.
Data handling is numpy; the small factorizations run in torch on one thread
(a 64-column QR gains nothing from threads and loses a lot on a busy machine).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from .tensors import as_float, from_float, numpy

from .errors import MergeInputError, MixError

Module = tuple[str, str]


@dataclass
class MergeReport:
    """Per-module relative Frobenius error of the merged ΔW (0 for exact modules)."""

    errors: dict[Module, float] = field(default_factory=dict)
    ranks: dict[Module, int] = field(default_factory=dict)

    @property
    def worst(self) -> tuple[Module | None, float]:
        if not self.errors:
            return None, 0.0
        module = max(self.errors, key=self.errors.__getitem__)
        return module, self.errors[module]

    @property
    def mean(self) -> float:
        return sum(self.errors.values()) / len(self.errors) if self.errors else 0.0


def module_union(loras: list) -> list[Module]:
    """Every module of every LoRA, first-seen order (a module in one LoRA only is kept)."""
    seen: dict[Module, None] = {}
    for lora in loras:
        seen.update(dict.fromkeys(lora.modules))
    return list(seen)


def _parts(loras: list, weights: list[float], module: Module) -> list:
    found = [(lora, w, lora.modules[module]) for lora, w in zip(loras, weights) if module in lora.modules]
    first = found[0][2]
    for lora, _, f in found[1:]:
        if f.down.shape[1:] != first.down.shape[1:] or f.up.shape[0] != first.up.shape[0]:
            raise MergeInputError(
                f"module {module[1]!r}: shapes differ between the LoRAs (down {list(first.down.shape)} "
                f"vs {list(f.down.shape)}, up {list(first.up.shape)} vs {list(f.up.shape)}); they were "
                "trained on different base models", path=lora.path)
    return found


def stacked(loras: list, weights: list[float], module: Module, precision=None):
    """The concatenated factors of one module as floats: (up_cat out×R[×1×1], down_cat R×…)."""
    np = numpy()
    found = _parts(loras, weights, module)
    downs = [as_float(f.down, f.dtype, precision) for _, _, f in found]
    ups = [as_float(f.up, f.dtype, precision) * (w * f.scale) for _, w, f in found]
    return np.concatenate(ups, axis=1), np.concatenate(downs, axis=0)


def max_rank(loras: list) -> int:
    """The largest concatenated rank over all modules: the ceiling for ``--rank``."""
    best = 0
    for module in module_union(loras):
        best = max(best, sum(l.modules[module].rank for l in loras if module in l.modules))
    return best


def check_rank(rank: int, loras: list) -> None:
    ceiling = max_rank(loras)
    if rank < 1 or rank > ceiling:
        raise MixError(f"--rank {rank} is outside 1..{ceiling} (the concatenated rank of this "
                       "blend)", hint=f"pick --rank between 1 and {ceiling}, or leave it out "
                       "for the exact merge")


def merge_exact(loras: list, weights: list[float], out_tag: str, alpha: float | None) -> Iterator[tuple]:
    """Yield ``(module, down, up)`` stored as ``out_tag``; downs are copied without conversion.

    ``alpha`` None: the file will carry no alpha, so loaders take alpha = each module's rank.
    """
    np = numpy()
    for module in module_union(loras):
        found = _parts(loras, weights, module)
        rank = sum(f.rank for _, _, f in found)
        if all(f.dtype == out_tag for _, _, f in found):
            down = np.concatenate([f.down for _, _, f in found], axis=0)
        else:
            down = from_float(np.concatenate([as_float(f.down, f.dtype) for _, _, f in found]), out_tag)
        first = found[0][2].up
        precision = np.float64 if out_tag == "F64" else np.float32
        up = np.empty((first.shape[0], rank, *first.shape[2:]), precision)
        col = 0
        for _, w, f in found:  # scale and convert in one pass, straight into the stacked array
            source = f.up if f.dtype != "BF16" else as_float(f.up, f.dtype)
            np.multiply(source, precision(w * f.scale * rank / (alpha or rank)), out=up[:, col:col + f.rank])
            col += f.rank
        yield module, down, from_float(up, out_tag)


@contextlib.contextmanager
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cholesky_r(m):
    """R of a thin QR of ``m`` (n×R float64) from the Cholesky factor of mᵀm, or ``None``.

    Three GEMM-sized steps instead of a Householder QR of a tall matrix; used only
    when mᵀm is comfortably positive definite, so the error stays at float64 level.
    """
    import torch

    if m.shape[0] < m.shape[1]:
        return None
    chol, info = torch.linalg.cholesky_ex(m.T @ m)
    if int(info) != 0:
        return None
    diag = torch.diagonal(chol)
    return chol.T if float(diag.min()) > 1e-5 * float(diag.max()) else None


def truncate(up_cat, down_cat, rank: int):
    """Optimal rank-``rank`` factors of ``up_cat @ down_cat`` (float64 numpy) and the relative error.

    The singular values are split evenly between the factors (√σ each) so neither
    overflows when saved in half precision.
    """
    import torch

    u = torch.from_numpy(up_cat.reshape(up_cat.shape[0], -1))
    d = torch.from_numpy(down_cat.reshape(down_cat.shape[0], -1))
    ru, rd = _cholesky_r(u), _cholesky_r(d.T)
    if ru is not None and rd is not None:  # Qᵤ = U·Rᵤ⁻¹: triangular solves on R×R only
        uc, s, vh = torch.linalg.svd(ru @ rd.T)
        k = min(rank, s.numel())
        # The error and the small factors are float64; the two thin products that build
        # the new factors run in float32, which is finer than the half precision they are
        # usually stored in and halves the heaviest step.
        a = torch.linalg.solve_triangular(ru, uc[:, :k], upper=True)
        b = torch.linalg.solve_triangular(rd, vh[:k].T, upper=True)
        left = (u.float() @ a.float()).double()
        right = (d.float().T @ b.float()).double().T
    else:  # rank-deficient or tiny layers: Householder QR, correct for any shape
        qu, ru = torch.linalg.qr(u)
        qd, rd = torch.linalg.qr(d.T)
        uc, s, vh = torch.linalg.svd(ru @ rd.T)
        k = min(rank, s.numel())
        left, right = qu @ uc[:, :k], vh[:k] @ qd.T
    total = float(torch.sum(s * s))
    error = math.sqrt(float(torch.sum(s[k:] * s[k:])) / total) if total > 0 else 0.0
    root = s[:k].sqrt()
    new_up, new_down = left * root, root[:, None] * right
    up_shape = (up_cat.shape[0], k, *up_cat.shape[2:])
    return new_up.numpy().reshape(up_shape), new_down.numpy().reshape(k, *down_cat.shape[1:]), error


def merge_svd(loras: list, weights: list[float], rank: int, out_tag: str, alpha: float | None,
              report: MergeReport) -> Iterator[tuple]:
    """Like :func:`merge_exact`, but each module with a larger stacked rank is cut to ``rank``."""
    np = numpy()
    with one_thread():
        for module in module_union(loras):
            up, down = stacked(loras, weights, module, np.float64)
            if down.shape[0] <= rank:
                report.errors[module] = 0.0
            else:
                up, down, report.errors[module] = truncate(up, down, rank)
            k = int(down.shape[0])
            report.ranks[module] = k
            yield module, from_float(down, out_tag), from_float(up * (k / (alpha or k)), out_tag)


def delta(factors, weight: float = 1.0):
    """ΔW of one module as a dense float32 matrix (conv: out×in×kh×kw) — for baking and checks."""
    f = factors
    up = as_float(f.up, f.dtype).reshape(f.up.shape[0], f.rank)
    down = as_float(f.down, f.dtype).reshape(f.rank, -1)
    return ((up * (weight * f.scale)) @ down).reshape(f.up.shape[0], *f.down.shape[1:])

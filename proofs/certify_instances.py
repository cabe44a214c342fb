"""Global minima with exactly rational weights, for certificates.

T = U diag(t_q^m) V^T with rational orthogonal U, V (Cayley transforms of rational skew
matrices) and rational layer values t_q: the canonical solution (27) is then rational, W_m = U D,
W_i = D, W_1 = D V^T with D = diag(t), and so are sigma_max(T) = t_1^m and the flattest value
2m sigma_max^{2(1-1/m)} = 2m t_1^{2(m-1)}. Conjugating the layers, W_i = M_i^{-1} C_i M_{i-1},
keeps the product T: rational orthogonal M_i give flattest minima that are not canonical, small
integer M_i give random minima (S104), both rational. Everything is NumPy object arrays of
Fraction, which ``proofs.linear_network`` and ``proofs.lemma3`` run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import numpy as np

from . import linear_network as ln
from . import minima
from .exact import fractions, identity, inverse, rational_orthogonal
from .linear_network import diag_rect


def integer_invertible(rng: np.random.Generator, n: int) -> np.ndarray:
    """A small integer matrix that is invertible (diagonally dominant)."""
    A = rng.integers(-2, 3, size=(n, n))
    return fractions(A + np.diag(np.abs(A).sum(axis=1) + 1))


@dataclass(frozen=True)
class RationalMinimum:
    """A global minimum w of the loss with T = U diag(t^m) V^T and Sigma_x^{1/2} = R, exactly."""

    label: str
    kind: str
    dims: tuple[int, ...]
    t: tuple[Fraction, ...]
    U: np.ndarray
    V: np.ndarray
    weights: tuple[np.ndarray, ...]
    R: np.ndarray

    @property
    def m(self) -> int:
        return len(self.dims) - 1

    @property
    def flattest(self) -> bool:
        return self.kind != "random (S104)"

    @property
    def sigma_max(self) -> Fraction:
        return self.t[0] ** self.m

    @property
    def u(self) -> np.ndarray:
        return self.U[:, 0]

    @property
    def v(self) -> np.ndarray:
        return self.V[:, 0]

    @property
    def T(self) -> np.ndarray:
        return ln.end_to_end(list(self.weights))

    @property
    def data(self) -> ln.Data:
        return ln.from_target(self.T, self.R)

    @property
    def whitened(self) -> bool:
        return bool(np.all(self.R == identity(self.dims[0])))


def canonical(label: str, dims: Sequence[int], t: Sequence[Fraction], seed: int,
              R: np.ndarray | None = None) -> RationalMinimum:
    """The canonical solution (27) of T = U diag(t^m) V^T, U and V rational orthogonal."""
    dims = tuple(dims)
    t = tuple(Fraction(x) for x in t)
    if len(t) != min(dims[0], dims[-1]) or list(t) != sorted(t, reverse=True) or t[-1] < 0:
        raise ValueError(f"t must hold min(d_x, d_y) = {min(dims[0], dims[-1])} values, non-increasing, >= 0")
    if sum(x != 0 for x in t) > min(dims):
        raise ValueError(f"rank {sum(x != 0 for x in t)} exceeds the narrowest width of {dims}")
    rng = np.random.default_rng(seed)
    U, V = rational_orthogonal(rng, dims[-1]), rational_orthogonal(rng, dims[0])
    C = [diag_rect(fractions(t), dims[i + 1], dims[i]) for i in range(len(dims) - 1)]
    C[0] = C[0] @ V.T
    C[-1] = U @ C[-1]
    return RationalMinimum(label, "canonical", dims, t, U, V, tuple(C), identity(dims[0]) if R is None else fractions(R))


def conjugated(base: RationalMinimum, label: str, kind: str, seed: int) -> RationalMinimum:
    """W_i = M_i^{-1} C_i M_{i-1} with rational orthogonal M_i (kind "rotated flattest") or
    small integer M_i (kind "random (S104)"); the product stays T."""
    rng = np.random.default_rng(seed)
    make = rational_orthogonal if kind == "rotated flattest" else integer_invertible
    M = [make(rng, d) for d in base.dims[1:-1]]
    W = minima.conjugate(list(base.weights), M, [inverse(A) for A in M])
    return RationalMinimum(label, kind, base.dims, base.t, base.U, base.V, tuple(W), base.R)


HALF = Fraction(1, 2)

CANONICAL = ("canonical 4x4x4x4 rank 3", "canonical 5x5x5 sigma_1 = sigma_2 rank 4", "canonical 3x4x2")
ROTATED = ("rotated flattest 3x3x3x3",)
RANDOM = ("random (S104) 3x3x3x3", "random (S104) 4x4x4")
SIGMA = ("random (S104) 2x3x2 Sigma_x != I",)


@lru_cache(maxsize=None)
def instance(label: str) -> RationalMinimum:
    """The named instances: N = m d^2 weights up to 50, rank-deficient T (clusters of zero
    eigenvalues), sigma_1 = sigma_2 (a repeated top eigenvalue), rectangular widths, Sigma_x != I."""
    if label == "canonical 4x4x4x4 rank 3":
        return canonical(label, (4, 4, 4, 4), (2, 1, HALF, 0), seed=1)
    if label == "canonical 5x5x5 sigma_1 = sigma_2 rank 4":
        return canonical(label, (5, 5, 5), (2, 2, 1, 1, 0), seed=2)
    if label == "canonical 3x4x2":
        return canonical(label, (3, 4, 2), (Fraction(3, 2), HALF), seed=3)
    if label == "rotated flattest 3x3x3x3":
        return conjugated(canonical("", (3, 3, 3, 3), (Fraction(3, 2), 1, HALF), seed=4), label, "rotated flattest", seed=5)
    if label == "random (S104) 3x3x3x3":
        return conjugated(canonical("", (3, 3, 3, 3), (Fraction(3, 2), 1, HALF), seed=4), label, "random (S104)", seed=6)
    if label == "random (S104) 4x4x4":
        return conjugated(canonical("", (4, 4, 4), (2, 1, 1, 0), seed=7), label, "random (S104)", seed=8)
    if label == "random (S104) 2x3x2 Sigma_x != I":
        base = canonical("", (2, 3, 2), (2, HALF), seed=9, R=[[2, 1], [1, 3]])
        return conjugated(base, label, "random (S104)", seed=10)
    raise KeyError(f"unknown rational instance {label!r}")

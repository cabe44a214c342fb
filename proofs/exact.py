"""Exact and arbitrary-precision matrices as NumPy object arrays (Fraction or mpmath.mpf entries).

One home for the small pieces that exact instances need everywhere: rational arrays, the
identity, the inverse by Gauss-Jordan elimination (exact over Fraction; partial pivoting keeps
it stable over mpf), and exactly orthogonal rational matrices (Cayley transform).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np
import sympy as sp


def fractions(A: Sequence) -> np.ndarray:
    """An object array of Fractions from nested ints / Fractions."""
    return np.vectorize(Fraction, otypes=[object])(np.asarray(A, dtype=object))


def identity(n: int) -> np.ndarray:
    return fractions(np.eye(n, dtype=int))


def inverse(M: np.ndarray) -> np.ndarray:
    """The inverse of a square object array by Gauss-Jordan elimination with partial pivoting:
    exact over Fraction, at the working precision over mpf. Raises ValueError when singular."""
    n = M.shape[-1]
    A = np.concatenate([np.array(M, dtype=object), np.eye(n, dtype=int).astype(object)], axis=1)
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(A[r, c]))
        if A[pivot, c] == 0:
            raise ValueError("singular matrix")
        A[[c, pivot]] = A[[pivot, c]]
        A[c] = A[c] / A[c, c]
        for r in range(n):
            if r != c and A[r, c] != 0:
                A[r] = A[r] - A[r, c] * A[c]
    return A[:, n:]


def rational_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """An exactly orthogonal rational matrix (Cayley transform (I - K)(I + K)^{-1} of a random
    rational skew K), as an object array of Fractions."""
    K = sp.zeros(n, n)
    for i in range(n):
        for j in range(i + 1, n):
            K[i, j] = sp.Rational(int(rng.integers(-3, 4)), int(rng.integers(1, 4)))
            K[j, i] = -K[i, j]
    Q = (sp.eye(n) - K) * (sp.eye(n) + K).inv()
    return np.array([[Fraction(int(x.p), int(x.q)) for x in row] for row in Q.tolist()], dtype=object)

"""Independent Hessians of the deep-linear-network loss: ground truth for Lemma 3.

None of these uses the closed form of Lemma 3 (Phi, S47-S49); each is a
separate route from the loss (S33) itself:

- ``sympy_hessian``: sympy differentiates the loss of symbolic weights twice,
  then substitutes exact values. Exact; tiny shapes only.
- ``hyperdual_hessian``: evaluates the loss (the same ``linear_network.loss``)
  on hyper-dual numbers a + b e1 + c e2 + d e1 e2 (e1^2 = e2^2 = 0), whose e1 e2
  part is exactly d^2 loss / dw_i dw_j. Exact over ``Fraction``, ``dps`` digits
  over ``mpmath.mpf``: no truncation error, only the field's rounding.
- ``finite_difference_hessian``: central differences of the analytic gradient
  in float64 on any Array-API namespace, batched. Independent of second
  derivatives; error O(h^2) + O(eps/h).
"""

from __future__ import annotations

from functools import total_ordering
from typing import Any, Sequence

import numpy as np
import sympy as sp

from . import linear_network as ln
from .linear_network import Array, Data


def sympy_hessian(weights: Sequence[np.ndarray], data: Data) -> sp.Matrix:
    """Exact Hessian at ``weights`` (NumPy object or float arrays of exact values)."""
    dims = ln.widths(weights)
    symbols, mats = [], []
    for k in range(1, len(dims)):
        entries = sp.symbols(f"w{k}_0:{dims[k] * dims[k - 1]}", real=True)
        symbols.extend(entries)
        mats.append(sp.Matrix(dims[k - 1], dims[k], entries).T)  # column-major = vec order
    W = mats[0]
    for M in mats[1:]:
        W = M * W
    Sx, Syx = sp.Matrix(data.Sigma_x.tolist()), sp.Matrix(data.Sigma_yx.tolist())
    loss = (W * Sx * W.T).trace() - 2 * (Syx * W.T).trace()
    values = [sp.nsimplify(v) if isinstance(v, float) else sp.sympify(v) for v in ln.flatten(weights).tolist()]
    point = dict(zip(symbols, values))
    n = len(symbols)
    H = sp.zeros(n, n)
    grads = [sp.diff(loss, s) for s in symbols]
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = sp.expand(sp.diff(grads[i], symbols[j]).subs(point))
    return H


@total_ordering
class HyperDual:
    """a + b e1 + c e2 + d e1 e2 over any field (Fraction, mpf, float)."""

    __slots__ = ("a", "b", "c", "d")

    def __init__(self, a: Any, b: Any = 0, c: Any = 0, d: Any = 0) -> None:
        self.a, self.b, self.c, self.d = a, b, c, d

    @staticmethod
    def _lift(x: Any) -> "HyperDual":
        if isinstance(x, np.ndarray) and x.ndim == 0:  # M[..., i, i] of an unbatched object array
            x = x[()]
        return x if isinstance(x, HyperDual) else HyperDual(x)

    def __add__(self, other: Any) -> "HyperDual":
        o = self._lift(other)
        return HyperDual(self.a + o.a, self.b + o.b, self.c + o.c, self.d + o.d)

    __radd__ = __add__

    def __neg__(self) -> "HyperDual":
        return HyperDual(-self.a, -self.b, -self.c, -self.d)

    def __sub__(self, other: Any) -> "HyperDual":
        return self + (-self._lift(other))

    def __rsub__(self, other: Any) -> "HyperDual":
        return self._lift(other) - self

    def __mul__(self, other: Any) -> "HyperDual":
        o = self._lift(other)
        return HyperDual(self.a * o.a, self.a * o.b + self.b * o.a, self.a * o.c + self.c * o.a,
                         self.a * o.d + self.b * o.c + self.c * o.b + self.d * o.a)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> "HyperDual":
        """Division by a scalar of the field (enough for sample means)."""
        if isinstance(other, HyperDual):
            return NotImplemented
        return HyperDual(self.a / other, self.b / other, self.c / other, self.d / other)

    def __eq__(self, other: Any) -> bool:
        return self.a == self._lift(other).a

    def __lt__(self, other: Any) -> bool:
        return self.a < self._lift(other).a

    __hash__ = None  # type: ignore[assignment]


def hyperdual_hessian(weights: Sequence[np.ndarray], data: Data) -> np.ndarray:
    """Hessian (object array) from hyper-dual evaluations of ``linear_network.loss``.

    ``weights`` and ``data`` hold Fractions (exact) or mpf (high precision) in
    object arrays; one loss evaluation per pair i <= j."""
    dims = ln.widths(weights)
    w0 = ln.flatten(weights)
    n = w0.shape[-1]
    H = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(i, n):
            w = np.array([HyperDual(v, int(k == i), int(k == j)) for k, v in enumerate(w0)], dtype=object)
            H[i, j] = H[j, i] = ln.loss(ln.unflatten(w, dims), data).d
    return H


def finite_difference_hessian(weights: Sequence[Array], data: Data, h: float = 1e-5) -> Array:
    """Central differences of the analytic gradient, batched: shape (..., N, N), symmetrised. The N
    steps w +- h e_j are taken at once, on a new axis before the weights' matrix axes (the same
    differences as one step at a time, without a Python loop over the coordinates)."""
    xp = ln.namespace(*weights)
    dims = ln.widths(weights)
    w = ln.flatten(weights)
    n = w.shape[-1]
    steps = h * xp.eye(n, dtype=w.dtype, device=ln._device(w))   # row j: h e_j
    wide = Data(*(None if a is None else a[..., None, :, :] for a in (data.Sigma_x, data.Sigma_yx, data.T,
                                                                       data.Sigma_x_half)), data.y2)
    g_plus = ln.flatten(ln.gradient(ln.unflatten(w[..., None, :] + steps, dims), wide))
    g_minus = ln.flatten(ln.gradient(ln.unflatten(w[..., None, :] - steps, dims), wide))
    H = xp.matrix_transpose((g_plus - g_minus) / (2 * h))        # column j: the difference along e_j
    return (H + xp.matrix_transpose(H)) / 2

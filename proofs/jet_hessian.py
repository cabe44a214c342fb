"""The Hessian's bilinear form from the loss itself, by truncated matrix polynomials.

For directions v, u (one matrix per layer) the end-to-end product of the perturbed
weights W_k + s V_k + t U_k, truncated at s^2 = t^2 = 0, is a *jet*
A + s A_s + t A_t + s t A_st whose parts are exact matrix products. The loss (S9)
of that jet is a polynomial in s and t, and its s t coefficient is exactly
v^T H u: no finite-difference error, no use of Phi (S47) or of Lemma 3:

    v^T H u = 2 tr(A_s Sigma_x A_t^T) + 2 tr((A Sigma_x - Sigma_yx) A_st^T).

One algorithm serves two algebras: any Array-API namespace (batched, float64 on
NumPy, CuPy or array-api-strict) through :class:`ArrayAlgebra`, and python-flint
``arb_mat`` (rigorous balls, see ``proofs.arb_lemma3``) through the same
:func:`bilinear_form`.

>>> import numpy as np
>>> from proofs import linear_network as ln
>>> W = [np.array([[2.0]]), np.array([[3.0]])]
>>> data = ln.from_target(np.array([[6.0]]), np.eye(1))
>>> float(hessian(W, data)[0, 1])        # d^2/dw1 dw2 of (w2 w1 - 6)^2 at w1 w2 = 6
12.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from . import linear_network as ln
from .linear_network import Array, Data


class Algebra(Protocol):
    def matmul(self, x: Any, y: Any) -> Any: ...

    def inner(self, x: Any, y: Any) -> Any:
        """tr(x y^T) over the last two axes."""

    def lift(self, x: Any, extra: int) -> Any:
        """x with ``extra`` unit axes before its matrix axes (to broadcast against directions)."""


@dataclass(frozen=True)
class ArrayAlgebra:
    xp: Any

    def matmul(self, x: Array, y: Array) -> Array:
        return self.xp.matmul(x, y)

    def inner(self, x: Array, y: Array) -> Array:
        return self.xp.sum(x * y, axis=(-2, -1))

    def lift(self, x: Array, extra: int) -> Array:
        return self.xp.reshape(x, (*x.shape[:-2], *(1,) * extra, *x.shape[-2:])) if extra else x


@dataclass(frozen=True)
class Jet:
    """a + s b_s + t b_t + s t b_st with s^2 = t^2 = 0 (matrix parts)."""

    a: Any
    s: Any
    t: Any
    st: Any

    def times(self, other: "Jet", alg: Algebra) -> "Jet":
        """other @ self: the jet of the next layer applied after this one."""
        mm = alg.matmul
        return Jet(mm(other.a, self.a),
                   mm(other.s, self.a) + mm(other.a, self.s),
                   mm(other.t, self.a) + mm(other.a, self.t),
                   mm(other.st, self.a) + mm(other.s, self.t) + mm(other.t, self.s) + mm(other.a, self.st))


def bilinear_form(weights: Sequence[Any], data: Data, V: Sequence[Any], U: Sequence[Any],
                  algebra: Algebra | None = None) -> Any:
    """v^T H_w u for per-layer directions V, U, from the s t coefficient of the loss.

    On arrays, ``V[k]`` and ``U[k]`` have shape ``(*batch, *extra, d_k, d_{k-1})`` where
    ``weights[k]`` has ``(*batch, d_k, d_{k-1})``: the result has shape ``(*batch, *extra)``
    (many directions per instance). Valid at any point w, not only at minima."""
    if len(V) != len(weights) or len(U) != len(weights):
        raise ln.ShapeError(f"{len(weights)} layers but directions with {len(V)} and {len(U)} layers")
    alg = algebra if algebra is not None else ArrayAlgebra(ln.namespace(*weights, *V, *U))
    extra = _extra_axes(weights[0], V[0])
    jet = None
    for W, Vk, Uk in zip(weights, V, U):
        layer = Jet(alg.lift(W, extra), Vk, Uk, 0 * Vk)
        jet = layer if jet is None else jet.times(layer, alg)
    Sx, Syx = alg.lift(data.Sigma_x, extra), alg.lift(data.Sigma_yx, extra)
    residual = alg.matmul(jet.a, Sx) - Syx
    return 2 * alg.inner(alg.matmul(jet.s, Sx), jet.t) + 2 * alg.inner(residual, jet.st)


def _extra_axes(W: Any, V: Any) -> int:
    ndim = getattr(W, "ndim", None)
    return V.ndim - ndim if ndim is not None else 0


def quadratic_form(weights: Sequence[Any], data: Data, V: Sequence[Any], algebra: Algebra | None = None) -> Any:
    """v^T H_w v (= 2 x the t^2 coefficient of the loss along v)."""
    return bilinear_form(weights, data, V, V, algebra)


def basis_directions(weights: Sequence[Array]) -> list[Array]:
    """The N unit directions e_1..e_N of w = [vec(W_1); ...] as per-layer arrays of shape
    (N, d_k, d_{k-1}), in the order of ``linear_network.flatten``."""
    xp = ln.namespace(*weights)
    dims = ln.widths(weights)
    n = sum(dims[k] * dims[k - 1] for k in range(1, len(dims)))
    eye = xp.eye(n, dtype=weights[0].dtype, device=ln._device(weights[0]))
    return ln.unflatten(eye, dims)


def hessian(weights: Sequence[Array], data: Data) -> Array:
    """The full Hessian (..., N, N) from the bilinear form on every pair of unit directions."""
    xp = ln.namespace(*weights)
    batch = weights[0].shape[:-2]
    E = basis_directions(weights)
    n = E[0].shape[0]

    def spread(D: Array, axis: int) -> Array:  # (N, r, c) -> (*batch, N, 1, r, c) or (*batch, 1, N, r, c)
        shape = (n, 1) if axis == 0 else (1, n)
        D = xp.reshape(D, (*(1,) * len(batch), *shape, *D.shape[-2:]))
        return xp.broadcast_to(D, (*batch, *shape, *D.shape[-2:]))

    return bilinear_form(weights, data, [spread(D, 0) for D in E], [spread(D, 1) for D in E])

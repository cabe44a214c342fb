"""Deep linear networks x -> W_m ... W_1 x with any widths d_0 = d_x, ..., d_m = d_y.

Written once against the Array API (through ``array_api_compat``), so NumPy,
CuPy and ``array_api_strict`` run the same code; every function accepts a
leading batch shape on all arrays (``W_k`` of shape ``(..., d_k, d_{k-1})``).
NumPy arrays of ``dtype=object`` holding ``fractions.Fraction`` or ``mpmath.mpf``
go through the same code for the exact and high-precision paths.

Conventions: ``vec`` stacks columns (column-major), as in (P1); the parameter
vector is ``w = [vec(W_1); ...; vec(W_m)]``; ``Sigma_x = E[x x^T]``,
``Sigma_yx = E[y x^T]``, ``T = Sigma_yx Sigma_x^{-1}``.

>>> import numpy as np
>>> W = [np.ones((3, 2)), np.ones((1, 3))]
>>> widths(W)
(2, 3, 1)
>>> end_to_end(W)
array([[3., 3.]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import array_api_compat
import array_api_compat.numpy as _numpy_xp
import numpy as np
from array_api_compat import device as _device

Array = Any


class ShapeError(ValueError):
    """Weights or data whose shapes do not chain."""


def namespace(*arrays: Array) -> Any:
    # plain NumPy arrays (float or object) skip array_namespace, whose checks cost more than the small
    # matrix products of an optimiser's inner loop; the namespace returned is the same
    if all(type(a) is np.ndarray for a in arrays):
        return _numpy_xp
    return array_api_compat.array_namespace(*arrays)


def widths(weights: Sequence[Array]) -> tuple[int, ...]:
    """(d_0, ..., d_m) of a chain of weight matrices; raises ShapeError if they do not chain."""
    if not weights:
        raise ShapeError("a network needs at least one layer")
    dims = [weights[0].shape[-1]]
    for k, W in enumerate(weights, start=1):
        if W.ndim < 2:
            raise ShapeError(f"W{k} must be a matrix, got shape {W.shape}")
        if W.shape[-1] != dims[-1]:
            raise ShapeError(f"W{k} has {W.shape[-1]} columns but W{k - 1} has {dims[-1]} rows")
        dims.append(W.shape[-2])
    return tuple(dims)


def eye(n: int, like: Array) -> Array:
    xp = namespace(like)
    return xp.eye(n, dtype=like.dtype, device=_device(like))


def diag_rect(values: Array, rows: int, cols: int) -> Array:
    """Batched rows x cols matrices with ``values`` (..., d) on the diagonal, truncated or zero-padded."""
    xp = namespace(values)
    d = values.shape[-1]
    if d >= cols:
        v = values[..., :cols]
    else:
        v = xp.concat([values, xp.zeros((*values.shape[:-1], cols - d), dtype=values.dtype)], axis=-1)
    return xp.eye(rows, cols, dtype=values.dtype) * v[..., None, :]


def vec(M: Array) -> Array:
    """Column-major vectorisation over the last two axes."""
    xp = namespace(M)
    return xp.reshape(xp.matrix_transpose(M), (*M.shape[:-2], M.shape[-1] * M.shape[-2]))


def unvec(v: Array, rows: int, cols: int) -> Array:
    xp = namespace(v)
    return xp.matrix_transpose(xp.reshape(v, (*v.shape[:-1], cols, rows)))


def kron(A: Array, B: Array) -> Array:
    """Kronecker product over the last two axes (batched; the Array API has none)."""
    xp = namespace(A, B)
    a0, a1 = A.shape[-2:]
    b0, b1 = B.shape[-2:]
    outer = A[..., :, None, :, None] * B[..., None, :, None, :]
    return xp.reshape(outer, (*outer.shape[:-4], a0 * b0, a1 * b1))


def product(weights: Sequence[Array], first: int, last: int) -> Array:
    """W_last ... W_first (1-based, inclusive); the identity of size d_{first-1}
    when the range is empty, as in the supplement's convention (S75)."""
    dims = widths(weights)
    if last < first:
        return eye(dims[first - 1], weights[0])
    xp = namespace(*weights)
    out = weights[first - 1]
    for W in weights[first:last]:
        out = xp.matmul(W, out)
    return out


def end_to_end(weights: Sequence[Array]) -> Array:
    return product(weights, 1, len(weights))


def below(weights: Sequence[Array]) -> list[Array]:
    """[B_1, ..., B_m] with B_k = W_{k-1} ... W_1 (B_1 = I), each in one pass."""
    xp = namespace(*weights)
    out = [eye(weights[0].shape[-1], weights[0])]
    for W in weights[:-1]:
        out.append(xp.matmul(W, out[-1]))
    return out


def above(weights: Sequence[Array]) -> list[Array]:
    """[A_1, ..., A_m] with A_k = W_m ... W_{k+1} (A_m = I)."""
    xp = namespace(*weights)
    out = [eye(weights[-1].shape[-2], weights[-1])]
    for W in reversed(weights[1:]):
        out.append(xp.matmul(out[-1], W))
    return out[::-1]


@dataclass(frozen=True)
class Data:
    """Second-order statistics of the data: all the quadratic loss depends on.

    ``Sigma_x_half`` is the symmetric square root of ``Sigma_x`` and ``y2`` is
    E||y||^2. Build with :func:`from_target` or :func:`from_samples`.
    """

    Sigma_x: Array
    Sigma_yx: Array
    T: Array
    Sigma_x_half: Array
    y2: Array

    @property
    def d_x(self) -> int:
        return self.Sigma_x.shape[-1]

    @property
    def d_y(self) -> int:
        return self.Sigma_yx.shape[-2]


def spd_sqrt(S: Array) -> Array:
    """Symmetric square root of a symmetric positive definite float matrix (batched)."""
    xp = namespace(S)
    vals, vecs = xp.linalg.eigh(S)
    if bool(xp.any(vals <= 0)):
        raise ValueError("Sigma_x must be symmetric positive definite")
    return xp.matmul(vecs * xp.sqrt(vals)[..., None, :], xp.matrix_transpose(vecs))


def _trace(M: Array) -> Array:
    """Trace over the last two axes; works on object arrays too."""
    xp = namespace(M)
    n = M.shape[-1]
    total = M[..., 0, 0]
    for i in range(1, n):
        total = total + M[..., i, i]
    return total if n else xp.zeros(M.shape[:-2], dtype=M.dtype)


def from_target(T: Array, Sigma_x_half: Array, noise: Array | float = 0) -> Data:
    """Data with y = T x (+ noise of energy ``noise``): Sigma_x = R^2 for the given
    symmetric square root R, Sigma_yx = T Sigma_x. Exact for rational inputs."""
    xp = namespace(T, Sigma_x_half)
    Sx = xp.matmul(Sigma_x_half, Sigma_x_half)
    Syx = xp.matmul(T, Sx)
    y2 = _trace(xp.matmul(xp.matmul(T, Sx), xp.matrix_transpose(T))) + noise
    return Data(Sx, Syx, T, Sigma_x_half, y2)


def from_samples(X: Array, Y: Array) -> Data:
    """Data from samples in the columns of X (d_x, n) and Y (d_y, n) (batched)."""
    xp = namespace(X, Y)
    n = X.shape[-1]
    if Y.shape[-1] != n:
        raise ShapeError(f"X has {n} samples but Y has {Y.shape[-1]}")
    Sx = xp.matmul(X, xp.matrix_transpose(X)) / n
    Syx = xp.matmul(Y, xp.matrix_transpose(X)) / n
    T = xp.matrix_transpose(xp.linalg.solve(Sx, xp.matrix_transpose(Syx)))
    return Data(Sx, Syx, T, spd_sqrt(Sx), xp.sum(Y * Y, axis=(-2, -1)) / n)


def loss(weights: Sequence[Array], data: Data) -> Array:
    """E||y - W_m...W_1 x||^2 = tr(W Sigma_x W^T) - 2 tr(Sigma_yx W^T) + E||y||^2  (S9/S33)."""
    xp = namespace(*weights)
    W = end_to_end(weights)
    quad = _trace(xp.matmul(xp.matmul(W, data.Sigma_x), xp.matrix_transpose(W)))
    cross = _trace(xp.matmul(data.Sigma_yx, xp.matrix_transpose(W)))
    return quad - 2 * cross + data.y2


def gradient(weights: Sequence[Array], data: Data) -> list[Array]:
    """dl/dW_k = 2 A_k^T (W Sigma_x - Sigma_yx) B_k^T, the analytic gradient (matrix form)."""
    xp = namespace(*weights)
    residual = xp.matmul(end_to_end(weights), data.Sigma_x) - data.Sigma_yx
    return [
        2 * xp.matmul(xp.matmul(xp.matrix_transpose(A), residual), xp.matrix_transpose(B))
        for A, B in zip(above(weights), below(weights))
    ]


def flatten(weights: Sequence[Array]) -> Array:
    """w = [vec(W_1); ...; vec(W_m)]."""
    xp = namespace(*weights)
    return xp.concat([vec(W) for W in weights], axis=-1)


def unflatten(w: Array, dims: Sequence[int]) -> list[Array]:
    out, start = [], 0
    for k in range(1, len(dims)):
        size = dims[k] * dims[k - 1]
        out.append(unvec(w[..., start:start + size], dims[k], dims[k - 1]))
        start += size
    return out

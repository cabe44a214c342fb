"""Generators of global minima: weights that multiply to T by construction.

Every generator starts from the canonical factors C_1, ..., C_m of (27)/(S57)
(C_m = U S_m^{1/m}, C_i = S_i^{1/m}, C_1 = S_1^{1/m} V^T, with S_i^{1/m} the
d_i x d_{i-1} diagonal of sigma_q(T)^{1/m}) and inserts factors that cancel
between consecutive layers, W_i = M_i^{-1} C_i M_{i-1} with M_0 = I, M_m = I, so
the end-to-end product stays C_m ... C_1 = T:

- ``canonical``: M_i = I.
- ``random_minimum``: M_i Gaussian (S104), for any widths.
- ``rotated_flattest``: M_i orthogonal; singular values stay those of the
  canonical layers, so these are flattest minima (Theorem 4) but not canonical.
- ``rebalanced_flattest``: the lower singular values of the layers are moved
  between layers (their product per index kept) while every layer's top
  singular value stays sigma_max(T)^{1/m}; then rotated.

All take a NumPy generator and return float64 NumPy arrays batched over T's
leading axes; convert with ``namespace.asarray`` for other backends.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .linear_network import diag_rect

RANK_RTOL = 1e-10


class WidthError(ValueError):
    """A hidden width is smaller than rank(T): no network of these widths represents T."""


def check_widths(T: np.ndarray, dims: Sequence[int]) -> int:
    dims = tuple(dims)
    if len(dims) < 2 or dims[0] != T.shape[-1] or dims[-1] != T.shape[-2]:
        raise WidthError(f"widths {dims} do not match T of shape {T.shape[-2:]} (need d_0 = d_x, d_m = d_y)")
    s = np.linalg.svd(T, compute_uv=False)
    rank = int(np.max(np.sum(s > RANK_RTOL * np.maximum(s[..., :1], 1e-300), axis=-1)))
    narrow = [(k, d) for k, d in enumerate(dims[1:-1], start=1) if d < rank]
    if narrow:
        k, d = narrow[0]
        raise WidthError(f"width d_{k} = {d} is smaller than rank(T) = {rank}: no global minimum has these widths")
    return rank


def canonical_factors(T: np.ndarray, dims: Sequence[int], layer_values: np.ndarray | None = None) -> list[np.ndarray]:
    """C_1..C_m with diagonal entries ``layer_values[..., i, q]`` (default sigma_q^{1/m})."""
    m = len(dims) - 1
    U, s, Vt = np.linalg.svd(T)
    if layer_values is None:
        layer_values = np.repeat((s ** (1.0 / m))[..., None, :], m, axis=-2)
    C = [diag_rect(layer_values[..., i, :], dims[i + 1], dims[i]) for i in range(m)]
    C[0] = C[0] @ Vt
    C[-1] = U @ C[-1]
    return C


def conjugate(C: Sequence[np.ndarray], M: Sequence[np.ndarray], M_inv: Sequence[np.ndarray]) -> list[np.ndarray]:
    """W_i = M_i^{-1} C_i M_{i-1} for i = 1..m, with M_0 = M_m = I (M, M_inv index hidden layers 1..m-1)."""
    m = len(C)
    W = []
    for i in range(m):
        Wi = C[i]
        if i > 0:
            Wi = Wi @ M[i - 1]
        if i < m - 1:
            Wi = M_inv[i] @ Wi
        W.append(Wi)
    return W


def canonical(T: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    check_widths(T, dims)
    return canonical_factors(T, dims)


def random_minimum(T: np.ndarray, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """(S104) generalised to rectangular widths: Gaussian M_i of size d_i x d_i."""
    check_widths(T, dims)
    batch = T.shape[:-2]
    M = [rng.standard_normal((*batch, d, d)) for d in dims[1:-1]]
    return conjugate(canonical_factors(T, dims), M, [np.linalg.inv(A) for A in M])


def random_orthogonal(rng: np.random.Generator, batch: tuple[int, ...], n: int) -> np.ndarray:
    """Haar-distributed orthogonal matrices (QR of a Gaussian with the sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    signs = np.sign(np.diagonal(R, axis1=-2, axis2=-1))
    return Q * np.where(signs == 0, 1.0, signs)[..., None, :]


def rotated_flattest(T: np.ndarray, dims: Sequence[int], rng: np.random.Generator,
                     layer_values: np.ndarray | None = None) -> list[np.ndarray]:
    check_widths(T, dims)
    batch = T.shape[:-2]
    O = [random_orthogonal(rng, batch, d) for d in dims[1:-1]]
    return conjugate(canonical_factors(T, dims, layer_values), O, [np.swapaxes(Q, -1, -2) for Q in O])


def rebalanced_values(s: np.ndarray, m: int, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    """Per-layer diagonal values c[..., i, q] with prod_i c[i, q] = s_q and every
    c[i, q] <= s_1^{1/m}, so each layer's top singular value is s_1^{1/m}.
    Zero singular values get nonzero entries in all layers but one."""
    top = s[..., :1] ** (1.0 / m)
    base = np.repeat((s ** (1.0 / m))[..., None, :], m, axis=-2)
    z = rng.standard_normal(base.shape) * spread
    z -= z.mean(axis=-2, keepdims=True)  # keeps prod_i c[i, q] = s_q
    zero_s = s <= RANK_RTOL * s[..., :1]
    with np.errstate(divide="ignore"):  # log headroom under the top; zero singular values are refilled below
        room = np.where(zero_s, np.inf, np.log(top / np.where(zero_s, 1.0, s) ** (1.0 / m)))[..., None, :]
    room = np.where(np.broadcast_to(s[..., None, :], base.shape) >= s[..., None, :1], 0.0, room)
    # shrink the perturbation so that c = base * exp(t z) never exceeds the top value
    ratio = np.where(z > 0, room / np.where(z > 0, z, 1.0), np.inf)
    t = np.minimum(1.0, 0.999 * np.min(ratio, axis=(-2, -1), keepdims=True))
    values = base * np.exp(t * z)
    zero = np.broadcast_to(zero_s[..., None, :], base.shape)
    keep_zero = rng.integers(0, m, size=s.shape)[..., None, :] == np.arange(m)[:, None]
    filler = top[..., None, :] * rng.uniform(0.1, 0.999, size=base.shape)
    values = np.where(zero, np.where(keep_zero, 0.0, filler), values)
    values[..., :, 0] = top[..., 0, None]  # the top singular value is exactly shared
    return values


def rebalanced_flattest(T: np.ndarray, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    check_widths(T, dims)
    s = np.linalg.svd(T, compute_uv=False)
    return rotated_flattest(T, dims, rng, rebalanced_values(s, len(dims) - 1, rng))


GENERATORS = {
    "canonical": lambda T, dims, rng: canonical(T, dims),
    "random (S104)": random_minimum,
    "rotated flattest": rotated_flattest,
    "rebalanced flattest": rebalanced_flattest,
}

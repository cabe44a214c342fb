"""Lemma 3 and Theorem 2 verified on whole batches of instances at once (any Array-API namespace).

Each function takes batched weights (``W_k`` of shape ``(*batch, d_k, d_{k-1})``) and returns
per-instance residuals of shape ``batch``; unbatched arrays give a scalar, so a Python loop over
instances runs exactly the same verification.

- :func:`lemma3_residuals`: v^T H v of the loss itself (``proofs.jet_hessian``, independent of
  Phi) against 2 ||Phi^T v||^2 from Lemma 3's blocks Phi_k (S47, S49), for given directions v;
  relative to 2 ||Phi||_F^2 ||v||^2, a bound on |v^T H v|.
- :func:`flattest_premise`: lambda_max(H) = 2m sigma^{2(1-1/m)} (S65), Theorem 2's premise;
- :func:`theorem2_residuals`: at a flattest minimum with Sigma_x = I, the conclusions of Theorem 2 along the top
  singular pair (sigma, u, v) of T: gains ||W_k...W_1 v|| = sigma^{k/m} and
  ||(W_m...W_{k+1})^T u|| = sigma^{(m-k)/m} (S84), v a right singular vector of W_k...W_1 (S81),
  and the two directions coupled (S73).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import jet_hessian, lemma3
from . import linear_network as ln
from .linear_network import Array, Data


def random_directions(rng: np.random.Generator, dims: Sequence[int], batch: tuple[int, ...], count: int) -> list[np.ndarray]:
    """``count`` Gaussian directions per instance, per layer of shape (*batch, count, d_k, d_{k-1})."""
    return [rng.standard_normal((*batch, count, dims[k], dims[k - 1])) for k in range(1, len(dims))]


def lemma3_residuals(weights: Sequence[Array], data: Data, directions: Sequence[Array],
                     phi_blocks: Callable[[Sequence[Array], Data], list[Array]] = lemma3.phi_blocks) -> Array:
    """max over directions of |v^T H v - 2 ||Phi^T v||^2| / (2 ||Phi||_F^2 ||v||^2), per instance.
    ``phi_blocks`` is the formula under test, [Phi_1, ..., Phi_m] (S47); Phi^T v is summed block by
    block (Phi^T v = sum_k Phi_k^T v_k). A mutant of Lemma 3 must give a large residual."""
    xp = ln.namespace(*weights)
    reference = jet_hessian.quadratic_form(weights, data, directions)
    blocks = phi_blocks(weights, data)
    v = [ln.vec(D) for D in directions]  # (*batch, K, d_k d_{k-1})
    phi_t_v = sum(xp.matmul(vk, Pk) for vk, Pk in zip(v, blocks))
    claimed = 2 * xp.sum(phi_t_v ** 2, axis=-1)
    phi_norm2 = sum(xp.sum(Pk * Pk, axis=(-2, -1)) for Pk in blocks)
    v_norm2 = sum(xp.sum(vk * vk, axis=-1) for vk in v)
    return xp.max(xp.abs(reference - claimed) / (2 * phi_norm2[..., None] * v_norm2), axis=-1)


def _norm(x: Array) -> Array:
    return ln.namespace(x).linalg.vector_norm(x, axis=-1)


def _apply(M: Array, x: Array) -> Array:
    return ln.namespace(M, x).matmul(M, x[..., None])[..., 0]


def flattest_premise(weights: Sequence[Array]) -> Array:
    """|lambda_max(H) - 2m sigma_max(T)^{2(1-1/m)}| / the latter (S65), per instance (Sigma_x = I):
    zero exactly at flattest minima, the premise of Theorem 2."""
    xp = ln.namespace(*weights)
    T = ln.end_to_end(weights)
    flattest = lemma3.flattest_value(T, len(weights))
    data = ln.from_target(T, ln.eye(T.shape[-1], T))
    return xp.abs(lemma3.lambda_max(weights, data) - flattest) / flattest


def theorem2_residuals(weights: Sequence[Array]) -> dict[str, Array]:
    """Per-instance relative defects of Theorem 2's conclusions at a flattest minimum (Sigma_x = I):
    ``gains``, ``singular_vector`` and ``coupling``, each the worst over k = 0..m."""
    xp = ln.namespace(*weights)
    m = len(weights)
    T = ln.end_to_end(weights)
    U, S, Vh = xp.linalg.svd(T)
    sigma, u, v = S[..., 0], U[..., :, 0], Vh[..., 0, :]
    prefixes = [*ln.below(weights), T]  # P_0 = I, ..., P_m = T
    suffixes = [T, *ln.above(weights)]  # S_0 = T, ..., S_m = I
    gains, singular, coupling = [], [], []
    for k, (P, Sk) in enumerate(zip(prefixes, suffixes)):
        p, q = _apply(P, v), _apply(xp.matrix_transpose(Sk), u)
        p_norm, q_norm = _norm(p), _norm(q)
        gains.append(xp.abs(p_norm / sigma ** (k / m) - 1))
        gains.append(xp.abs(q_norm / sigma ** ((m - k) / m) - 1))
        gram_v = _apply(xp.matrix_transpose(P), p)
        singular.append(_norm(gram_v - (p_norm ** 2)[..., None] * v) / p_norm ** 2)
        coupling.append(_norm(p / p_norm[..., None] - q / q_norm[..., None]))
    return {"gains": _largest(gains), "singular_vector": _largest(singular), "coupling": _largest(coupling)}


def _largest(values: Sequence[Array]) -> Array:
    xp = ln.namespace(*values)
    return xp.max(xp.stack(list(values), axis=-1), axis=-1)


def worst(residuals: dict[str, Array]) -> Array:
    """The largest of several per-instance residuals."""
    return _largest(list(residuals.values()))

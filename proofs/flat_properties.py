"""Measurements of the properties that Theorems 2-4 attribute to flattest minima (Sections VI-VIII).

Every function takes the weights ``W = [W_1, ..., W_m]`` of a deep linear network (``W_k`` of shape
``(..., d_k, d_{k-1})``, any leading batch shape) and, where needed, the target ``T`` or the top
singular pair ``(sigma, u, v)`` of ``T`` (``T v = sigma u``, ``T^T u = sigma v``). Float64 arrays are
handled batched; the arithmetic below the top singular pair (products, gains, norms, sigma_max) runs on
any Array-API namespace (NumPy, CuPy, array-api-strict), the SVD-based measurements on NumPy. NumPy
object arrays of ``mpmath.mpf`` go through the same functions for the high-precision path (singular
values then come from mpmath, one matrix at a time).

Vocabulary (1-based layers, as in the supplement):

- *prefix* ``P_k = W_k ... W_1`` (``P_0 = I``) and *suffix* ``S_k = W_m ... W_{k+1}`` (``S_m = I``);
- *gains* along the top pair: ``||P_k v||`` and ``||S_k^T u||``; at a flattest minimum they are
  ``sigma^{k/m}`` and ``sigma^{(m-k)/m}`` (Theorem 2, S84);
- *alignment*: ``S_k^T u / ||S_k^T u|| = P_k v / ||P_k v||`` (Lemma S2, S73);
- *balance*: ``sigma_max(W_k) / sigma^{1/m}`` (Theorem 4 assumes it is 1 for every k);
- *intermediate gains*: ``sigma_max(P_{k-1})`` and ``sigma_max(S_k)`` (Theorem 2, S91);
- *path singular pair* of ``W_k``: ``r_k = P_{k-1} v`` and ``q_k = S_k^T u`` (Theorem 3, S96-S97);
- *coupling angle* between the top left singular vector of ``W_k`` and the top right singular vector
  of ``W_{k+1}`` (meaningful only where both top singular values are simple).

>>> import numpy as np
>>> W = [np.diag([2.0, 1.0]), np.diag([2.0, 0.5])]          # a flattest minimum of T = diag(4, 0.5)
>>> sigma, u, v = top_singular_triplet(W[1] @ W[0])
>>> float(sigma), prefix_gains(W, v).round(12).tolist()
(4.0, [1.0, 2.0, 4.0])
>>> bool(gain_defects(W, sigma, u, v).max() < 1e-15)
True
"""

from __future__ import annotations

from typing import Any, Sequence

import mpmath
import numpy as np

from . import lemma3
from . import linear_network as ln

Array = Any


# --- arithmetic that works on float64 and on object arrays of mpf ---------------------------------

def is_exact(x: Array) -> bool:
    """True for NumPy object arrays (mpf or Fraction entries) and mpf scalars: the high-precision path."""
    return (isinstance(x, np.ndarray) and x.dtype == object) or isinstance(x, mpmath.mpf)


def xp_of(*arrays: Array) -> Any:
    """NumPy for the high-precision path (object arrays), else the arrays' Array-API namespace."""
    return np if any(is_exact(a) for a in arrays) else ln.namespace(*arrays)


def transpose(M: Array) -> Array:
    """M^T over the last two axes."""
    return xp_of(M).matrix_transpose(M) if not is_exact(M) else np.swapaxes(M, -1, -2)


def sqrt(x: Array) -> Array:
    if is_exact(x):
        return np.vectorize(mpmath.sqrt, otypes=[object])(x)
    return xp_of(x).sqrt(x) if hasattr(x, "shape") else np.sqrt(x)


def power(x: Array, e: Any) -> Array:
    """x**e for x >= 0 on either path (mpf powers keep the working precision)."""
    if is_exact(x):
        return np.vectorize(lambda a: mpmath.mpf(a) ** e, otypes=[object])(x)
    return (x if hasattr(x, "shape") else np.asarray(x, dtype=float)) ** float(e)


def vnorm(x: Array) -> Array:
    """Euclidean norm over the last axis."""
    return sqrt(xp_of(x).sum(x * x, axis=-1))


def matvec(M: Array, x: Array) -> Array:
    return (M @ x[..., None])[..., 0]


def rmatvec(M: Array, x: Array) -> Array:
    """M^T x."""
    return matvec(transpose(M), x)


def each_matrix(M: Array, fn) -> np.ndarray:
    """Apply fn to every matrix of an object array (..., r, c); returns an object array (...,)."""
    flat = M.reshape(-1, *M.shape[-2:])
    out = np.empty(flat.shape[0], dtype=object)
    for i, m in enumerate(flat):
        out[i] = fn(mpmath.matrix(m.tolist()))
    return out.reshape(M.shape[:-2])


def smax(M: Array) -> Array:
    """sigma_max over the last two axes (0 for an empty matrix)."""
    xp = xp_of(M)
    if 0 in M.shape[-2:]:
        return xp.zeros(M.shape[:-2], dtype=M.dtype)
    if is_exact(M):
        def top(A):
            G = A.T * A if A.cols <= A.rows else A * A.T
            return mpmath.sqrt(max(mpmath.mpf(0), max(mpmath.eigsy(G, eigvals_only=True))))
        return each_matrix(M, top)
    return xp.linalg.matrix_norm(M, ord=2)


def product(W: Sequence[Array], first: int, last: int) -> Array:
    """W_last ... W_first (1-based, inclusive) like ``linear_network.product``, but the identity of
    an empty range carries the batch shape of the weights (so results stack per instance)."""
    if last >= first:
        return ln.product(W, first, last)
    d = ln.widths(W)[first - 1]
    if is_exact(W[0]):
        eye = np.eye(d, dtype=W[0].dtype) * mpmath.mpf(1)
        return np.broadcast_to(eye, (*W[0].shape[:-2], d, d)).copy()
    xp = xp_of(W[0])
    return xp.broadcast_to(ln.eye(d, W[0]), (*W[0].shape[:-2], d, d))


# --- the top singular pair of T ----------------------------------------------------------------------

def _fix_sign(v: Array) -> Array:
    """Sign convention: the entry of largest magnitude is positive (makes the pair reproducible)."""
    idx = np.argmax(np.abs(np.asarray(v, dtype=float)), axis=-1)
    s = np.take_along_axis(np.asarray(v, dtype=float), idx[..., None], axis=-1)
    return v * np.where(s < 0, -1, 1)


def top_singular_triplet(T: Array) -> tuple[Array, Array, Array]:
    """(sigma_max, u, v) with T v = sigma u and T^T u = sigma v: a *consistent* pair, v sign-fixed.

    For T = 0 any unit vectors are top singular vectors; e_1 and e_1 are returned."""
    if is_exact(T):
        flat = T.reshape(-1, *T.shape[-2:])
        V = []
        for t in flat:
            _, S, Vt = mpmath.svd_r(mpmath.matrix(t.tolist()))
            order = sorted(range(len(S)), key=lambda i: -S[i])
            V.append([Vt[order[0], j] for j in range(Vt.cols)])
        v = _fix_sign(np.array(V, dtype=object).reshape(*T.shape[:-2], T.shape[-1]))
    else:
        v = _fix_sign(np.linalg.svd(T)[2][..., 0, :])
    Tv = matvec(T, v)
    sigma = vnorm(Tv)
    zero = np.asarray(sigma, dtype=float) == 0
    safe = np.where(zero, 1, sigma)
    u = np.where(zero[..., None], np.eye(T.shape[-2], dtype=T.dtype)[0], Tv / safe[..., None])
    return sigma, u, v


def top_subspace(T: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """sigma_max, bases U_top (d_y, r) and V_top (d_x, r) of the top singular subspaces (paired:
    T V_top = sigma U_top) and their dimension r, for one float matrix T."""
    U, s, Vt = np.linalg.svd(T)
    r = int(np.sum(s >= s[0] * (1 - rtol))) if s[0] > 0 else min(T.shape)
    return s[0], U[:, :r], Vt[:r].T, r


def random_top_pair(T: np.ndarray, rng: np.random.Generator,
                    rtol: float = 1e-9) -> tuple[float, np.ndarray, np.ndarray]:
    """A random consistent top pair (u, v) = (U_top a, V_top a), a uniform on the unit sphere of the
    top singular subspace: with a repeated sigma_max every such pair is a valid choice."""
    sigma, U_top, V_top, r = top_subspace(T, rtol)
    a = rng.standard_normal(r)
    a /= np.linalg.norm(a)
    v = V_top @ a
    return sigma, T @ v / sigma if sigma > 0 else U_top @ a, v


# --- prefixes, suffixes and gains ---------------------------------------------------------------------

def prefix_vectors(W: Sequence[Array], v: Array) -> list[Array]:
    """[P_0 v, P_1 v, ..., P_m v] with P_k = W_k ... W_1 (P_0 v = v)."""
    out = [v]
    for Wk in W:
        out.append(matvec(Wk, out[-1]))
    return out


def suffix_vectors(W: Sequence[Array], u: Array) -> list[Array]:
    """[S_0^T u, ..., S_m^T u] with S_k = W_m ... W_{k+1} (S_m^T u = u)."""
    out = [u]
    for Wk in reversed(W):
        out.append(rmatvec(Wk, out[-1]))
    return out[::-1]


def prefix_gains(W: Sequence[Array], v: Array) -> Array:
    """||P_k v|| for k = 0..m, stacked on the last axis."""
    return np.stack([vnorm(x) for x in prefix_vectors(W, v)], axis=-1)


def suffix_gains(W: Sequence[Array], u: Array) -> Array:
    """||S_k^T u|| for k = 0..m, stacked on the last axis."""
    return np.stack([vnorm(x) for x in suffix_vectors(W, u)], axis=-1)


def fraction(p: int, q: int, like: Array) -> Any:
    """p/q as an mpf on the high-precision path, a float otherwise."""
    return mpmath.mpf(p) / q if is_exact(like) else p / q


def predicted_gains(sigma: Array, m: int) -> tuple[Array, Array]:
    """Theorem 2's values sigma^{k/m} and sigma^{(m-k)/m}, k = 0..m."""
    pre = np.stack([power(sigma, fraction(k, m, sigma)) for k in range(m + 1)], axis=-1)
    return pre, pre[..., ::-1]


def gain_defects(W: Sequence[Array], sigma: Array, u: Array, v: Array) -> Array:
    """max over k of the relative deviations of both gains from Theorem 2's values (..., )."""
    pre, suf = predicted_gains(sigma, len(W))
    scale = np.maximum(np.asarray(pre, dtype=float), np.asarray(suf, dtype=float)).max(axis=-1)
    d = np.maximum(np.abs(np.asarray(prefix_gains(W, v) - pre, dtype=float)).max(axis=-1),
                   np.abs(np.asarray(suffix_gains(W, u) - suf, dtype=float)).max(axis=-1))
    return d / np.maximum(scale, np.finfo(float).tiny)


def unit(x: Array) -> Array:
    return x / vnorm(x)[..., None]


def alignment_defects(W: Sequence[Array], u: Array, v: Array) -> Array:
    """||S_k^T u / ||S_k^T u|| - P_k v / ||P_k v|| || for k = 0..m (..., m+1): Lemma S2 says 0.
    Signed on purpose: an inconsistent pair (u -> -u) gives 2, not 0."""
    return np.stack([np.asarray(vnorm(unit(s) - unit(p)), dtype=float)
                     for s, p in zip(suffix_vectors(W, u), prefix_vectors(W, v))], axis=-1)


# --- singular values of layers and partial products ----------------------------------------------

def layer_top_singular_values(W: Sequence[Array]) -> Array:
    return np.stack([smax(Wk) for Wk in W], axis=-1)


def balance_defects(W: Sequence[Array], sigma: Array) -> Array:
    """sigma_max(W_k) / sigma^{1/m} - 1 for each layer (..., m)."""
    top = np.asarray(power(sigma, 1 / len(W)), dtype=float)
    return np.asarray(layer_top_singular_values(W), dtype=float) / top[..., None] - 1


def intermediate_gains(W: Sequence[Array]) -> tuple[Array, Array]:
    """sigma_max(P_{k-1}) and sigma_max(S_k) for k = 1..m (..., m) each."""
    m = len(W)
    pre = np.stack([smax(product(W, 1, k - 1)) for k in range(1, m + 1)], axis=-1)
    suf = np.stack([smax(product(W, k + 1, m)) for k in range(1, m + 1)], axis=-1)
    return pre, suf


def intermediate_gain_ratios(W: Sequence[Array], sigma: Array) -> tuple[np.ndarray, np.ndarray]:
    """sigma_max(P_{k-1}) / sigma^{(k-1)/m} and sigma_max(S_k) / sigma^{(m-k)/m}, k = 1..m.
    Theorem 2 (S91) bounds both by sqrt(m); Theorem 2 with B = u y^T in (S85) bounds them by sqrt(m-1)
    for k >= 2 (resp. k <= m-1), see ``sqrt_m_minus_1_bound``."""
    m = len(W)
    pre, suf = (np.asarray(x, dtype=float) for x in intermediate_gains(W))
    s = np.asarray(sigma, dtype=float)[..., None]
    k = np.arange(1, m + 1)
    return pre / s ** ((k - 1) / m), suf / s ** ((m - k) / m)


def sqrt_m_minus_1_bound(m: int) -> np.ndarray:
    """The sharp constant for (S91) at k = 1..m: 1 for k = 1, sqrt(m - 1) for k >= 2.

    Proof: at a flattest minimum (Sigma_x = I) take B = u y^T in (S85) with y the top right singular
    vector of P_{k-1}; the l = 1 term is ||S_1^T u||^2 = sigma^{2(m-1)/m} (Theorem 2), the l = k term
    is sigma^{2(m-k)/m} sigma_max(P_{k-1})^2, the others are >= 0, and the sum is at most
    m sigma^{2(m-1)/m}; hence sigma_max(P_{k-1})^2 <= (m-1) sigma^{2(k-1)/m}."""
    return np.array([1.0] + [np.sqrt(m - 1)] * (m - 1))


def coupling_angles(W: Sequence[np.ndarray], rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Angle (radians, in [0, pi/2]) between the top left singular vector of W_k and the top right
    singular vector of W_{k+1}, k = 1..m-1, float64 only, and a mask of where both are well defined
    (top singular value simple to relative gap ``rtol``)."""
    svds = [np.linalg.svd(Wk) for Wk in W]

    def simple(s):
        return (s[..., 0] - (s[..., 1] if s.shape[-1] > 1 else 0)) > rtol * s[..., 0]

    angles, ok = [], []
    for (U, s, _), (_, s2, Vt2) in zip(svds[:-1], svds[1:]):
        c = np.abs(np.sum(U[..., :, 0] * Vt2[..., 0, :], axis=-1))
        angles.append(np.arccos(np.clip(c, 0.0, 1.0)))
        ok.append(simple(s) & simple(s2))
    if not angles:
        shape = W[0].shape[:-2] + (0,)
        return np.zeros(shape), np.zeros(shape, dtype=bool)
    return np.stack(angles, axis=-1), np.stack(ok, axis=-1)


def path_pair_defects(W: Sequence[Array], sigma: Array, u: Array, v: Array) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 3 residuals for k = 1..m with r_k = P_{k-1} v, q_k = S_k^T u (unit vectors r, q):
    ||W_k^T W_k r - sigma^{2/m} r|| and ||W_k r - sigma^{1/m} q||, relative to sigma^{2/m}, sigma^{1/m}."""
    m = len(W)
    r = prefix_vectors(W, v)[:-1]
    q = suffix_vectors(W, u)[1:]
    c1 = power(sigma, fraction(1, m, sigma))
    eig, sv = [], []
    for Wk, rk, qk in zip(W, r, q):
        rb, qb = unit(rk), unit(qk)
        Wr = matvec(Wk, rb)
        eig.append(np.asarray(vnorm(rmatvec(Wk, Wr) - (c1 * c1)[..., None] * rb) / (c1 * c1), dtype=float))
        sv.append(np.asarray(vnorm(Wr - c1[..., None] * qb) / c1, dtype=float))
    return np.stack(eig, axis=-1), np.stack(sv, axis=-1)


# --- flatness -----------------------------------------------------------------------------------------

def flatness_gap(W: Sequence[np.ndarray], data: ln.Data, target: Array | None = None) -> np.ndarray:
    """lambda_max(H_w) / target - 1 (float64, batched); ``target`` defaults to the printed flattest
    value 2 m sigma_max(T)^{2(1-1/m)}, the minimum over global minima when Sigma_x = I (Theorem 1)."""
    lam = lemma3.lambda_max(W, data)
    if target is None:
        target = lemma3.flattest_value(data.T, len(W))
    return lam / target - 1


def summary(W: Sequence[np.ndarray], T: np.ndarray, Sigma_x_half: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All measurements of one batch, float64 (for reports and ``verify probe``): per instance the
    worst gain defect, worst alignment defect, balance defects, intermediate-gain ratios, coupling
    angles and, with ``Sigma_x_half``, the flatness gap."""
    sigma, u, v = top_singular_triplet(T)
    pre, suf = intermediate_gain_ratios(W, sigma)
    angles, ok = coupling_angles(W)
    eig, sv = path_pair_defects(W, sigma, u, v)
    out = {
        "sigma_max": np.asarray(sigma, dtype=float),
        "gain_defect": gain_defects(W, sigma, u, v),
        "alignment_defect": alignment_defects(W, u, v).max(axis=-1),
        "balance_defect": balance_defects(W, sigma),
        "prefix_gain_ratio": pre,
        "suffix_gain_ratio": suf,
        "coupling_angle": np.where(ok, angles, np.nan),
        "path_eigen_defect": eig.max(axis=-1),
        "path_singular_defect": sv.max(axis=-1),
    }
    if Sigma_x_half is not None:
        out["flatness_gap"] = flatness_gap(W, ln.from_target(T, Sigma_x_half))
    return out

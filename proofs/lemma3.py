"""The closed form of Lemma 3: the Hessian at a global minimum is H = 2 Phi Phi^T.

``phi_blocks`` builds Phi_k = (W_{k-1}...W_1 Sigma_x^{1/2}) (x) (W_m...W_{k+1})^T  (S47),
``hessian`` stacks them into H = 2 Phi Phi^T (S49) of size N x N (N = number of
weights), and ``small_operator`` is 2 Phi^T Phi of size (d_x d_y)^2, which has the
same nonzero eigenvalues; ``small_linear_operator`` applies it without forming it:
2 Phi^T Phi vec(B) = 2 sum_k vec(P_k B Q_k) with P_k = A_k A_k^T and
Q_k = Sigma_x^{1/2} B_k^T B_k Sigma_x^{1/2}. All of this holds only at a global
minimum; elsewhere it is the Gauss-Newton part of the Hessian.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .linear_network import Array, Data, above, below, kron, namespace, unvec, vec


def phi_blocks(weights: Sequence[Array], data: Data) -> list[Array]:
    """[Phi_1, ..., Phi_m], Phi_k of shape (..., d_k d_{k-1}, d_x d_y)  (S47)."""
    xp = namespace(*weights)
    return [
        kron(xp.matmul(B, data.Sigma_x_half), xp.matrix_transpose(A))
        for A, B in zip(above(weights), below(weights))
    ]


def phi(weights: Sequence[Array], data: Data) -> Array:
    """Phi = [Phi_1; ...; Phi_m] of shape (..., N, d_x d_y)."""
    return namespace(*weights).concat(phi_blocks(weights, data), axis=-2)


def hessian(weights: Sequence[Array], data: Data) -> Array:
    """H = 2 Phi Phi^T  (S49): the Hessian of the loss at a global minimum."""
    xp = namespace(*weights)
    P = phi(weights, data)
    return 2 * xp.matmul(P, xp.matrix_transpose(P))


def small_operator(weights: Sequence[Array], data: Data) -> Array:
    """2 Phi^T Phi, of size (d_x d_y)^2: same nonzero spectrum as H."""
    xp = namespace(*weights)
    P = phi(weights, data)
    return 2 * xp.matmul(xp.matrix_transpose(P), P)


def small_factors(weights: Sequence[Array], data: Data) -> tuple[list[Array], list[Array]]:
    """P_k = A_k A_k^T (d_y x d_y) and Q_k = Sigma_x^{1/2} B_k^T B_k Sigma_x^{1/2} (d_x x d_x)."""
    xp = namespace(*weights)
    t = xp.matrix_transpose
    P = [xp.matmul(A, t(A)) for A in above(weights)]
    Q = []
    for B in below(weights):
        BS = xp.matmul(B, data.Sigma_x_half)
        Q.append(xp.matmul(t(BS), BS))
    return P, Q


def small_operator_from_factors(P: Sequence[Array], Q: Sequence[Array]) -> Array:
    """2 Phi^T Phi = 2 sum_k Q_k (x) P_k, without forming Phi (memory (d_x d_y)^2)."""
    total = kron(Q[0], P[0])
    for Pk, Qk in zip(P[1:], Q[1:]):
        total = total + kron(Qk, Pk)
    return 2 * total


def apply_small(P: Sequence[Array], Q: Sequence[Array], b: Array) -> Array:
    """2 Phi^T Phi b for b = vec(B), batched over b's leading axes."""
    xp = namespace(b, *P)
    d_y, d_x = P[0].shape[-1], Q[0].shape[-1]
    Bm = unvec(b, d_y, d_x)
    total = xp.zeros_like(Bm)
    for Pk, Qk in zip(P, Q):
        total = total + xp.matmul(xp.matmul(Pk, Bm), Qk)
    return 2 * vec(total)


def small_linear_operator(weights: Sequence[np.ndarray], data: Data) -> LinearOperator:
    """2 Phi^T Phi as a matrix-free scipy LinearOperator (NumPy, unbatched)."""
    P, Q = small_factors(weights, data)
    n = data.d_x * data.d_y
    return LinearOperator((n, n), matvec=lambda b: apply_small(P, Q, np.ravel(b)), dtype=float)


def top_eigenpair(weights: Sequence[Array], data: Data) -> tuple[Array, Array]:
    """lambda_max(H) and a unit top eigenvector of H (batched), from the small operator:
    if 2 Phi^T Phi b = lambda b then H (Phi b) = lambda (Phi b)."""
    xp = namespace(*weights)
    values, vectors = xp.linalg.eigh(small_operator(weights, data))
    lam = values[..., -1]
    b = vectors[..., -1]
    h = xp.matmul(phi(weights, data), b[..., None])[..., 0]
    h = h / xp.linalg.vector_norm(h, axis=-1, keepdims=True)
    return lam, h


def lambda_max(weights: Sequence[Array], data: Data) -> Array:
    """lambda_max(H_w) at a global minimum, batched (dense eigensolver of the small operator)."""
    xp = namespace(*weights)
    return xp.linalg.eigvalsh(small_operator(weights, data))[..., -1]


def flattest_value(T: Array, m: int) -> Any:
    """The printed sharpness of the flattest minima, 2 m sigma_max(T)^{2(1-1/m)}  (S64/S98)."""
    xp = namespace(T)
    smax = xp.linalg.matrix_norm(T, ord=2)
    return 2 * m * smax ** (2 * (1 - 1 / m))


def rank_one_start(P: Sequence[np.ndarray], Q: Sequence[np.ndarray], sweeps: int = 3) -> np.ndarray:
    """A start vector vec(x y^T) for the top eigenvector of 2 sum_k Q_k (x) P_k: alternately
    maximise sum_k (x^T P_k x)(y^T Q_k y) over unit x and y (each a small symmetric
    eigenproblem). At flattest minima the top eigenvector is rank one, v (x) u (S65-S66)."""
    y = np.ones(Q[0].shape[-1]) / np.sqrt(Q[0].shape[-1])
    x = np.ones(P[0].shape[-1]) / np.sqrt(P[0].shape[-1])
    for _ in range(sweeps):
        x = np.linalg.eigh(sum(float(y @ Qk @ y) * Pk for Pk, Qk in zip(P, Q)))[1][:, -1]
        y = np.linalg.eigh(sum(float(x @ Pk @ x) * Qk for Pk, Qk in zip(P, Q)))[1][:, -1]
    return np.kron(y, x)


def lambda_max_matrix_free(weights: Sequence[np.ndarray], data: Data, rtol: float = 1e-13):
    """lambda_max(H) without forming H or 2 Phi^T Phi: Lanczos on the small operator from
    a rank-one start, stopped on a residual bound. Returns a ``proofs.eigen.TopEigen``."""
    from .eigen import lanczos_top  # noqa: PLC0415

    P, Q = small_factors(weights, data)
    return lanczos_top(lambda b: apply_small(P, Q, b), rank_one_start(P, Q), rtol=rtol)

"""lambda_max of a symmetric positive semidefinite operator given by its matvec.

``lanczos_top`` runs Lanczos with full reorthogonalisation from a chosen start
vector and stops on a *residual* bound, not on the change of the estimate:
for the Ritz pair (theta, x), ||A x - theta x|| = r bounds the distance from
theta to the spectrum, and with the gap delta to the next Ritz value the
Kato-Temple bound lambda_max - theta <= r^2 / delta applies once theta
approximates the top eigenvalue. The Rayleigh quotient never exceeds
lambda_max, so theta is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.linalg import eigh_tridiagonal


@dataclass
class TopEigen:
    value: float
    vector: np.ndarray
    residual: float  # ||A x - theta x|| for the unit Ritz vector x, recomputed at the end
    bound: float  # bound on lambda_max - value (Kato-Temple, or the residual when no gap is known)
    matvecs: int
    converged: bool


def lanczos_top(
    matvec: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    rtol: float = 1e-13,
    max_iter: int = 300,
) -> TopEigen:
    """Top eigenpair of a symmetric operator; stop when the relative residual
    ||A x - theta x|| / theta <= rtol."""
    n = start.shape[0]
    basis = np.empty((min(max_iter, n) + 1, n))
    alphas, betas = [], []
    q = start / np.linalg.norm(start)
    basis[0] = q
    theta, y, gap, beta = 0.0, np.ones(1), np.inf, 0.0
    k = 0
    for k in range(1, min(max_iter, n) + 1):
        w = matvec(basis[k - 1])
        alphas.append(float(basis[k - 1] @ w))
        w -= basis[:k].T @ (basis[:k] @ w)  # full reorthogonalisation, twice is enough
        w -= basis[:k].T @ (basis[:k] @ w)
        beta = float(np.linalg.norm(w))
        vals, vecs = eigh_tridiagonal(np.array(alphas), np.array(betas)) if k > 1 else (np.array(alphas), np.ones((1, 1)))
        theta, y = float(vals[-1]), vecs[:, -1]
        gap = float(vals[-1] - vals[-2]) if k > 1 else np.inf
        estimate = abs(beta * y[-1])  # Lanczos residual of the Ritz pair, without a matvec
        if estimate <= rtol * abs(theta) or beta <= 1e-300 or k == n:
            break
        betas.append(beta)
        basis[k] = w / beta
    x = basis[:k].T @ y
    x /= np.linalg.norm(x)
    residual = float(np.linalg.norm(matvec(x) - theta * x))
    bound = min(residual, residual**2 / gap) if np.isfinite(gap) and gap > residual else residual
    return TopEigen(theta, x, residual, bound, k + 1, residual <= 10 * rtol * abs(theta))

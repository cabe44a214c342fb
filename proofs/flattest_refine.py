"""Local optimisation of lambda_max(H_w) on the manifold of global minima (float64, unbatched).

The greedy search of Section IX (``flattest_search``) stops at a relative gap of about 1e-4..1e-3;
:func:`refine` continues from there with BFGS and an analytic gradient, down to gaps near rounding.
Points of the manifold through W are parametrised as in (S106), W_i(X) = M_i^{-1} W_i M_{i-1} with
M_i = I + X_i for the hidden layers (M_0 = M_m = I), so every iterate multiplies to the same T.

The gradient of lambda_max is the Hellmann-Feynman one: with B the unit top eigenvector (as a
d_y x d_x matrix) of the small operator 2 Phi^T Phi (Lemma 3), lambda_max = 2 sum_k ||Z_k||_F^2,
Z_k = A_k^T B Sigma_x^{1/2} B_k^T, and B is held fixed. It is exact where lambda_max is a simple
eigenvalue (the case at the flattest minima of a T with sigma_1 > sigma_2); elsewhere it is a
subgradient and BFGS still makes progress.

:func:`maximize_on_flattest` searches the flattest minima for extreme values of a measurement (e.g.
the intermediate gains of Theorem 2): a penalty method, then :func:`refine` back onto the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

from . import lemma3, minima
from . import linear_network as ln


def top_eigenmatrix(W: Sequence[np.ndarray], Sigma_x_half: np.ndarray) -> tuple[float, np.ndarray]:
    """lambda_max(H_w) and the unit top eigenvector of 2 Phi^T Phi as a d_y x d_x matrix B."""
    data = ln.from_target(ln.end_to_end(W), Sigma_x_half)
    values, vectors = np.linalg.eigh(lemma3.small_operator(W, data))
    return float(values[-1]), ln.unvec(vectors[:, -1], W[-1].shape[0], W[0].shape[1])


def lambda_max_gradient(W: Sequence[np.ndarray], Sigma_x_half: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """lambda_max(H_w) and d lambda_max / d W_j for j = 1..m (top eigenvector held fixed).

    With A_k = W_m..W_{k+1}, B_k = W_{k-1}..W_1 and Z_k = A_k^T B R B_k^T:
    for j > k, A_k = A_j W_j K (K = W_{j-1}..W_{k+1}) and d||Z_k||^2/dW_j = 2 (A_j^T B R B_k^T) Z_k^T K^T;
    for j < k, B_k = P W_j B_j (P = W_{k-1}..W_{j+1}) and d||Z_k||^2/dW_j = 2 P^T Z_k^T (A_k^T B R B_j^T)."""
    lam, B = top_eigenmatrix(W, Sigma_x_half)
    m = len(W)
    A, Bk = ln.above(W), ln.below(W)
    BR = B @ Sigma_x_half
    Z = [A[k].T @ BR @ Bk[k].T for k in range(m)]
    G = [np.zeros_like(Wj) for Wj in W]
    for k in range(m):
        for j in range(k + 1, m):
            G[j] += (A[j].T @ BR @ Bk[k].T) @ Z[k].T @ ln.product(W, k + 2, j).T
        for j in range(k):
            G[j] += ln.product(W, j + 2, k).T @ Z[k].T @ (A[k].T @ BR @ Bk[j].T)
    return lam, [4 * g for g in G]  # lambda = 2 sum ||Z||^2 and d||Z||^2 = 2 <Z, dZ>


class Chart:
    """Coordinates X (the hidden-layer M_i = I + X_i, flattened) around the base point W0."""

    def __init__(self, W0: Sequence[np.ndarray]) -> None:
        self.W0 = [np.array(w, dtype=float) for w in W0]
        self.hidden = ln.widths(self.W0)[1:-1]
        self.size = sum(d * d for d in self.hidden)

    def matrices(self, x: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for d in self.hidden:
            out.append(np.eye(d) + x[start:start + d * d].reshape(d, d))
            start += d * d
        return out

    def weights(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        M = self.matrices(x)
        M_inv = [np.linalg.inv(Mi) for Mi in M]
        return minima.conjugate(self.W0, M, M_inv), M_inv

    def pullback(self, W: Sequence[np.ndarray], M_inv: Sequence[np.ndarray], G: Sequence[np.ndarray]) -> np.ndarray:
        """Gradient in x from the gradients G_j = df/dW_j: W_i = M_i^{-1} W0_i M_{i-1} gives
        df/dX_i = -M_i^{-T} G_i W_i^T + (M_{i+1}^{-1} W0_{i+1})^T G_{i+1} (M_m = I)."""
        m = len(W)
        parts = []
        for i in range(1, m):
            left = self.W0[i] if i == m - 1 else M_inv[i] @ self.W0[i]
            parts.append((-M_inv[i - 1].T @ G[i - 1] @ W[i - 1].T + left.T @ G[i]).ravel())
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class RefineRecord:
    start: float  # lambda_max before
    value: float  # lambda_max after
    iterations: int


def refine(W: Sequence[np.ndarray], Sigma_x_half: np.ndarray, max_iterations: int = 400,
           rounds: int = 2) -> tuple[list[np.ndarray], RefineRecord]:
    """Minimise lambda_max(H_w) over the global minima near W (BFGS, analytic gradient); the chart
    is re-centred ``rounds`` times so the coordinates stay small."""
    W = [np.array(w, dtype=float) for w in W]
    start = top_eigenmatrix(W, Sigma_x_half)[0]
    iterations = 0
    for _ in range(rounds):
        chart = Chart(W)
        if chart.size == 0:
            break

        def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
            Wx, M_inv = chart.weights(x)
            lam, G = lambda_max_gradient(Wx, Sigma_x_half)
            return lam, chart.pullback(Wx, M_inv, G)

        result = minimize(value_and_gradient, np.zeros(chart.size), jac=True, method="BFGS",
                          options={"maxiter": max_iterations, "gtol": 1e-13})
        iterations += int(result.nit)
        W = chart.weights(result.x)[0]
    return W, RefineRecord(start, top_eigenmatrix(W, Sigma_x_half)[0], iterations)


def log_top_singular_value(W: Sequence[np.ndarray], first: int, last: int,
                           left: np.ndarray, right: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """log sigma_max(left W_last ... W_first right) and its gradient with respect to every W_j
    (zero outside first..last): with x, y the top singular vectors of M = L W_j R,
    d log sigma / d W_j = L^T x (R y)^T / sigma."""
    M = left @ ln.product(W, first, last) @ right
    U, s, Vt = np.linalg.svd(M)
    x, y, sigma = U[:, 0], Vt[0], s[0]
    grads = [np.zeros_like(Wj) for Wj in W]
    for j in range(first, last + 1):
        L = left @ ln.product(W, j + 1, last)
        R = ln.product(W, first, j - 1) @ right
        grads[j - 1] = np.outer(L.T @ x, R @ y) / sigma
    return float(np.log(sigma)), grads


def off_path_log_gain(W: Sequence[np.ndarray], u: np.ndarray, v: np.ndarray, k: int,
                      product: bool) -> tuple[float, list[np.ndarray]]:
    """log sigma_max(P_{k-1} (I - v v^T)) [+ log sigma_max((I - u u^T) S_k) if ``product``] and its
    gradient: the intermediate gains of Theorem 2 away from the u-v path (on the path Theorem 2
    fixes them), a smooth objective for searching the flattest minima for large gains."""
    m = len(W)
    Pv = np.eye(v.shape[-1]) - np.outer(v, v)
    value, grads = log_top_singular_value(W, 1, k - 1, np.eye(W[k - 2].shape[0]), Pv)
    if product:
        Pu = np.eye(u.shape[-1]) - np.outer(u, u)
        v2, g2 = log_top_singular_value(W, k + 1, m, Pu, np.eye(W[k].shape[1]))
        value, grads = value + v2, [a + b for a, b in zip(grads, g2)]
    return value, grads


def maximize_on_flattest(W: Sequence[np.ndarray], Sigma_x_half: np.ndarray, target: float,
                         log_measure: Callable[[list[np.ndarray]], tuple[float, list[np.ndarray]]],
                         penalties: Sequence[float] = (1e0, 1e1, 1e2, 1e3, 1e4), max_iterations: int = 300,
                         ) -> list[np.ndarray]:
    """Search the flattest minima near W for large values of a measure: minimise
    -log measure + rho (lambda_max / target - 1) for increasing rho (BFGS, analytic gradients from
    ``log_measure`` -> (value, dvalue/dW_j) and :func:`lambda_max_gradient`), then :func:`refine`
    back onto lambda_max = target."""
    W = [np.array(w, dtype=float) for w in W]
    for rho in penalties:
        chart = Chart(W)

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            Wx, M_inv = chart.weights(x)
            value, G = log_measure(Wx)
            lam, GL = lambda_max_gradient(Wx, Sigma_x_half)
            grads = [-g + rho / target * gl for g, gl in zip(G, GL)]
            return -value + rho * (lam / target - 1), chart.pullback(Wx, M_inv, grads)

        result = minimize(objective, np.zeros(chart.size), jac=True, method="BFGS",
                          options={"maxiter": max_iterations})
        if np.isfinite(result.fun):
            W = chart.weights(result.x)[0]
    return refine(W, Sigma_x_half)[0]

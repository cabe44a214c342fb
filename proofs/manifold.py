"""A numerical estimate of min lambda_max(H_w) over the manifold of global minima, independent of
any closed form for it.

Every global minimum of the conjugation orbit of the canonical factors C_1..C_m of T is
W_i = M_i^{-1} C_i M_{i-1} (M_0 = M_m = I, ``minima.conjugate``); for an invertible T and equal
widths this orbit is the whole manifold Omega (then every W_i = B_{i+1} B_i^{-1} is invertible and
M_i = B_{i+1} (C_i...C_1)^{-1}); for other shapes it is a part of Omega and the estimate is an
upper bound on the minimum over Omega. The estimate descends lambda_max (dense eigenvalues of the
small operator 2 Phi^T Phi of Lemma 3, which has the nonzero spectrum of H_w) from random minima (S104):

1. BFGS in local coordinates W -> conjugate(W, I + X, (I + X)^{-1}) on a soft maximum of the
   spectrum, (1/beta) log sum_i exp(beta lambda_i), with beta raised stage by stage (a smooth
   continuation: lambda_max is not differentiable where the top eigenvalue is repeated, as at the
   flattest minima when sigma_1(T) = sigma_2(T)), re-centred after every stage so the coordinates
   stay well conditioned;
2. a polish by the manifold-preserving random steps of (S106) (``flattest_search.search`` with
   rtol = -1: its stopping test lambda <= target (1 + rtol) then never fires, so the printed
   value 2m sigma_max(T)^{2(1-1/m)} plays no part), which copes with a non-smooth top
   eigenvalue (repeated eigenvalues), where BFGS may stall.

The best value over the starts, the weights attaining it and a per-start record are returned;
the spread of the final values over the starts is a convergence indicator.

``lemma4_bound`` is the lower bound that Lemma 4 gives when Sigma_x^{1/2} is kept in (S56):
for any global minimum and unit v, with Psi_k = A_k^T u v^T Sigma_x^{1/2} B_k^T and
u = T Sigma_x^{1/2} v / ||T Sigma_x^{1/2} v||, lambda_max >= 2 sum_k ||Psi_k||_F^2
>= 2m ||prod_k Psi_k||_2^{2/m} = 2m (||T R v||^{m-1} ||R v||)^{2/m} (R = Sigma_x^{1/2}); maximised
over v here numerically. For Sigma_x = I it is 2m sigma_max(T)^{2(1-1/m)}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from . import flattest_search, lemma3, minima
from . import linear_network as ln


NEVER_ON_TARGET = -1.0  # flattest_search stops when lambda <= target (1 + rtol): never, for lambda > 0


@dataclass
class Descent:
    """One start of the estimate."""

    initial: float
    after_bfgs: float
    final: float
    stages: int
    evaluations: int
    polish_accepted: int

    def as_dict(self) -> dict:
        return dict(initial=self.initial, after_bfgs=self.after_bfgs, final=self.final, stages=self.stages,
                    evaluations=self.evaluations, polish_accepted=self.polish_accepted)


@dataclass
class ManifoldEstimate:
    """The smallest lambda_max found over the manifold of global minima."""

    value: float
    weights: list[np.ndarray]
    descents: list[Descent] = field(default_factory=list)

    @property
    def spread(self) -> float:
        """Relative spread of the final values over the starts (0 when all starts agree)."""
        finals = [d.final for d in self.descents]
        return (max(finals) - min(finals)) / max(abs(self.value), 1e-300)

    def record(self) -> dict:
        return dict(value=self.value, spread=self.spread, starts=[d.as_dict() for d in self.descents])


def hidden_widths(weights: Sequence[np.ndarray]) -> tuple[int, ...]:
    return ln.widths(weights)[1:-1]


def conjugation_step(weights: Sequence[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """W_i -> (I + X_i)^{-1} W_i (I + X_{i-1}): a global minimum stays one (the product is kept)."""
    factors, start = [], 0
    for d in hidden_widths(weights):
        factors.append(np.eye(d) + x[start:start + d * d].reshape(d, d))
        start += d * d
    return minima.conjugate(weights, factors, [np.linalg.inv(f) for f in factors])


def _spectrum(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray | None:
    with np.errstate(all="ignore"):
        try:
            values = np.linalg.eigvalsh(lemma3.small_operator(list(weights), data))
        except np.linalg.LinAlgError:
            return None
    return values if np.all(np.isfinite(values)) else None


def spectra(weights: Sequence[np.ndarray], data: ln.Data, X: np.ndarray) -> np.ndarray:
    """The spectra (k, N) at conjugation_step(weights, x) for every row x of X (k, n), in one batched
    evaluation; a row is inf where the step is singular or the spectrum not finite."""
    k, factors, start = X.shape[0], [], 0
    for d in hidden_widths(weights):
        factors.append(np.eye(d) + X[:, start:start + d * d].reshape(k, d, d))
        start += d * d
    with np.errstate(all="ignore"):
        try:
            moved = minima.conjugate(weights, factors, [np.linalg.inv(f) for f in factors])
            values = np.linalg.eigvalsh(lemma3.small_operator(moved, data))
        except np.linalg.LinAlgError:  # a singular step: row by row, as the unbatched evaluation does
            return _rows_or_inf([_spectrum(conjugation_step(weights, x), data) for x in X])
    return np.where(np.all(np.isfinite(values), axis=-1, keepdims=True), values, np.inf)


def _rows_or_inf(rows: list[np.ndarray | None]) -> np.ndarray:
    """Spectra stacked, a row of inf for each that could not be computed."""
    size = next((len(r) for r in rows if r is not None), 1)
    return np.stack([np.full(size, np.inf) if r is None else r for r in rows])


def soft_lambda_max(values: np.ndarray | None, beta: float) -> np.ndarray | float:
    """(1/beta) log sum exp(beta lambda_i): smooth, and within log(n)/beta above lambda_max; for a batch of
    spectra (k, N) one value per row (inf where the spectrum is)."""
    if values is None:
        return np.inf
    top = values[..., -1:]
    with np.errstate(invalid="ignore"):
        soft = top[..., 0] + np.log(np.sum(np.exp(beta * (values - top)), axis=-1)) / beta
    if values.ndim == 1:
        return float(soft)
    return np.where(np.isfinite(top[:, 0]), soft, np.inf)


def soft_value_and_gradient(weights: Sequence[np.ndarray], data: ln.Data, beta: float,
                            x: np.ndarray) -> tuple[float, np.ndarray]:
    """The soft maximum at conjugation_step(weights, x) and its forward-difference gradient with
    scipy's default steps (sqrt(eps) max(1, |x_i|)), all n + 1 points in one batched evaluation."""
    h = np.sqrt(np.finfo(float).eps) * np.where(x >= 0, 1.0, -1.0) * np.maximum(1.0, np.abs(x))
    values = soft_lambda_max(spectra(weights, data, np.vstack([x, x + np.diag(h)])), beta)
    with np.errstate(invalid="ignore"):
        return float(values[0]), (values[1:] - values[0]) / ((x + h) - x)


def descend(weights: Sequence[np.ndarray], data: ln.Data, rng: np.random.Generator,
            sharpness: Sequence[float] = (1e1, 1e3, 1e5, 1e7), bfgs_iterations: int = 200,
            polish_iterations: int = 100) -> tuple[list[np.ndarray], Descent]:
    """BFGS in local conjugation coordinates on the soft maximum of the spectrum, with the sharpness
    beta raised from 10 to 1e7 (relative to the current lambda_max) and the coordinates re-centred
    after each stage (a smooth continuation: lambda_max itself is not differentiable where the top
    eigenvalue is repeated, e.g. sigma_1 = sigma_2); then the (S106) polish. See the module doc."""
    W = list(weights)
    n = sum(d * d for d in hidden_widths(W))
    values = _spectrum(W, data)
    initial = current = float(values[-1])
    evaluations = stages = 0
    for relative in (sharpness if n else ()):
        beta = relative / current
        result = minimize(lambda x: soft_value_and_gradient(W, data, beta, x), np.zeros(n), jac=True,
                          method="BFGS", options=dict(maxiter=bfgs_iterations, gtol=1e-12))
        evaluations += int(result.nfev) * (n + 1)  # each call evaluates n + 1 points
        stages += 1
        candidate = conjugation_step(W, result.x)
        spectrum = _spectrum(candidate, data)
        if spectrum is not None and spectrum[-1] < current:
            W, current = candidate, float(spectrum[-1])
    after_bfgs = current
    accepted = 0
    if n and polish_iterations:
        T = ln.end_to_end(W)
        W, record = flattest_search.search(T, ln.widths(W), data.Sigma_x_half, rng, rtol=NEVER_ON_TARGET,
                                           max_iterations=polish_iterations, eps=1e-3, start=W)
        current, accepted = record.history[-1], record.accepted
        evaluations += record.iterations
    return W, Descent(initial, after_bfgs, current, stages, evaluations, accepted)


def estimate_min_lambda_max(T: np.ndarray, dims: Sequence[int], Sigma_x_half: np.ndarray, rng: np.random.Generator,
                            starts: int = 3, **descent_options) -> ManifoldEstimate:
    """min over global minima of lambda_max(H_w) for y = T x data with Sigma_x = Sigma_x_half^2,
    estimated from ``starts`` random minima (S104); unbatched float64."""
    minima.check_widths(T, dims)
    data = ln.from_target(T, Sigma_x_half)  # lambda_max of 2 Phi^T Phi depends on the weights and Sigma_x only
    best: ManifoldEstimate | None = None
    descents = []
    for _ in range(starts):
        start = minima.random_minimum(T, dims, rng)
        W, descent = descend(start, data, rng, **descent_options)
        descents.append(descent)
        if best is None or descent.final < best.value:
            best = ManifoldEstimate(descent.final, W)
    assert best is not None
    best.descents = descents
    return best


def lemma4_bound(T: np.ndarray, Sigma_x_half: np.ndarray, m: int, rng: np.random.Generator, starts: int = 12) -> float:
    """2m max_{|v|=1} ((v^T R T^T T R v)^{m-1} v^T R^2 v)^{1/m}, R = Sigma_x^{1/2}: the Lemma 4 lower
    bound on lambda_max at every global minimum with Sigma_x^{1/2} kept (maximised by multistart BFGS)."""
    R = np.asarray(Sigma_x_half, dtype=float)
    G, S = R @ T.T @ T @ R, R @ R

    def negative(x: np.ndarray) -> float:
        v = x / np.linalg.norm(x)
        return -float(np.exp(((m - 1) * np.log(max(v @ G @ v, 1e-300)) + np.log(v @ S @ v)) / m))

    candidates = [np.linalg.eigh(G)[1][:, -1], np.linalg.eigh(S)[1][:, -1]]
    candidates += [rng.standard_normal(T.shape[-1]) for _ in range(starts)]
    best = min(minimize(negative, x0, method="BFGS", options=dict(gtol=1e-13)).fun for x0 in candidates)
    return -2 * m * float(best)

"""Scalar deep linear networks (Section III): f_w(x) = w_m ... w_1 x.

Ground truth for Section III comes from differentiating the loss itself:
``symbolic_hessian(m)`` is sympy's Hessian of the loss polynomial and
``hessian(w, ...)`` evaluates that expression (lambdified) on a batch. Neither
uses the paper's closed forms (S12)-(S18), which are what the checks test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import sympy as sp


def loss(w: np.ndarray, sx2: np.ndarray, sxy: np.ndarray, sy2: np.ndarray) -> np.ndarray:
    """E[(y - prod(w) x)^2] written through the moments, batched over the leading axis."""
    p = np.prod(w, axis=-1)
    return sx2 * p**2 - 2 * sxy * p + sy2


def loss_from_samples(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The empirical loss (S9) from samples x, y of shape (batch, n)."""
    p = np.prod(w, axis=-1, keepdims=True)
    return np.mean((y - p * x) ** 2, axis=-1)


@lru_cache(maxsize=None)
def symbols(m: int) -> tuple[tuple[sp.Symbol, ...], sp.Symbol, sp.Symbol, sp.Symbol]:
    """Weights w1..wm and the moments sigma_x^2 (positive), sigma_xy, sigma_y^2."""
    w = sp.symbols(f"w1:{m + 1}", real=True)
    sx2 = sp.Symbol("sigma_x2", positive=True)
    sxy = sp.Symbol("sigma_xy", real=True)
    sy2 = sp.Symbol("sigma_y2", positive=True)
    return w, sx2, sxy, sy2


@lru_cache(maxsize=None)
def symbolic_loss(m: int) -> sp.Expr:
    w, sx2, sxy, sy2 = symbols(m)
    p = sp.Mul(*w)
    return sx2 * p**2 - 2 * sxy * p + sy2


@lru_cache(maxsize=None)
def symbolic_gradient(m: int) -> sp.Matrix:
    w = symbols(m)[0]
    return sp.Matrix([sp.diff(symbolic_loss(m), wk) for wk in w])


@lru_cache(maxsize=None)
def symbolic_hessian(m: int) -> sp.Matrix:
    w = symbols(m)[0]
    return sp.hessian(symbolic_loss(m), w)


@lru_cache(maxsize=None)
def _hessian_fn(m: int) -> Callable:
    w, sx2, sxy, _ = symbols(m)
    return sp.lambdify((w, sx2, sxy), symbolic_hessian(m), "numpy")


def hessian(w: np.ndarray, sx2: np.ndarray, sxy: np.ndarray) -> np.ndarray:
    """Hessian of the loss at a batch of points w (batch, m): shape (batch, m, m)."""
    batch, m = w.shape
    fn = _hessian_fn(m)
    out = np.empty((batch, m, m))
    for k in range(batch):  # lambdify of a Matrix is not vectorised over entries
        out[k] = np.asarray(fn(tuple(w[k]), float(np.broadcast_to(sx2, (batch,))[k]),
                               float(np.broadcast_to(sxy, (batch,))[k])), dtype=float)
    return out


def finite_difference_hessian(f: Callable[[np.ndarray], np.ndarray], w: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central second differences of a batched scalar function f: (batch, m) -> (batch,).
    Independent of any derivative formula; truncation error O(h^2)."""
    batch, m = w.shape
    out = np.empty((batch, m, m))
    eye = np.eye(m) * h
    for i in range(m):
        for j in range(i, m):
            fpp = f(w + eye[i] + eye[j])
            fpm = f(w + eye[i] - eye[j])
            fmp = f(w - eye[i] + eye[j])
            fmm = f(w - eye[i] - eye[j])
            out[:, i, j] = out[:, j, i] = (fpp - fpm - fmp + fmm) / (4 * h * h)
    return out


def random_minima(rng: np.random.Generator, m: int, tau: np.ndarray, spread: float = 1.0) -> np.ndarray:
    """Global minima (prod w = tau, S11) with random signs and log-normal magnitudes
    for w_1..w_{m-1}; w_m absorbs the rest. Shape (len(tau), m)."""
    tau = np.asarray(tau, dtype=float)
    n = tau.shape[0]
    free = np.exp(spread * rng.standard_normal((n, m - 1))) * rng.choice([-1.0, 1.0], size=(n, m - 1))
    last = tau / np.prod(free, axis=-1)
    return np.concatenate([free, last[:, None]], axis=-1)


def random_data(rng: np.random.Generator, n: int, samples: int = 16) -> tuple[np.ndarray, ...]:
    """Random samples x, y (n, samples) and their moments sigma_x^2, sigma_xy, sigma_y^2."""
    x = rng.standard_normal((n, samples)) * np.exp(rng.uniform(-1, 1, (n, 1)))
    y = rng.uniform(-2, 2, (n, 1)) * x + 0.3 * rng.standard_normal((n, samples))
    return x, y, np.mean(x * x, -1), np.mean(x * y, -1), np.mean(y * y, -1)


def line_polynomial(w: np.ndarray, d: np.ndarray, degree: int) -> list:
    """Coefficients c_0..c_degree of t -> prod_j (w_j + t d_j), the end-to-end coefficient on the
    line w + t d, truncated after t^degree. Batched over leading axes; any number type (float,
    Fraction or sympy objects in object arrays), so the same code gives exact and float results."""
    coeffs = [w[..., 0] * 0 + 1] + [w[..., 0] * 0] * degree
    for j in range(w.shape[-1]):
        wj, dj = w[..., j], d[..., j]
        coeffs = [coeffs[0] * wj] + [coeffs[k] * wj + coeffs[k - 1] * dj for k in range(1, degree + 1)]
    return coeffs


def loss_along_line(w: np.ndarray, d: np.ndarray, sx2, sxy, sy2, degree: int) -> list:
    """Coefficients of the loss restricted to a line, t -> loss(w + t d), truncated after t^degree:
    polynomial arithmetic on sx2 p(t)^2 - 2 sxy p(t) + sy2, no derivative formula involved."""
    p = line_polynomial(w, d, degree)
    return [sx2 * sum(p[j] * p[k - j] for j in range(k + 1)) - 2 * sxy * p[k] + (sy2 if k == 0 else 0)
            for k in range(degree + 1)]


def line_curvature(w: np.ndarray, d: np.ndarray, sx2, sxy):
    """d^2/dt^2 loss(w + t d) at t = 0, measured as twice the t^2 coefficient of the loss on the line."""
    return 2 * loss_along_line(w, d, sx2, sxy, 0, 2)[2]


def line_curvature_rounding_bound(w: np.ndarray, d: np.ndarray, sx2, sxy) -> np.ndarray:
    """A bound on the float64 rounding error of ``line_curvature``: every coefficient is a sum of
    products of <= m + 2 factors, so the same sums over absolute values, times 8 (m + 2) eps,
    bound the error including any cancellation."""
    p0, p1, p2 = line_polynomial(np.abs(w), np.abs(d), 2)
    sx2, sxy = np.asarray(sx2, dtype=float), np.asarray(sxy, dtype=float)
    scale = 2 * sx2 * p1**2 + 4 * p2 * (sx2 * p0 + np.abs(sxy))
    return 8 * (w.shape[-1] + 2) * np.finfo(float).eps * scale


@lru_cache(maxsize=None)
def _gradient_fn(m: int) -> Callable:
    w, sx2, sxy, _ = symbols(m)
    return sp.lambdify((w, sx2, sxy), list(symbolic_gradient(m)), "numpy")


def gradient(w: np.ndarray, sx2: np.ndarray, sxy: np.ndarray) -> np.ndarray:
    """Gradient of the loss at a batch of points w (batch, m), from sympy's derivative of the loss
    polynomial (not from (S12)). Shape (batch, m)."""
    batch, m = w.shape
    parts = _gradient_fn(m)(tuple(w.T), np.asarray(sx2, dtype=float), np.asarray(sxy, dtype=float))
    return np.stack([np.broadcast_to(np.asarray(g, dtype=float), (batch,)) for g in parts], axis=-1)


def lambda_max(w: np.ndarray, sx2: np.ndarray, sxy: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of ``hessian`` (dense symmetric eigensolver), batched. Shape (batch,)."""
    return np.linalg.eigvalsh(hessian(w, sx2, sxy))[:, -1]

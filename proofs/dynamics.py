"""Gradient flow and gradient descent on the deep-linear loss, recorded at chosen times.

The loss is E||y - W_m ... W_1 x||^2 (``linear_network.loss``) and both dynamics follow its analytic
gradient ``linear_network.gradient``:

- gradient flow dW_k/dt = -dL/dW_k, integrated by ``scipy.integrate.solve_ivp`` (DOP853, an explicit
  Runge-Kutta method of order 8 with dense output) with ``rtol = 1e-10`` and ``atol = 1e-12``
  (``GF_RTOL``, ``GF_ATOL``; see ``GF_TOLERANCE_REASON``);
- gradient descent W_k <- W_k - eta dL/dW_k with a constant step.

Both are batched: every weight carries the same leading batch shape as the data, and the whole batch
is one ODE state (the gradient is batched, so a batch costs little more than one network; the step
size is shared, set by the fastest instance). A :class:`Trajectory` keeps the weights at the requested
times and, when the run stops early because the gradient became negligible, the state at that time.

Initializations (``initialize``): the linear-ResNet start W_i = I (square widths), ``balanced``
(W_i = U_i S U_{i-1}^T from one diagonal S and orthogonal U_0..U_m: W_{i+1}^T W_{i+1} = W_i W_i^T
exactly, for any widths), ``small random`` (Gaussian of scale 0.1, balanced only to O(0.01)) and
``unbalanced random`` (Gaussian layers with layer-dependent scales).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> T = random_target(rng, (), 2, 2, "spd")
>>> data = ln.from_target(T, np.eye(2))
>>> run = gradient_flow(initialize("identity", (2, 2, 2), rng), data, [0.0, 40.0])
>>> bool(np.allclose(ln.end_to_end(run.final), T, atol=1e-8))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.integrate import solve_ivp

from . import linear_network as ln
from . import minima

GF_METHOD = "DOP853"
GF_RTOL = 1e-10
GF_ATOL = 1e-12
GF_TOLERANCE_REASON = (
    "solve_ivp DOP853 with rtol=1e-10, atol=1e-12: the weights are O(1), so the relative control sets the local "
    "error near 1e-10 per step; atol=1e-12 keeps entries that pass through or stay at zero (null directions of "
    "rectangular layers, off-diagonal entries) from demanding relative accuracy below float64 resolution, while "
    "staying 100x under the rtol scale so it never dominates. Invariants that the exact flow conserves "
    "(W_{i+1}^T W_{i+1} - W_i W_i^T) then drift by the accumulated global error, ~1e-10..1e-9 over these horizons"
)

INIT_KINDS = ("identity", "balanced", "small random", "unbalanced random")
TARGET_KINDS = ("general", "spd", "symmetric indefinite", "non-normal positive")
SMALL_SCALE = 0.1


@dataclass(frozen=True)
class Trajectory:
    """Weights recorded at ``times``: ``weights[k]`` has shape (len(times), *batch, d_{k+1}, d_k)."""

    times: np.ndarray
    weights: tuple[np.ndarray, ...]
    data: ln.Data
    method: str

    @property
    def dims(self) -> tuple[int, ...]:
        return ln.widths([W[0] for W in self.weights])

    @property
    def depth(self) -> int:
        return len(self.weights)

    def at(self, j: int) -> list[np.ndarray]:
        """The weights at the j-th recorded time (batched over the instances)."""
        return [W[j] for W in self.weights]

    @property
    def final(self) -> list[np.ndarray]:
        return self.at(-1)

    def instance(self, i: int) -> "Trajectory":
        """The trajectory of instance ``i`` of a batch of shape (n,)."""
        data = ln.Data(*(np.asarray(x)[i] for x in (self.data.Sigma_x, self.data.Sigma_yx, self.data.T,
                                                    self.data.Sigma_x_half, self.data.y2)))
        return Trajectory(self.times, tuple(W[:, i] for W in self.weights), data, self.method)


def gradient_norm(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray:
    """||grad L(w)||_2 per instance (batched)."""
    g = ln.flatten(ln.gradient(weights, data))
    return np.sqrt(np.sum(g * g, axis=-1))


def numpy_gradient(weights: Sequence[np.ndarray], Sigma_x: np.ndarray, Sigma_yx: np.ndarray) -> list[np.ndarray]:
    """dL/dW_k = 2 A_k^T (W Sigma_x - Sigma_yx) B_k^T in plain NumPy: the same formula as
    ``linear_network.gradient`` (tested equal) without the Array-API dispatch, which would triple the
    cost of the thousands of right-hand-side calls of an integration (ndarray methods, not the slower
    ``np.swapaxes`` wrappers, for the same reason)."""
    m = len(weights)
    below = [None] * m  # B_k = W_{k-1}...W_1 (None for the identity)
    for k in range(1, m):
        below[k] = weights[k - 1] if below[k - 1] is None else weights[k - 1] @ below[k - 1]
    end = weights[-1] if below[-1] is None else weights[-1] @ below[-1]
    left = end @ Sigma_x - Sigma_yx
    grads = [None] * m
    for k in range(m - 1, -1, -1):  # left = A_k^T (W Sigma_x - Sigma_yx), A_k = W_m...W_{k+1}
        g = 2 * left if below[k] is None else 2 * left @ below[k].swapaxes(-1, -2)
        grads[k] = g
        left = weights[k].swapaxes(-1, -2) @ left
    return grads


def _record(times: Sequence[float]) -> np.ndarray:
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size == 0 or t[0] < 0 or np.any(np.diff(t) <= 0):
        raise ValueError("times must be a non-empty increasing sequence of non-negative numbers")
    return t


def gradient_flow(
    weights0: Sequence[np.ndarray],
    data: ln.Data,
    times: Sequence[float],
    *,
    rtol: float = GF_RTOL,
    atol: float = GF_ATOL,
    stop_gradient: float | None = None,
) -> Trajectory:
    """Integrate dW_k/dt = -dL/dW_k from ``weights0`` and record at ``times`` (starting at 0 or later).

    With ``stop_gradient`` the integration stops once every instance's gradient norm is below it; the
    trajectory then ends at that time (later requested times are not reached)."""
    t = _record(times)
    shapes = [np.shape(W) for W in weights0]
    ln.widths(weights0)
    y0 = np.concatenate([np.ravel(np.asarray(W, dtype=float)) for W in weights0])
    ends = np.cumsum([int(np.prod(s)) for s in shapes]).tolist()
    parts = list(zip([0, *ends[:-1]], ends, shapes))
    Sx, Syx = np.asarray(data.Sigma_x, dtype=float), np.asarray(data.Sigma_yx, dtype=float)

    def unpack(y: np.ndarray) -> list[np.ndarray]:  # views by slicing: np.split costs more than the gradient
        return [y[a:b].reshape(s) for a, b, s in parts]

    def velocity(_t: float, y: np.ndarray) -> np.ndarray:
        return -np.concatenate([g.reshape(-1) for g in numpy_gradient(unpack(y), Sx, Syx)])

    events = None
    if stop_gradient is not None:
        def small_gradient(_t: float, y: np.ndarray) -> float:
            grads = numpy_gradient(unpack(y), Sx, Syx)
            return float(np.sqrt(np.max(sum(np.sum(g * g, axis=(-2, -1)) for g in grads))) - stop_gradient)

        small_gradient.terminal, small_gradient.direction = True, -1
        events = [small_gradient]
    sol = solve_ivp(velocity, (0.0, float(t[-1])), y0, method=GF_METHOD, t_eval=t, rtol=rtol, atol=atol,
                    events=events)
    if sol.status < 0:
        raise RuntimeError(f"gradient flow failed: {sol.message}")
    ts, ys = sol.t, sol.y
    if sol.status == 1 and (ts.size == 0 or ts[-1] < sol.t_events[0][0]):  # stopped between records: keep it
        ts = np.append(ts, sol.t_events[0][0])
        ys = np.concatenate([ys, sol.y_events[0].T], axis=1)
    return _trajectory(ts, [unpack(y) for y in ys.T], data, f"gradient flow ({GF_METHOD}, rtol={rtol:g}, atol={atol:g})")


def gradient_descent(
    weights0: Sequence[np.ndarray],
    data: ln.Data,
    eta: float,
    times: Sequence[float],
    *,
    stop_gradient: float | None = None,
) -> Trajectory:
    """W_k <- W_k - eta dL/dW_k, recorded after round(t / eta) steps for each t in ``times`` (so time t is
    comparable with gradient flow); stops early, recording that state, once every gradient norm is
    below ``stop_gradient``."""
    t = _record(times)
    record_at = np.rint(t / eta).astype(int)
    W = [np.asarray(x, dtype=float) for x in weights0]
    Sx, Syx = np.asarray(data.Sigma_x, dtype=float), np.asarray(data.Sigma_yx, dtype=float)
    kept_t, kept_W = [], []
    for n in range(int(record_at[-1]) + 1):
        grad = numpy_gradient(W, Sx, Syx)
        if n in record_at:
            kept_t.append(n * eta)
            kept_W.append(W)
        if stop_gradient is not None and np.max(np.sqrt(sum(np.sum(g * g, axis=(-2, -1)) for g in grad))) < stop_gradient:
            if kept_t[-1:] != [n * eta]:
                kept_t.append(n * eta)
                kept_W.append(W)
            break
        W = [Wk - eta * g for Wk, g in zip(W, grad)]
    return _trajectory(np.asarray(kept_t), kept_W, data, f"gradient descent (eta={eta:g})")


def _trajectory(times: np.ndarray, states: Sequence[Sequence[np.ndarray]], data: ln.Data, method: str) -> Trajectory:
    layers = tuple(np.stack([s[k] for s in states]) for k in range(len(states[0])))
    return Trajectory(np.asarray(times, dtype=float), layers, data, method)


# ------------------------------------------------------------------------------------------------------
# Quantities along a trajectory
# ------------------------------------------------------------------------------------------------------


def gram_gaps(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """D_i = W_{i+1}^T W_{i+1} - W_i W_i^T for i = 1..m-1 (zero for a balanced network); batched."""
    t = lambda M: np.swapaxes(M, -1, -2)
    return [t(weights[i + 1]) @ weights[i + 1] - weights[i] @ t(weights[i]) for i in range(len(weights) - 1)]


def balancedness(weights: Sequence[np.ndarray]) -> np.ndarray:
    """max_i ||W_{i+1}^T W_{i+1} - W_i W_i^T||_F (batched; 0 for depth 1)."""
    gaps = gram_gaps(weights)
    if not gaps:
        return np.zeros(weights[0].shape[:-2])
    return np.max(np.stack([np.linalg.norm(D, axis=(-2, -1)) for D in gaps]), axis=0)


def hessian_lambda_max(weights: Sequence[np.ndarray], data: ln.Data, h: float = 1e-5) -> np.ndarray:
    """lambda_max of the full Hessian of the loss (central differences of the analytic gradient), valid
    anywhere, not only at minima; batched."""
    from .hessian_reference import finite_difference_hessian  # noqa: PLC0415

    return np.linalg.eigvalsh(finite_difference_hessian(list(weights), data, h))[..., -1]


# ------------------------------------------------------------------------------------------------------
# Initializations and data
# ------------------------------------------------------------------------------------------------------


def identity_init(dims: Sequence[int], batch: tuple[int, ...] = ()) -> list[np.ndarray]:
    """The linear-ResNet start W_i = I (all widths equal)."""
    if len(set(dims)) != 1:
        raise ValueError(f"the identity initialization needs equal widths, got {tuple(dims)}")
    return [np.broadcast_to(np.eye(dims[0]), (*batch, dims[0], dims[0])).copy() for _ in dims[1:]]


def balanced_init(dims: Sequence[int], rng: np.random.Generator, batch: tuple[int, ...] = (),
                  low: float = 0.5, high: float = 1.5) -> list[np.ndarray]:
    """W_i = U_i S U_{i-1}^T from one set of min(dims) singular values (well separated, in [low, high])
    and Haar orthogonal U_0..U_m: W_i W_i^T = U_i S S^T U_i^T = W_{i+1}^T W_{i+1} exactly."""
    r = min(dims)
    grid = np.linspace(low, high, r) if r > 1 else np.array([(low + high) / 2])
    jitter = rng.uniform(-0.2, 0.2, size=(*batch, r)) * (high - low) / max(r, 2)
    s = grid[::-1] + jitter
    U = [minima.random_orthogonal(rng, batch, d) for d in dims]
    t = lambda M: np.swapaxes(M, -1, -2)
    return [U[k + 1] @ ln.diag_rect(s, dims[k + 1], dims[k]) @ t(U[k]) for k in range(len(dims) - 1)]


def random_init(dims: Sequence[int], rng: np.random.Generator, batch: tuple[int, ...] = (),
                scales: Sequence[float] | None = None) -> list[np.ndarray]:
    """Gaussian layers W_k with entries N(0, scales[k]^2 / d_{k-1})."""
    m = len(dims) - 1
    scales = np.ones(m) if scales is None else np.asarray(scales, dtype=float)
    return [scales[k] * rng.standard_normal((*batch, dims[k + 1], dims[k])) / np.sqrt(dims[k]) for k in range(m)]


def initialize(kind: str, dims: Sequence[int], rng: np.random.Generator, batch: tuple[int, ...] = ()) -> list[np.ndarray]:
    """Initial weights of one of ``INIT_KINDS``."""
    if kind == "identity":
        return identity_init(dims, batch)
    if kind == "balanced":
        return balanced_init(dims, rng, batch)
    if kind == "small random":
        return random_init(dims, rng, batch, np.full(len(dims) - 1, SMALL_SCALE))
    if kind == "unbalanced random":
        return random_init(dims, rng, batch, 2.0 ** np.linspace(-0.5, 0.5, len(dims) - 1))
    raise ValueError(f"unknown initialization {kind!r} (one of {INIT_KINDS})")


def orient(weights: Sequence[np.ndarray], T: np.ndarray) -> list[np.ndarray]:
    """For d_x = d_y, reflect the input space of W_1 where sign det(W_m...W_1) differs from sign det(T).
    Gradient flow from a balanced start cannot make the end-to-end matrix singular, so without this it
    could not reach T. The reflection leaves every W_i W_i^T and W_{i+1}^T W_{i+1} unchanged."""
    if T.shape[-1] != T.shape[-2]:
        return list(weights)
    wrong = np.sign(np.linalg.det(ln.end_to_end(weights))) != np.sign(np.linalg.det(T))
    reflect = np.eye(T.shape[-1])
    reflect[0, 0] = -1.0
    return [np.where(wrong[..., None, None], weights[0] @ reflect, weights[0]), *weights[1:]]


def random_target(rng: np.random.Generator, batch: tuple[int, ...], d_y: int, d_x: int, kind: str = "general",
                  low: float = 0.5, high: float = 2.0) -> np.ndarray:
    """T of full rank min(d_y, d_x) with controlled spectrum in [low, high]:
    ``general`` U diag(s) V^T; ``spd`` Q diag(l) Q^T; ``symmetric indefinite`` the same with the smallest
    eigenvalue negated; ``non-normal positive`` Q (diag(l) + N) Q^T with N strictly upper triangular
    (eigenvalues l > 0, not normal)."""
    r = min(d_y, d_x)
    values = np.sort(rng.uniform(low, high, size=(*batch, r)), axis=-1)[..., ::-1]
    if kind == "general":
        U = minima.random_orthogonal(rng, batch, d_y)[..., :r]
        V = minima.random_orthogonal(rng, batch, d_x)[..., :r]
        return (U * values[..., None, :]) @ np.swapaxes(V, -1, -2)
    if d_y != d_x:
        raise ValueError(f"a {kind} target must be square")
    Q = minima.random_orthogonal(rng, batch, r)
    core = np.zeros((*batch, r, r))
    core[..., np.arange(r), np.arange(r)] = values
    if kind == "symmetric indefinite":
        core[..., r - 1, r - 1] *= -1
    elif kind == "non-normal positive":
        core += np.triu(rng.uniform(0.5, 1.5, size=(*batch, r, r)), k=1)
    elif kind != "spd":
        raise ValueError(f"unknown target kind {kind!r} (one of {TARGET_KINDS})")
    return Q @ core @ np.swapaxes(Q, -1, -2)

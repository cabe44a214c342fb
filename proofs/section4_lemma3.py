"""Section IV of the supplement: the proof of Lemma 3, H_w = 2 Phi Phi^T at a global minimum.

Each labelled equation (P1-P3, S33-S49) and Lemma 3 is written below as printed, in the
paper's notation (U_k, X, Phi_k, vec, Kronecker products), as a function of a :class:`Point`
(weights, data and, where the equation talks about samples, the samples). The same encoding
runs in four arithmetics -- float64 NumPy batched over instances of one shape, exact
rationals (``Fraction``), mpmath at ``ctx.dps`` digits and sympy symbols -- and is compared
with ground truth computed another way:

- Hessians of the loss: central differences of the analytic gradient (float64), hyper-dual
  numbers (exact and mpmath), sympy's second derivatives of the symbolic loss;
- gradients: central differences of the loss, dual numbers, sympy's derivatives;
- Jacobians of maps that are linear in one layer (U_k, Phi_k): the map applied to the basis
  matrices of that layer;
- sample expectations (S37, S38): Gram matrices of the basis matrices applied to the samples;
- vec and Kronecker products (P1-P3): their entry-wise definitions by index arithmetic.

Central differences are exact here up to rounding: W_m ... W_1 is linear in every single
weight, so the loss is a quadratic polynomial in every single coordinate and its gradient and
the factors of (S42) have degree <= 2 in it; a central difference has no truncation error on
such polynomials.

Instances are shared by the claims of this section (seeded by the master seed and the section,
not by the check), so that each reference Hessian is computed once per run: float64 batches
from :func:`shape_plan`, small exact / mpmath minima from :func:`pool`, sympy shapes from
``SYMPY_SHAPES``; hypothesis draws ``proofs.strategies.specs()``. Steps that need w in Omega
(S43-S49, Lemma 3) are also evaluated at generic points, where they must fail.

Two printed slips make a statement false or meaningless when read literally and are recorded
as errata with their correction: the second line of (S33) multiplies by the vector w_k where
the matrix W_k is meant (ill-typed unless d_{k-1} = 1), and the range "1 <= l <= m" after (S45)
where l runs over the d_q d_{q-1} entries of w_q. Non-bold symbols in (S46)-(S48) for the bold
ones are typography only and are read as the objects they name.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from verify.arrays import chunk_sizes, to_backend, to_numpy
from verify.checks import check
from verify.context import Context, derive_seed
from verify.measure import to_jsonable
from verify.model import Measurement, Variant
from verify.search import search


def _number(x: float) -> float | str:
    """JSON has no inf/nan: counterexamples keep them as strings."""
    return to_jsonable(float(x))

from . import exact
from . import hessian_reference as hr
from . import lemma3
from . import linear_network as ln
from .instances import SIGMA_KINDS, Spec, realize
from .minima import GENERATORS
from .strategies import specs

Array = Any
Formula = Callable[..., Any]

# ---------------------------------------------------------------------------------------------
# Notation: the paper's symbols as functions (any arithmetic, any leading batch axes).
# ---------------------------------------------------------------------------------------------


def tr(M: Array) -> Array:
    return ln.namespace(M).matrix_transpose(M)


def col(M: Array) -> Array:
    """vec(M) as a column vector."""
    return ln.vec(M)[..., None]


def eye(n: int, like: Array) -> Array:
    return ln.eye(n, like)


def prod(W: Sequence[Array], first: int, last: int) -> Array:
    """prod_{i=first}^{last} W_i = W_last ... W_first (the identity when empty)."""
    return ln.product(list(W), first, last)


def per_sample(M: Array) -> Array:
    """A matrix that is the same for every sample, broadcast over the sample axis (-3)."""
    return M[..., None, :, :]


def E_hat(A: Array) -> Array:
    """The empirical mean over the sample axis (-3)."""
    return ln.namespace(A).sum(A, axis=-3) / A.shape[-3]


def square_norm(e: Array) -> Array:
    return tr(e) @ e


def U(W: Sequence[Array], k: int) -> Array:
    """(S34) U_k = (prod_{j<k} W_j)^T (x) prod_{i>k} W_i."""
    return ln.kron(tr(prod(W, 1, k - 1)), prod(W, k + 1, len(W)))


def X_of(x: Array, d_y: int) -> Array:
    """(S34) X = x (x) I, one per sample (x of shape (..., n, d_x, 1))."""
    return ln.kron(x, eye(d_y, x))


def rows(A: Array) -> Array:
    """Stacked row vectors (..., N, 1, c) -> the matrix (..., N, c)."""
    return A[..., 0, :]


def unit_matrices(n_rows: int, n_cols: int, like: Array) -> Array:
    """E_l = unvec(e_l) for l = 1..n_rows n_cols, stacked on axis 0."""
    return ln.unvec(eye(n_rows * n_cols, like), n_rows, n_cols)


# ---------------------------------------------------------------------------------------------
# Points: weights, data and samples in one arithmetic.
# ---------------------------------------------------------------------------------------------

MINIMUM, GENERIC, SAMPLES = "global minimum", "generic point", "samples"
N_SAMPLES = 4


def _expand(a: Any, axes: int = 1) -> Any:
    """A new broadcast axis before the last ``1 + axes`` axes: the matrix axes (axes=1), or the
    sample and matrix axes of samples (axes=2). None and scalars pass unchanged."""
    if a is None or not hasattr(a, "ndim") or a.ndim < 2:
        return a
    index = (Ellipsis, None) + (slice(None),) * (1 + axes)
    return a[index]


@dataclass(frozen=True, eq=False)
class Point:
    """Weights W_1..W_m, the data and (optionally) samples x, y of shape (..., n, d, 1).

    ``kind`` is the arithmetic: float, exact, mpmath or sympy. ``key`` identifies the point
    for caching references; ``replay`` is what a reader needs to rebuild it; ``symbols`` (sympy)
    are the weights in the order of w and ``at_minimum`` the substitution Sigma_yx := W Sigma_x
    applied after differentiation.
    """

    W: tuple
    data: ln.Data
    kind: str
    key: tuple
    replay: Mapping[str, Any] = field(default_factory=dict)
    x: Any = None
    y: Any = None
    symbols: tuple = ()
    at_minimum: Mapping = field(default_factory=dict)

    @property
    def m(self) -> int:
        return len(self.W)

    @property
    def dims(self) -> tuple[int, ...]:
        return ln.widths(list(self.W))

    @property
    def Sx(self) -> Array:
        return self.data.Sigma_x

    @property
    def Syx(self) -> Array:
        return self.data.Sigma_yx

    @property
    def R(self) -> Array:
        """Sigma_x^{1/2}, the symmetric square root."""
        return self.data.Sigma_x_half

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.W[0].shape[:-2]) if self.kind == "float" else ()

    @property
    def d_y(self) -> int:
        return self.dims[-1]

    def I(self) -> Array:
        """The identity of size d_y, the I of (S34)-(S47)."""
        return eye(self.d_y, self.W[0])

    def w(self, q: int) -> Array:
        return col(self.W[q - 1])

    def expanded(self, W: Sequence[Array]) -> "Point":
        """The point with new weights ``W`` that carry one more batch axis (-3) than the
        data and samples, which are broadcast to it."""
        d = self.data
        data = ln.Data(*(_expand(a) for a in (d.Sigma_x, d.Sigma_yx, d.T, d.Sigma_x_half)),
                       d.y2[..., None] if getattr(d.y2, "ndim", 0) else d.y2)
        return replace(self, W=tuple(W), data=data, x=_expand(self.x, 2), y=_expand(self.y, 2))

    def _with_layer(self, q: int, layer: Array) -> "Point":
        W = [_expand(M) for M in self.W]
        W[q - 1] = layer
        return self.expanded(W)

    def layer_basis(self, q: int) -> Array:
        d = self.dims
        return unit_matrices(d[q], d[q - 1], self.W[q - 1])

    def d(self, f: Callable[["Point"], Array], q: int) -> Array:
        """d f / d w_{q,l} for every entry l of w_q, stacked on a new axis -3, in the
        denominator layout of the supplement (footnote 2: laid out according to f^T)."""
        if self.kind == "sympy":
            value = f(self)
            layer = self.symbols[self._offset(q):self._offset(q + 1)]
            diff = [np.vectorize(lambda e, s=s: sp.diff(e, s), otypes=[object])(value) for s in layer]
            return tr(np.stack(diff, axis=-3))
        h = 2.0 ** -8 if self.kind == "float" else 1  # any step is exact: degree <= 2 in w_{q,l}
        E = self.layer_basis(q) * h
        base = _expand(self.W[q - 1])
        plus, minus = f(self._with_layer(q, base + E)), f(self._with_layer(q, base - E))
        out = tr((plus - minus) / (2 * h))
        shape = np.broadcast_shapes(out.shape, (E.shape[0], 1, 1))  # f may not depend on W_q
        return ln.namespace(out).broadcast_to(out, shape)

    def with_layer_basis(self, q: int) -> "Point":
        """The point with W_q replaced by each basis matrix E_l (on a new axis -3)."""
        return self._with_layer(q, self.layer_basis(q))

    def _offset(self, q: int) -> int:
        d = self.dims
        return sum(d[i] * d[i - 1] for i in range(1, q))

    def inv(self, M: Array) -> Array:
        if self.kind == "float":
            return ln.namespace(M).linalg.inv(M)
        if self.kind == "sympy":
            return np.array(sp.Matrix(M.tolist()).inv().tolist(), dtype=object)
        return exact.inverse(M)


def perturbed(W: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A generic point near the minimum: each layer moved by half its RMS size (plus 0.1)."""
    out = []
    for M in W:
        size = np.sqrt(np.mean(M**2, axis=(-2, -1), keepdims=True)) + 0.1
        out.append(M + 0.5 * size * rng.standard_normal(M.shape))
    return out


def draw_samples(rng: np.random.Generator, data: ln.Data, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples x (Gaussian) and y = T x + noise, shaped (..., n, d, 1)."""
    batch = data.T.shape[:-2]
    x = rng.standard_normal((*batch, n, data.d_x, 1))
    y = data.T[..., None, :, :] @ x + 0.3 * rng.standard_normal((*batch, n, data.d_y, 1))
    return x, y


def sample_data(x: Array, y: Array) -> ln.Data:
    """The empirical moments of samples: Sigma_x = E^[x x^T], Sigma_yx = E^[y x^T], E^||y||^2."""
    return ln.Data(E_hat(x @ tr(x)), E_hat(y @ tr(x)), None, None, E_hat(square_norm(y))[..., 0, 0])


def _domain_rng(spec: Spec, domain: str) -> np.random.Generator:
    return np.random.default_rng([spec.seed, 1 + (MINIMUM, GENERIC, SAMPLES).index(domain)])


def float_arrays(spec: Spec, batch: int | None, domain: str) -> tuple[list, ln.Data, Any, Any]:
    """Float64 weights, data (and samples) of one spec in one domain."""
    W, data = realize(spec, batch)
    x = y = None
    if domain != MINIMUM:
        rng = _domain_rng(spec, domain)
        W = perturbed(W, rng)
        if domain == SAMPLES:
            x, y = draw_samples(rng, data, N_SAMPLES)
    return W, data, x, y


def float_point(spec: Spec, batch: int | None, domain: str, xp: Any = None,
                rows: tuple[int, int] | None = None) -> Point:
    """The spec's float64 instances, drawn on the host; ``rows`` (start, stop) keeps a chunk of the
    batch and ``xp`` moves it to that Array-API namespace (NumPy's arrays stay as they are without)."""
    W, data, x, y = float_arrays(spec, batch, domain)
    if rows is not None:
        cut = slice(*rows)
        W, x, y = [M[cut] for M in W], _rows(x, cut), _rows(y, cut)
        data = ln.Data(*(_rows(a, cut) for a in (data.Sigma_x, data.Sigma_yx, data.T, data.Sigma_x_half, data.y2)))
    if xp is not None:
        W, x, y = to_backend(xp, W), to_backend(xp, x), to_backend(xp, y)
        data = ln.Data(*(to_backend(xp, a) for a in (data.Sigma_x, data.Sigma_yx, data.T, data.Sigma_x_half,
                                                      data.y2)))
    if domain == SAMPLES:
        data = sample_data(x, y)
    replay = {"spec": spec.as_dict(), "batch": batch, "domain": domain}
    if rows is not None:
        replay["rows"] = list(rows)  # the index of an instance counts from rows[0]
    where = getattr(xp, "__name__", "numpy")
    return Point(tuple(W), data, "float", ("float", spec, batch, domain, rows, where), replay, x, y)


def _rows(a: Any, cut: slice) -> Any:
    return a[cut] if a is not None else None


def numbers_per_instance(spec: Spec) -> int:
    """A bound on the float64 numbers one instance needs at once: the Hessian and the (S42) derivative
    hold about N^2 d_x d_y numbers (N weights); the sample Gram matrices (d_x d_y)^2 per sample."""
    dims = spec.dims
    n_weights = sum(a * b for a, b in zip(dims, dims[1:]))
    d_xy = dims[0] * dims[-1]
    return n_weights * n_weights * max(d_xy, 4) + N_SAMPLES * d_xy * d_xy


@lru_cache(maxsize=None)
def high_precision_point(spec: Spec, domain: str, kind: str, dps: int) -> Point:
    """The spec's float instance converted to Fractions (exact) or mpf (``dps`` digits); at a
    minimum the data is rebuilt from T := W_m...W_1 in that arithmetic, so the point is an
    exact global minimum there (a generic point keeps that data and moves the weights)."""
    with mpmath.workdps(dps):
        to = np.vectorize(Fraction if kind == "exact" else mpmath.mpf, otypes=[object])
        W_min, data, _, _ = float_arrays(spec, None, MINIMUM)
        R = to(data.Sigma_x_half)
        R = (R + tr(R)) / 2
        exact_min = [to(M) for M in W_min]
        data = ln.from_target(ln.end_to_end(exact_min), R)
        W = exact_min
        x = y = None
        if domain != MINIMUM:
            W_f, _, x_f, y_f = float_arrays(spec, None, domain)
            W = [to(M) for M in W_f]
            if domain == SAMPLES:
                x, y = to(x_f), to(y_f)
                data = sample_data(x, y)
    replay = {"spec": spec.as_dict(), "domain": domain, "arithmetic": kind}
    return Point(tuple(W), data, kind, (kind, spec, domain, dps), replay, x, y)


@lru_cache(maxsize=None)
def sympy_point(dims: tuple[int, ...], domain: str) -> Point:
    """Symbolic weights; Sigma_x = R^2 with R symmetric (so R is its square root), Sigma_yx free
    and, at a minimum, replaced by W_m...W_1 R^2 after differentiation; or two symbolic samples."""
    W = []
    for k in range(1, len(dims)):
        names = [[f"W{k}_{i}{j}" for j in range(dims[k - 1])] for i in range(dims[k])]
        W.append(np.array([[sp.Symbol(s, real=True) for s in row] for row in names], dtype=object))
    symbols = tuple(ln.flatten(W).tolist())
    d_x, d_y = dims[0], dims[-1]
    x = y = None
    subs: dict = {}
    if domain == SAMPLES:
        x = np.array([[[sp.Symbol(f"x{s}_{i}", real=True)] for i in range(d_x)] for s in range(2)], dtype=object)
        y = np.array([[[sp.Symbol(f"y{s}_{i}", real=True)] for i in range(d_y)] for s in range(2)], dtype=object)
        data = sample_data(x, y)
    else:
        R = np.array([[sp.Symbol(f"r{min(i, j)}{max(i, j)}", real=True) for j in range(d_x)] for i in range(d_x)],
                     dtype=object)
        Syx = np.array([[sp.Symbol(f"c{i}{j}", real=True) for j in range(d_x)] for i in range(d_y)], dtype=object)
        data = ln.Data(R @ R, Syx, None, R, 0)
        if domain == MINIMUM:
            subs = dict(zip(Syx.ravel().tolist(), (ln.end_to_end(W) @ R @ R).ravel().tolist()))
    replay = {"dims": list(dims), "domain": domain, "arithmetic": "sympy"}
    return Point(tuple(W), data, "sympy", ("sympy", dims, domain), replay, x, y, symbols, subs)


# ---------------------------------------------------------------------------------------------
# Ground truth computed without the formulas of Section IV.
# ---------------------------------------------------------------------------------------------


def sample_loss(p: Point) -> Array:
    """E^||y - W_m(...(W_1 x))||^2 by a forward pass through the layers, shape (..., 1, 1)."""
    z = p.x
    for M in p.W:
        z = per_sample(M) @ z
    return E_hat(square_norm(p.y - z))


def moment_loss(p: Point) -> Array:
    return ln.loss(list(p.W), p.data)


def _scalar(v: Any) -> Any:
    v = np.asarray(v, dtype=object) if not isinstance(v, np.ndarray) else v
    return v.reshape(-1)[0] if v.dtype == object else v


def _blocks(flat: Array, p: Point) -> list[Array]:
    """Split a gradient (..., N) into per-layer columns (..., N_k, 1)."""
    d = p.dims
    out, start = [], 0
    for k in range(1, p.m + 1):
        size = d[k] * d[k - 1]
        out.append(flat[..., start:start + size, None])
        start += size
    return out


def gradient_reference(loss: Callable[[Point], Array], p: Point) -> list[Array]:
    """The gradient of ``loss`` w.r.t. each w_k (columns): central differences of the loss
    (float64, step 1e-3, exact on a quadratic up to rounding), dual numbers (exact, mpmath) or
    sympy's derivatives of the symbolic loss."""
    w0 = ln.flatten(list(p.W))
    n = w0.shape[-1]
    if p.kind == "sympy":
        L = sp.sympify(_scalar(loss(p)))
        g = np.array([sp.diff(L, s) for s in p.symbols], dtype=object)
    elif p.kind == "float":
        h = 1e-3
        xp = ln.namespace(w0)
        steps = h * ln.eye(n, w0)                                   # every coordinate at once, on axis -2
        f = [xp.reshape(loss(p.expanded(ln.unflatten(w0[..., None, :] + s, p.dims))), (*p.batch, n))
             for s in (steps, -steps)]
        g = (f[0] - f[1]) / (2 * h)
    else:
        vals = []
        zero = w0[0] * 0  # parts in the field of the weights, so that sample means stay exact
        for i in range(n):
            w = np.array([hr.HyperDual(v, zero + int(j == i), zero, zero) for j, v in enumerate(w0)], dtype=object)
            value = _scalar(loss(replace(p, W=tuple(ln.unflatten(w, p.dims)))))
            vals.append(value.b if isinstance(value, hr.HyperDual) else 0)
        g = np.array(vals, dtype=object)
    return _blocks(g, p)


def _sympy_hessian(p: Point) -> np.ndarray:
    L = sp.sympify(_scalar(moment_loss(p)))
    grads = [sp.diff(L, s) for s in p.symbols]
    n = len(p.symbols)
    H = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = sp.diff(grads[i], p.symbols[j])
    return H


def hessian_reference(p: Point) -> Array:
    """The Hessian of the loss: central differences of the analytic gradient (float64),
    hyper-dual numbers (exact, mpmath) or sympy's second derivatives; cached per point."""
    return REFERENCES.get(_hessian, p)


def _hessian(p: Point) -> Array:
    if p.kind == "float":
        return hr.finite_difference_hessian(list(p.W), p.data)
    if p.kind == "sympy":
        return _sympy_hessian(p)
    return hr.hyperdual_hessian(list(p.W), p.data)


def hessian_blocks(p: Point, H: Array) -> dict[tuple[int, int], Array]:
    d = p.dims
    offsets = [0, *itertools.accumulate(d[k] * d[k - 1] for k in range(1, p.m + 1))]
    return {(q, k): H[..., offsets[q - 1]:offsets[q], offsets[k - 1]:offsets[k]]
            for q in range(1, p.m + 1) for k in range(1, p.m + 1)}


def linear_jacobian(f: Callable[[Point], Array], p: Point, k: int) -> Array:
    """d vec(f) / d w_k^T for f linear in W_k: column l is vec(f) at W_k = E_l."""
    return tr(ln.vec(f(p.with_layer_basis(k))))


def entries(M: Array, i: np.ndarray, j: np.ndarray) -> Array:
    """M[..., i, j] for integer index arrays i, j of one shape (gathered from the row-major entries,
    which every Array-API namespace can do)."""
    xp = ln.namespace(M)
    r, c = M.shape[-2:]
    flat = xp.reshape(M, (*M.shape[:-2], r * c))
    picked = xp.take(flat, xp.asarray(np.ravel(i * c + j)), axis=-1)
    return xp.reshape(picked, (*M.shape[:-2], *np.shape(i)))


def index_vec(M: Array) -> Array:
    """vec by its definition, v[j r + i] = M[i, j], as a column."""
    r, c = M.shape[-2:]
    idx = np.arange(r * c)
    return entries(M, idx % r, idx // r)[..., None]


def index_kron(A: Array, B: Array) -> Array:
    """The Kronecker product by its definition, K[i p + k, j q + l] = A[i, j] B[k, l]."""
    (a0, a1), (b0, b1) = A.shape[-2:], B.shape[-2:]
    r, c = np.arange(a0 * b0)[:, None], np.arange(a1 * b1)[None, :]
    return entries(A, r // b0 + 0 * c, c // b1 + 0 * r) * entries(B, r % b0 + 0 * c, c % b1 + 0 * r)


# ---------------------------------------------------------------------------------------------
# Residuals and the shared comparison loop.
# ---------------------------------------------------------------------------------------------

FD_TOL = 1e-6
FD_REASON = ("relative to the largest reference entry; the reference is a central difference (step 1e-5 "
             "for the Hessian, 1e-3 for the gradient) which has no truncation error (the loss is quadratic "
             "in each single weight), so only cancellation remains, ~eps |grad l| / h ~ 1e-11 relative "
             "(observed <= 3.4e-10 over 1.2e5 instances); 1e-6 leaves room for ill-conditioned random (S104) "
             "factors and cond(Sigma_x) up to 1e6")
ALGEBRA_TOL = 1e-9
ALGEBRA_REASON = ("relative to the largest reference entry; both sides are products of up to 6 layers, "
                  "Kronecker products and sample means in float64: rounding ~1e-15 per operation, amplified "
                  "by ill-conditioned random (S104) factors (observed < 1e-11)")
OFF_MINIMUM_TOL = 1e-8  # a formula "fails" off the minimum when it misses by more than this (relative)
EXACT_REASON = "exact rational arithmetic: the two sides must agree exactly"
SYMPY_REASON = "symbolic identity: the number of entries whose difference does not cancel"


def mpmath_tol(ctx: Context) -> tuple[float, str]:
    return 10.0 ** -(ctx.dps - 10), (f"mpmath at {ctx.dps} digits: rounding ~10^-{ctx.dps} relative, "
                                      f"10 digits left for growth through products and cancellation")


def _on_host(a: Array) -> bool:
    """Object arrays (exact, mpmath, sympy) and plain numbers are handled by NumPy on the host."""
    return not hasattr(a, "shape") or (isinstance(a, np.ndarray) and a.dtype == object)


def _max_abs(a: Array, batch_ndim: int = 0) -> np.ndarray:
    """max |a| over every axis after the first ``batch_ndim`` ones, as host float64: a backend array is
    reduced where it lives and only the per-instance maxima come back."""
    if _on_host(a):
        a = np.asarray(a)
        return np.asarray(np.max(np.abs(a), axis=tuple(range(batch_ndim, a.ndim))), dtype=float)
    xp = ln.namespace(a)
    top = xp.max(xp.abs(a), axis=tuple(range(batch_ndim, a.ndim)))
    return np.asarray(top if isinstance(top, (np.ndarray, np.generic)) else to_numpy(top), dtype=float)


def _batched(a: Array, batch: tuple[int, ...]) -> Array:
    """``a`` with the batch axes in front (an expression that does not depend on the instance,
    such as an empty product = I, comes out unbatched)."""
    if _on_host(a):
        a = np.asarray(a)
    if a.ndim >= len(batch) + 2 and a.shape[:len(batch)] == batch:
        return a
    return (np if _on_host(a) else ln.namespace(a)).broadcast_to(a, batch + a.shape)


def numeric_residuals(values: Sequence[Array], truths: Sequence[Array], batch: tuple[int, ...] = (),
                      scale: Array | None = None) -> np.ndarray:
    """Per instance: max |value - truth| / max |truth| (or / scale) over all the pairs;
    inf where the formula does not even produce the reference's shapes."""
    values = [_batched(v, batch) for v in values]
    truths = [_batched(t, batch) for t in truths]
    if len(values) != len(truths) or any(v.shape != t.shape for v, t in zip(values, truths)):
        return np.array([np.inf])
    n = len(batch)
    err = np.max(np.stack([_max_abs(v - t, n) for v, t in zip(values, truths)]), axis=0)
    ref = scale if scale is not None else np.max(np.stack([_max_abs(t, n) for t in truths]), axis=0)
    return np.atleast_1d(err / np.maximum(np.asarray(ref, dtype=float), 1e-300))


def _is_zero(e: Any) -> bool:
    e = sp.sympify(e)
    return sp.expand(e) == 0 or sp.cancel(sp.together(e)) == 0


def symbolic_residual(values: Sequence[Array], truths: Sequence[Array], subs: Mapping) -> tuple[float, Any]:
    """The number of entries whose difference is not identically zero, and the first one."""
    if len(values) != len(truths) or any(np.shape(v) != np.shape(t) for v, t in zip(values, truths)):
        return math.inf, "shapes differ"
    bad, first = 0, None
    for v, t in zip(values, truths):
        for e in np.ravel(v - t):
            e = sp.sympify(e).xreplace(subs) if subs else e
            if not _is_zero(e):
                bad += 1
                first = first if first is not None else str(sp.factor(e))[:300]
    return float(bad), first


@dataclass(frozen=True)
class Comparison:
    """How one claim is tested: the formula applied at a point vs. ground truth at that point."""

    label: str
    printed: Formula
    mutants: Mapping[str, Formula]
    evaluate: Callable[[Formula, Point], list]
    reference: Callable[[Point], list]
    domain: str
    what: str
    algebraic: bool = True
    max_weights: float = math.inf  # largest network in the mpmath pool (cost of this claim's formula)
    scale: Callable[[Point], Array] | None = None
    corrected: Variant | None = None
    min_depth: int = 1


class ReferenceCache:
    """Reference values by (comparison, point key): every variant of a check (printed,
    correction, mutants) sees the same instances, so ground truth is computed once; bounded in
    bytes so that the thorough profile recomputes instead of exhausting memory."""

    def __init__(self, budget_bytes: int = 1 << 29) -> None:
        self.budget, self.used, self.store = budget_bytes, 0, {}

    def get(self, fn: Callable[[Point], list], p: Point) -> list:
        key = (fn, p.key)
        if key in self.store:
            return self.store[key]
        value = fn(p)
        size = sum(8 * math.prod(v.shape) for v in _as_list(value) if hasattr(v, "shape"))
        if self.used + size <= self.budget:
            self.store[key], self.used = value, self.used + size
        return value


REFERENCES = ReferenceCache()


def _residuals_at(c: Comparison, formula: Formula, p: Point) -> tuple[np.ndarray, str | None]:
    truths = REFERENCES.get(c.reference, p)
    try:
        values = c.evaluate(formula, p)
    except (ValueError, ArithmeticError) as exc:  # an ill-typed expression: shapes do not chain
        return np.array([np.inf]), f"{type(exc).__name__}: {exc}"
    scale = c.scale(p) if c.scale is not None else None
    return numeric_residuals(values, truths, p.batch, scale), None


def measure_points(points: Iterator[Point], c: Comparison, formula: Formula, tol: float, reason: str,
                   invert: bool = False) -> Measurement:
    """The worst residual over points (each possibly a batch). ``invert``: the formula must MISS
    the reference by more than ``tol`` at every point (a step that needs w in Omega). The first
    point that decides the outcome ends the loop: a counterexample is kept, the rest is not needed."""
    all_res, shapes, groups = [], [], []
    for p in points:
        res, error = _residuals_at(c, formula, p)
        res = np.broadcast_to(res, (int(np.prod(p.batch)),))
        groups.append((sum(len(r) for r in all_res), p.replay, error))
        all_res.append(res)
        shapes.append(_shape_label(p))
        if (np.any(res <= tol) if invert else not np.all(res <= tol)):
            break
    res = np.concatenate(all_res)

    def instance(i: int) -> dict:
        start, replay, error = max(g for g in groups if g[0] <= i)
        out = dict(replay, index=int(i - start), residual=_number(res[i]))
        if error:
            out["error"] = error
        return to_jsonable(out)

    if invert:
        worst = int(np.argmin(res))
        holds = bool(np.all(res > tol))
        return Measurement(residual=float(res[worst]), tolerance=tol, tolerance_reason=reason,
                           instances=int(res.size), shapes=sorted(set(shapes)), holds=holds,
                           counterexample=None if holds else instance(worst))
    bad = ~np.isfinite(res)
    worst = int(np.argmax(np.where(bad, np.inf, res)))
    failing = bool(bad.any() or res[worst] > tol)
    return Measurement(residual=float(res[worst]), tolerance=tol, tolerance_reason=reason,
                       instances=int(res.size), shapes=sorted(set(shapes)),
                       counterexample=instance(worst) if failing else None)


def _shape_label(p: Point) -> str:
    spec = p.replay.get("spec")
    if spec:
        return Spec(**{**spec, "dims": tuple(spec["dims"])}).label()
    return "dims=" + "x".join(map(str, p.dims))


# ---------------------------------------------------------------------------------------------
# Instances: which points each method visits.
# ---------------------------------------------------------------------------------------------

MAX_WIDTH, MAX_DEPTH = 6, 6
MAX_WEIGHTS = 150  # N per network outside the thorough profile: the cost of (S42) grows like N^2 d_x d_y


def shape_plan(ctx: Context) -> tuple[list[Spec], int]:
    """Float64 specs for the whole section: every (depth 1-6, Sigma_x kind) pair and every
    (depth, kind of minimum) pair at least twice, random widths 1-6 (a quarter of them square,
    so that transposition mutants fail numerically and not only by shape), random rank 1..min
    width; the batch size gives >= ctx.profile.instances instances even without depth 1.

    Seeded by (seed, section) rather than by check: the claims of this section share these
    instances, so their float64 reference Hessians are computed once per run."""
    rng = np.random.default_rng(derive_seed(ctx.seed, "section IV float plan"))
    kinds = tuple(GENERATORS)
    n_shapes = max(48, math.ceil(ctx.profile.instances / 25))
    batch = math.ceil(ctx.profile.instances / (n_shapes * (MAX_DEPTH - 1) // MAX_DEPTH))
    max_weights = math.inf if ctx.profile.name == "thorough" else MAX_WEIGHTS
    plan = []
    for i in range(n_shapes):
        m, sigma = 1 + i % MAX_DEPTH, SIGMA_KINDS[(i // MAX_DEPTH) % len(SIGMA_KINDS)]
        minimum = kinds[(i + i // (MAX_DEPTH * len(SIGMA_KINDS))) % len(kinds)]
        dims = _draw_widths(rng, m)
        while sum(a * b for a, b in zip(dims, dims[1:])) > max_weights:
            dims = _draw_widths(rng, m)
        rank = int(rng.integers(1, min(dims) + 1))
        plan.append(Spec(dims, rank, sigma, minimum, int(rng.integers(2**32))))
    return plan, batch


def _draw_widths(rng: np.random.Generator, m: int) -> tuple[int, ...]:
    if rng.random() < 0.25:
        return (int(rng.integers(1, MAX_WIDTH + 1)),) * (m + 1)
    return tuple(int(d) for d in rng.integers(1, MAX_WIDTH + 1, size=m + 1))


def float_points(ctx: Context, domain: str, min_depth: int = 1) -> Iterator[Point]:
    """The plan's float64 points on the run's array backend ``ctx.xp``, one shape at a time; a batch
    too large for one chunk (``verify.arrays.CHUNK_NUMBERS``) comes in several."""
    plan, batch = shape_plan(ctx)
    for spec in plan:
        if spec.depth < min_depth:
            continue
        sizes = list(chunk_sizes(batch, numbers_per_instance(spec)))
        if len(sizes) == 1:
            yield float_point(spec, batch, domain, ctx.xp)
            continue
        start = 0
        for size in sizes:
            yield float_point(spec, batch, domain, ctx.xp, (start, start + size))
            start += size


EXACT_POOL = (  # tiny shapes: m = 1..3, rectangular, bottlenecks, rank-deficient T
    Spec((2, 3), 2, "spd", "canonical"),
    Spec((1, 1, 1), 1, "scaled", "random (S104)"),
    Spec((2, 2, 2), 1, "spd", "rotated flattest"),
    Spec((3, 1, 2), 1, "ill-conditioned", "canonical"),
    Spec((2, 3, 2), 2, "identity", "rebalanced flattest"),
    Spec((2, 2, 1, 3), 1, "spd", "random (S104)"),
    Spec((2, 3, 2, 2), 2, "scaled", "rotated flattest"),
)
MPMATH_POOL = (
    Spec((3, 3, 3, 3), 2, "ill-conditioned", "random (S104)"),
    Spec((2, 3, 1, 3), 1, "spd", "rebalanced flattest"),
    Spec((3, 2, 3), 2, "scaled", "canonical"),
)
SYMPY_SHAPES = ((1, 1), (2, 2), (1, 1, 1), (1, 2, 1), (2, 1, 2), (2, 2, 2), (1, 1, 1, 1))


def pool(ctx: Context, kind: str, domain: str, min_depth: int = 1, max_weights: float = math.inf) -> Iterator[Point]:
    """Exact or mpmath points: the fixed tiny shapes above, seeds derived from the master seed
    only, so that their (expensive) hyper-dual references are shared by the whole section."""
    shapes = EXACT_POOL if kind == "exact" else MPMATH_POOL
    for i, spec in enumerate(shapes):
        if spec.depth >= min_depth and sum(a * b for a, b in zip(spec.dims, spec.dims[1:])) <= max_weights:
            seeded = replace(spec, seed=derive_seed(ctx.seed, "section IV", kind, i) % 2**32)
            yield high_precision_point(seeded, domain, kind, ctx.dps)


# ---------------------------------------------------------------------------------------------
# Check builders: one per method, all sharing the comparison above.
# ---------------------------------------------------------------------------------------------


BACKEND_NOTE = (" Instances are drawn on the host (NumPy generators); formula, reference and residuals are "
                "computed on the run's array backend, and only the per-instance residuals come back.")


def _register(c: Comparison, method: str, name: str, doc: str, run: Callable, mutants: Mapping | None = None,
              corrected: Variant | None = None) -> None:
    on_backend = method == "float"
    run.__doc__ = doc + (BACKEND_NOTE if on_backend else "")
    run.__name__ = name
    check(c.label, method=method, printed=c.printed, mutants=dict(mutants or c.mutants), name=name,
          corrected=corrected if corrected is not None else c.corrected, backend=on_backend)(run)


def add_float_check(c: Comparison, domain: str | None = None, name: str = "float64_batched",
                    mutants: Mapping | None = None) -> None:
    domain = domain or c.domain
    tol, reason = (ALGEBRA_TOL, ALGEBRA_REASON) if c.algebraic else (FD_TOL, FD_REASON)

    def run(ctx: Context, formula: Formula) -> Measurement:
        return measure_points(float_points(ctx, domain, c.min_depth), c, formula, tol, reason)

    _register(c, "float", name, f"{c.what} At >= ctx.profile.instances float64 instances ({domain}), batched "
              "by shape over depths 1-6, widths 1-6, every rank, Sigma_x kind and kind of minimum.", run, mutants)


def add_high_precision_check(c: Comparison, kind: str, domain: str | None = None, mutants: Mapping | None = None,
                             name: str | None = None) -> None:
    domain = domain or c.domain

    def run(ctx: Context, formula: Formula) -> Measurement:
        if kind == "exact":
            return measure_points(pool(ctx, kind, domain, c.min_depth), c, formula, 0.0, EXACT_REASON)
        tol, reason = mpmath_tol(ctx)
        with mpmath.workdps(ctx.dps):
            return measure_points(pool(ctx, kind, domain, c.min_depth, c.max_weights), c, formula, tol, reason)

    label = "rationals (Fraction)" if kind == "exact" else "mpmath at ctx.dps digits"
    _register(c, "exact" if kind == "exact" else "mpmath", name or f"{kind}_{domain.replace(' ', '_')}",
              f"{c.what} In {label} at small shapes (m = 1..3, widths <= 3, rectangular, rank-deficient T), "
              f"{domain}.",
              run, mutants)


def add_sympy_check(c: Comparison) -> None:
    domain = c.domain

    def run(ctx: Context, formula: Formula) -> Measurement:
        worst, shapes, example = 0.0, [], None
        for dims in SYMPY_SHAPES:
            if len(dims) - 1 < c.min_depth:
                continue
            p = sympy_point(dims, domain)
            truths = REFERENCES.get(c.reference, p)
            try:
                values = c.evaluate(formula, p)
            except (ValueError, ArithmeticError) as exc:
                bad, first = math.inf, f"{type(exc).__name__}: {exc}"
            else:
                bad, first = symbolic_residual(values, truths, p.at_minimum)
            shapes.append(_shape_label(p))
            if bad > worst:
                worst, example = bad, {"dims": list(dims), "domain": domain, "difference": first}
                break
        return Measurement(residual=worst, tolerance=0.0, tolerance_reason=SYMPY_REASON, instances=len(shapes),
                           shapes=shapes, counterexample=example)

    what = {MINIMUM: "with symbolic weights, symbolic symmetric R = Sigma_x^{1/2} and Sigma_yx := W R^2 "
                     "substituted after differentiation (every global minimum of these shapes)",
            GENERIC: "with symbolic weights, symbolic symmetric R = Sigma_x^{1/2} and free symbolic Sigma_yx "
                     "(every point)",
            SAMPLES: "with symbolic weights and two symbolic samples (x, y): every point and two-sample data "
                     "set; the sample terms are per-sample sums, so any number of samples"}[domain]
    _register(c, "sympy", "sympy_identity_tiny_shapes",
              f"{c.what} As a symbolic identity {what}, for the shapes {list(SYMPY_SHAPES)}.", run)


def add_hypothesis_check(c: Comparison) -> None:
    tol, reason = (ALGEBRA_TOL, ALGEBRA_REASON) if c.algebraic else (FD_TOL, FD_REASON)

    def run(ctx: Context, formula: Formula) -> Measurement:
        def residual(spec: Spec) -> float:
            return float(np.max(_residuals_at(c, formula, float_point(spec, None, c.domain))[0]))

        shared = replace(ctx, check_id="section IV hypothesis")  # same examples for every claim: shared references
        return search(shared, specs(), residual, tol, reason, shape=lambda s: s.label())

    _register(c, "hypothesis", "hypothesis_specs",
              f"{c.what} Hypothesis searches proofs.strategies.specs() (shapes, rank, Sigma_x kind, kind of "
              f"minimum, seed; {c.domain}) for a counterexample and shrinks it.", run)


def add_off_minimum_check(c: Comparison, everywhere: Mapping[str, Formula]) -> None:
    """The at-minimum formula evaluated at generic points must MISS the truth (float64 and
    rationals): the evidence that the derivation used w in Omega. The negative control is a
    formula valid everywhere (e.g. the product rule (S42) with its residual term), which must not."""
    why = (f"inverted test: at every generic point the formula must differ from the truth by more than "
           f"{OFF_MINIMUM_TOL:g} relative, 30x the largest float64 reference error seen at minima (3.4e-10 over "
           "1.2e5 instances); the residual shown is the smallest such difference (the relative size of the "
           "missing term shrinks when one weight is small, so it has no positive floor)")
    doc = f"{c.what} Off the minimum, at generic points, where it must FAIL: the step needs w in Omega."
    if c.min_depth > 1:
        doc += " For m = 1 the Hessian is constant and the step holds everywhere, so only m >= 2."

    def run_float(ctx: Context, formula: Formula) -> Measurement:
        return measure_points(float_points(ctx, GENERIC, c.min_depth), c, formula, OFF_MINIMUM_TOL, why,
                              invert=True)

    def run_exact(ctx: Context, formula: Formula) -> Measurement:
        return measure_points(pool(ctx, "exact", GENERIC, c.min_depth), c, formula, 0.0,
                              "inverted exact test: the difference must be nonzero at every generic point", invert=True)

    _register(c, "float", "fails_off_minimum_float64", doc, run_float, everywhere)
    _register(c, "exact", "fails_off_minimum_exact", doc + " In rationals.", run_exact, everywhere)


def add_standard_checks(c: Comparison) -> None:
    add_float_check(c)
    add_high_precision_check(c, "exact")
    add_high_precision_check(c, "mpmath")
    add_sympy_check(c)
    add_hypothesis_check(c)


# ---------------------------------------------------------------------------------------------
# P1-P3: properties of the Kronecker product.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KronProperty:
    label: str
    printed: Formula
    mutants: Mapping[str, Formula]
    reference: Callable[..., Array]
    shapes: Callable[[Sequence[int]], list[tuple[int, int]]]  # matrix shapes from n free sizes
    n_sizes: int
    what: str


def _random_matrices(rng: np.random.Generator, prop: KronProperty, sizes: Sequence[int], batch: tuple) -> list:
    return [rng.standard_normal((*batch, *s)) for s in prop.shapes(sizes)]


def _kron_residual(prop: KronProperty, formula: Formula, mats: Sequence[Array]) -> tuple[np.ndarray, str | None]:
    try:
        value = formula(*mats)
    except (ValueError, ArithmeticError) as exc:
        return np.array([np.inf]), f"{type(exc).__name__}: {exc}"
    return numeric_residuals([value], [prop.reference(*mats)], mats[0].shape[:-2]), None


def _kron_measure(results: list[tuple[np.ndarray, dict]], tol: float, reason: str) -> Measurement:
    res = np.concatenate([r for r, _ in results])
    starts = np.cumsum([0] + [len(r) for r, _ in results])
    bad = ~np.isfinite(res)
    worst = int(np.argmax(np.where(bad, np.inf, res)))
    group = int(np.searchsorted(starts, worst, side="right") - 1)
    failing = bool(bad.any() or res[worst] > tol)
    return Measurement(residual=float(res[worst]), tolerance=tol, tolerance_reason=reason, instances=int(res.size),
                       shapes=sorted({str(info["sizes"]) for _, info in results}),
                       counterexample=to_jsonable(dict(results[group][1], index=worst - int(starts[group])))
                       if failing else None)


def register_kron_property(prop: KronProperty) -> None:
    def run_float(ctx: Context, formula: Formula) -> Measurement:
        rng = ctx.rng("sizes")
        n_groups = 60
        batch = math.ceil(ctx.profile.instances / n_groups)
        out = []
        for g in range(n_groups):
            sizes = tuple(int(s) for s in rng.integers(1, 6, size=prop.n_sizes))
            if g % 4 == 0:
                sizes = (sizes[0],) * prop.n_sizes  # all square: transposition mutants fail numerically
            seed = int(rng.integers(2**32))
            mats = to_backend(ctx.xp, _random_matrices(np.random.default_rng(seed), prop, sizes, (batch,)))
            res, error = _kron_residual(prop, formula, mats)
            out.append((np.broadcast_to(res, (batch,)), {"sizes": sizes, "seed": seed, "batch": batch, "error": error}))
        return _kron_measure(out, ALGEBRA_TOL, ALGEBRA_REASON)

    def run_sympy(ctx: Context, formula: Formula) -> Measurement:
        top = 3 if prop.n_sizes <= 4 else 2
        checked = []
        for sizes in np.ndindex(*(top,) * prop.n_sizes):
            sizes = tuple(s + 1 for s in sizes)
            mats = [symbol_matrix("abcd"[n], s) for n, s in enumerate(prop.shapes(sizes))]
            try:
                values = [formula(*mats)]
            except (ValueError, ArithmeticError) as exc:
                bad, first = math.inf, f"{type(exc).__name__}: {exc}"
            else:
                bad, first = symbolic_residual(values, [prop.reference(*mats)], {})
            checked.append(sizes)
            if bad:
                return Measurement(residual=bad, tolerance=0.0, tolerance_reason=SYMPY_REASON, instances=len(checked),
                                   shapes=[str(s) for s in checked],
                                   counterexample={"sizes": list(sizes), "difference": first})
        return Measurement(residual=0.0, tolerance=0.0, tolerance_reason=SYMPY_REASON, instances=len(checked),
                           shapes=[f"all sizes in 1..{top}"])

    def run_mpmath(ctx: Context, formula: Formula) -> Measurement:
        tol, reason = mpmath_tol(ctx)
        rng = ctx.rng("mpmath sizes")
        out = []
        with mpmath.workdps(ctx.dps):
            to = np.vectorize(lambda v: mpmath.mpf(v) / 3, otypes=[object])  # 1/3: not a binary fraction
            for _ in range(12):
                sizes = tuple(int(s) for s in rng.integers(1, 5, size=prop.n_sizes))
                seed = int(rng.integers(2**32))
                mats = [to(M) for M in _random_matrices(np.random.default_rng(seed), prop, sizes, ())]
                res, error = _kron_residual(prop, formula, mats)
                out.append((res, {"sizes": sizes, "seed": seed, "error": error}))
        return _kron_measure(out, tol, reason)

    def run_hypothesis(ctx: Context, formula: Formula) -> Measurement:
        def residual(example: tuple) -> float:
            sizes, seed = example
            mats = _random_matrices(np.random.default_rng(seed), prop, sizes, ())
            return float(np.max(_kron_residual(prop, formula, mats)[0]))

        strategy = st.tuples(st.tuples(*[st.integers(1, 6)] * prop.n_sizes), st.integers(0, 2**32 - 1))
        return search(ctx, strategy, residual, ALGEBRA_TOL, ALGEBRA_REASON, shape=lambda e: str(e[0]))

    for method, name, run, doc in (
        ("sympy", "sympy_symbolic_entries", run_sympy, "with symbolic entries, for every combination of sizes"),
        ("float", "float64_batched", run_float, "on >= ctx.profile.instances random float64 matrices, sizes 1..5, "
                                                "drawn on the host and compared on the run's array backend"),
        ("mpmath", "mpmath", run_mpmath, "in mpmath at ctx.dps digits, random sizes 1..4"),
        ("hypothesis", "hypothesis_sizes", run_hypothesis, "hypothesis search over sizes 1..6 and seeds"),
    ):
        run.__doc__ = f"{prop.what} Checked {doc}."
        run.__name__ = name
        check(prop.label, method=method, printed=prop.printed, mutants=prop.mutants, name=name,
              backend=method == "float")(run)


def symbol_matrix(name: str, shape: tuple[int, int]) -> np.ndarray:
    return np.array([[sp.Symbol(f"{name}{i}{j}") for j in range(shape[1])] for i in range(shape[0])], dtype=object)


def row_major_vec(M: Array) -> Array:
    """vec stacking rows instead of columns: the wrong convention for (P1)."""
    return ln.namespace(M).reshape(M, (*M.shape[:-2], M.shape[-2] * M.shape[-1]))[..., None]


register_kron_property(KronProperty(
    "P1",
    printed=lambda M1, M2, M3: ln.kron(tr(M3), M1) @ col(M2),
    mutants={"M3 not transposed: (M3 (x) M1) vec(M2)": lambda M1, M2, M3: ln.kron(M3, M1) @ col(M2),
             "factors swapped: (M1 (x) M3^T) vec(M2)": lambda M1, M2, M3: ln.kron(M1, tr(M3)) @ col(M2),
             "row-major vec": lambda M1, M2, M3: ln.kron(tr(M3), M1) @ row_major_vec(M2)},
    reference=lambda M1, M2, M3: index_vec(M1 @ M2 @ M3),
    shapes=lambda s: [(s[0], s[1]), (s[1], s[2]), (s[2], s[3])], n_sizes=4,
    what="(P1) vec(M1 M2 M3) = (M3^T (x) M1) vec(M2): the right side (library kron and vec) vs the left side "
         "with vec taken entry-wise by its definition."))

register_kron_property(KronProperty(
    "P2",
    printed=lambda M1, M2: ln.kron(tr(M1), tr(M2)),
    mutants={"factors reversed: M2^T (x) M1^T": lambda M1, M2: ln.kron(tr(M2), tr(M1)),
             "only M1 transposed: M1^T (x) M2": lambda M1, M2: ln.kron(tr(M1), M2)},
    reference=lambda M1, M2: tr(index_kron(M1, M2)),
    shapes=lambda s: [(s[0], s[1]), (s[2], s[3])], n_sizes=4,
    what="(P2) (M1 (x) M2)^T = M1^T (x) M2^T: the right side (library kron) vs the transpose of the Kronecker "
         "product built entry-wise by its definition."))

register_kron_property(KronProperty(
    "P3",
    printed=lambda M1, M2, M3, M4: ln.kron(M1 @ M3, M2 @ M4),
    mutants={"pairs crossed: (M1 M4) (x) (M2 M3)": lambda M1, M2, M3, M4: ln.kron(M1 @ M4, M2 @ M3),
             "factor order swapped: (M2 M4) (x) (M1 M3)": lambda M1, M2, M3, M4: ln.kron(M2 @ M4, M1 @ M3)},
    reference=lambda M1, M2, M3, M4: index_kron(M1, M2) @ index_kron(M3, M4),
    shapes=lambda s: [(s[0], s[1]), (s[3], s[4]), (s[1], s[2]), (s[4], s[5])], n_sizes=6,
    what="(P3) (M1 (x) M2)(M3 (x) M4) = (M1 M3) (x) (M2 M4): the right side (library kron) vs the product of "
         "Kronecker products built entry-wise by their definition."))


# ---------------------------------------------------------------------------------------------
# S33-S38: the loss and its gradient in the variables w_k, on samples.
# ---------------------------------------------------------------------------------------------


def _s33_chain(p: Point, k: int, second_line_factor: Callable[[Point, int], Array], swap_line3: bool = False,
               untransposed_line5: bool = False) -> list[Array]:
    W, x, y, m = p.W, p.x, p.y, p.m
    A, B, I, w_k = prod(W, k + 1, m), prod(W, 1, k - 1), p.I(), p.w(k)
    Bx = per_sample(B) @ x
    line3 = ln.kron(tr(Bx), per_sample(A)) if not swap_line3 else ln.kron(per_sample(A), tr(Bx))
    first = tr(B) if not untransposed_line5 else B
    return [
        E_hat(square_norm(y - per_sample(prod(W, 1, m)) @ x)),
        E_hat(square_norm(y - per_sample(A @ second_line_factor(p, k)) @ Bx)),
        E_hat(square_norm(y - line3 @ per_sample(w_k))),
        E_hat(square_norm(y - ln.kron(tr(x) @ per_sample(tr(B)), per_sample(I @ A)) @ per_sample(w_k))),
        E_hat(square_norm(y - tr(ln.kron(x, I)) @ per_sample(ln.kron(first, A)) @ per_sample(w_k))),
    ]


def s33_printed(p: Point, k: int) -> list[Array]:
    """(S33) as printed: the second line multiplies by the VECTOR w_k = vec(W_k)."""
    return _s33_chain(p, k, lambda p, k: p.w(k))


def s33_corrected(p: Point, k: int) -> list[Array]:
    """(S33) with the matrix W_k in the second line."""
    return _s33_chain(p, k, lambda p, k: p.W[k - 1])


def _each_k(formula: Formula, p: Point) -> list:
    return [v for k in range(1, p.m + 1) for v in _as_list(formula(p, k))]


def _each_qk(formula: Formula, p: Point) -> list:
    return [v for q in range(1, p.m + 1) for k in range(1, p.m + 1) for v in _as_list(formula(p, q, k))]


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _repeat(n_per: int, per_k: Callable[[Point, int], Array]) -> Callable[[Point], list]:
    return lambda p: [per_k(p, k) for k in range(1, p.m + 1) for _ in range(n_per)]


S33 = Comparison(
    "S33", s33_printed,
    mutants={"Kronecker factors swapped in the third line (corrected chain)":
             lambda p, k: _s33_chain(p, k, lambda p, k: p.W[k - 1], swap_line3=True),
             "(prod_{j<k} W_j) not transposed in the last line (corrected chain)":
             lambda p, k: _s33_chain(p, k, lambda p, k: p.W[k - 1], untransposed_line5=True)},
    evaluate=_each_k, reference=_repeat(5, lambda p, k: sample_loss(p)), domain=SAMPLES,
    what=("Each of the five lines of (S33), for every k, evaluated on samples, vs the sample loss computed by a "
          "forward pass. As printed the second line multiplies prod_{i>k} W_i (d_m x d_k) by the vector w_k "
          "(d_k d_{k-1} entries): ill-typed unless d_{k-1} = 1; the matrix W_k is meant."),
    corrected=Variant(s33_corrected, reason="the second line prints the vector w_k = vec(W_k) where the matrix W_k "
                      "is meant; read literally the product (prod_{i>k} W_i) w_k (prod_{j<k} W_j x) is undefined "
                      "whenever d_{k-1} > 1",
                      text=r"\hat{\mathbb{E}}\left[\left\| y - \left(\prod_{i=k+1}^m \mathbf{W}_i\right) \mathbf{W}_k "
                           r"\left(\prod_{j=1}^{k-1} \mathbf{W}_j x\right)\right\|^2\right]"))


def s34_printed(p: Point, k: int) -> list[Array]:
    return [U(p.W, k), X_of(p.x, p.d_y)]


def s34_reference(p: Point, k: int) -> list[Array]:
    """U_k as the Jacobian of vec(W_m...W_1) w.r.t. w_k, and X as (the transpose of) the
    Jacobian of M -> M x w.r.t. vec(M): columns E_l x."""
    U_ref = linear_jacobian(lambda q: prod(q.W, 1, q.m), p, k)
    E = unit_matrices(p.d_y, p.dims[0], p.x)                      # (N, d_y, d_x)
    Ex = E @ p.x[..., None, :, :]                                   # (..., n, N, d_y, 1)
    return [U_ref, Ex[..., 0]]                                      # X has rows (l) = (E_l x)^T


S34 = Comparison(
    "S34", s34_printed,
    mutants={"first factor not transposed: (prod_{j<k} W_j) (x) prod_{i>k} W_i":
             lambda p, k: [ln.kron(prod(p.W, 1, k - 1), prod(p.W, k + 1, p.m)), X_of(p.x, p.d_y)],
             "factors swapped: prod_{i>k} W_i (x) (prod_{j<k} W_j)^T":
             lambda p, k: [ln.kron(prod(p.W, k + 1, p.m), tr(prod(p.W, 1, k - 1))), X_of(p.x, p.d_y)],
             "X = I (x) x": lambda p, k: [U(p.W, k), ln.kron(p.I(), p.x)]},
    evaluate=_each_k, reference=lambda p: [v for k in range(1, p.m + 1) for v in s34_reference(p, k)],
    domain=SAMPLES,
    what=("(S34) U_k and X as defined vs what they must be for (S35): U_k = d vec(W_m...W_1)/d w_k^T (the map "
          "applied to basis matrices E_l of layer k) and X^T = d(M x)/d vec(M)^T (columns E_l x)."))


def s35_printed(p: Point, k: int) -> Array:
    X = X_of(p.x, p.d_y)
    return E_hat(square_norm(p.y - tr(X) @ per_sample(U(p.W, k) @ p.w(k))))


S35 = Comparison(
    "S35", s35_printed,
    mutants={"X = I (x) x": lambda p, k: E_hat(
                 square_norm(p.y - tr(ln.kron(p.I(), p.x)) @ per_sample(U(p.W, k) @ p.w(k)))),
             "y + X^T U_k w_k (sign slip)": lambda p, k: E_hat(
                 square_norm(p.y + tr(X_of(p.x, p.d_y)) @ per_sample(U(p.W, k) @ p.w(k))))},
    evaluate=_each_k, reference=_repeat(1, lambda p, k: sample_loss(p)), domain=SAMPLES,
    what="(S35) E^||y - X^T U_k w_k||^2 on samples, for every k, vs the sample loss computed by a forward pass.")


def _s36(p: Point, k: int, two: int = 2, sign: int = -1, cross: Callable | None = None) -> list[Array]:
    X, Uk, w = X_of(p.x, p.d_y), U(p.W, k), p.w(k)
    residual = p.y - tr(X) @ per_sample(Uk @ w)
    Xy = cross(X, p.y) if cross else E_hat(X @ p.y)
    return [sign * two * E_hat(per_sample(tr(Uk)) @ X @ residual),
            two * tr(Uk) @ (E_hat(X @ tr(X)) @ Uk @ w - Xy)]


def s36_printed(p: Point, k: int) -> list[Array]:
    return _s36(p, k)


S36 = Comparison(
    "S36", s36_printed,
    mutants={"missing factor 2": lambda p, k: _s36(p, k, two=1),
             "+2 instead of -2 in the middle": lambda p, k: _s36(p, k, sign=1),
             "E^[X] E^[y] instead of E^[X y]": lambda p, k: _s36(p, k, cross=lambda X, y: E_hat(X) @ E_hat(y))},
    evaluate=_each_k, reference=lambda p: [g for g in gradient_reference(sample_loss, p) for _ in range(2)],
    domain=SAMPLES, algebraic=False,
    what=("Both printed forms of (S36), for every k, vs the gradient of the sample loss w.r.t. w_k (central "
          "differences / dual numbers / sympy derivatives of the forward-pass loss)."))


def _gram(p: Point) -> Array:
    """E^[<E_i x, E_j x>]: the matrix of the quadratic form vec(M) -> E^||M x||^2."""
    E = unit_matrices(p.d_y, p.dims[0], p.x)
    Ex = (E @ p.x[..., None, :, :])[..., 0]                         # (..., n, N, d_y)
    return E_hat(Ex @ tr(Ex))


def _s37(p: Point, outer: Callable[[Point], Array] | None = None, swap: bool = False) -> list[Array]:
    x, I = p.x, p.I()
    X = X_of(x, p.d_y)
    xxT = outer(p) if outer else E_hat(x @ tr(x))
    last = ln.kron(I, p.Sx) if swap else ln.kron(p.Sx, I)
    return [E_hat(X @ tr(X)), E_hat(ln.kron(x, I) @ tr(ln.kron(x, I))), E_hat(ln.kron(x @ tr(x), I)),
            ln.kron(xxT, I), last]


S37 = Comparison(
    "S37", lambda p: _s37(p),
    mutants={"I (x) Sigma_x (factors swapped)": lambda p: _s37(p, swap=True),
             "E^[x] E^[x]^T (x) I in the fourth expression":
             lambda p: _s37(p, outer=lambda p: E_hat(p.x) @ tr(E_hat(p.x)))},
    evaluate=lambda f, p: f(p), reference=lambda p: [_gram(p)] * 5, domain=SAMPLES,
    what=("Each expression of the chain (S37) vs the Gram matrix E^[<E_i x, E_j x>] of the basis matrices "
          "E_i = unvec(e_i) applied to the samples (the matrix of the form vec(M) -> E^||M x||^2)."))


def _s38(p: Point, vec_of: Callable[[Array, Array], Array] | None = None, last: Callable | None = None) -> list[Array]:
    x, y, I = p.x, p.y, p.I()
    X = X_of(x, p.d_y)
    vyx = vec_of(x, y) if vec_of else col(y @ tr(x))
    return [E_hat(X @ y), E_hat(ln.kron(x, I) @ y), E_hat(vyx), last(p) if last else col(p.Syx)]


S38 = Comparison(
    "S38", lambda p: _s38(p),
    mutants={"vec(x y^T) in the third expression": lambda p: _s38(p, vec_of=lambda x, y: col(x @ tr(y))),
             "vec(Sigma_yx^T) at the end": lambda p: _s38(p, last=lambda p: col(tr(p.Syx)))},
    evaluate=lambda f, p: f(p),
    reference=lambda p: [_cross(p)] * 4, domain=SAMPLES,
    what="Each expression of the chain (S38) vs the vector E^[<E_i x, y>] (the gradient of vec(M) -> E^[<M x, y>]).")


def _cross(p: Point) -> Array:
    E = unit_matrices(p.d_y, p.dims[0], p.x)
    Ex = (E @ p.x[..., None, :, :])[..., 0]                         # (..., n, N, d_y)
    return E_hat(Ex @ p.y)                                          # (..., N, 1)


# ---------------------------------------------------------------------------------------------
# S39-S41: the gradient in closed form.
# ---------------------------------------------------------------------------------------------


def SxI(p: Point) -> Array:
    return ln.kron(p.Sx, p.I())


def _s39(p: Point, k: int, two: int = 2, S: Callable[[Point], Array] | None = None) -> Array:
    Uk = U(p.W, k)
    return two * tr(Uk) @ ((S(p) if S else SxI(p)) @ Uk @ p.w(k) - col(p.Syx))


S39 = Comparison(
    "S39", lambda p, k: _s39(p, k),
    mutants={"missing factor 2": lambda p, k: _s39(p, k, two=1),
             "Sigma_x^{1/2} instead of Sigma_x": lambda p, k: _s39(p, k, S=lambda p: ln.kron(p.R, p.I())),
             "I (x) Sigma_x (factors swapped)": lambda p, k: _s39(p, k, S=lambda p: ln.kron(p.I(), p.Sx))},
    evaluate=_each_k, reference=lambda p: gradient_reference(moment_loss, p), domain=GENERIC, algebraic=False,
    what="(S39) for every k at generic points vs the gradient of the loss w.r.t. w_k computed another way.")


def _s40(p: Point, k: int, vec_k: Callable[[Array], Array] = col, swap: bool = False) -> list[Array]:
    W, m = p.W, p.m
    A, B = prod(W, k + 1, m), prod(W, 1, k - 1)
    K = ln.kron(A, tr(B)) if swap else ln.kron(tr(B), A)
    return [U(W, k) @ p.w(k), K @ vec_k(W[k - 1]), col(A @ W[k - 1] @ B), col(prod(W, 1, m))]


S40 = Comparison(
    "S40", lambda p, k: _s40(p, k),
    mutants={"row-major vec(W_k)": lambda p, k: _s40(p, k, vec_k=row_major_vec),
             "Kronecker factors swapped in the second expression": lambda p, k: _s40(p, k, swap=True)},
    evaluate=_each_k, reference=lambda p: [index_vec(_forward_product(p)) for k in range(p.m) for _ in range(4)],
    domain=GENERIC,
    what=("Each expression of (S40), for every k, vs vec(W_m...W_1) with the product accumulated layer by layer "
          "and vec taken entry-wise by its definition."))


def _forward_product(p: Point) -> Array:
    out = p.W[0]
    for M in p.W[1:]:
        out = M @ out
    return out


def _s41(p: Point, k: int, q: int, two: int = 2, swap: bool = False) -> Array:
    front, inner = (q, k) if swap else (k, q)
    return two * tr(U(p.W, front)) @ (SxI(p) @ U(p.W, inner) @ p.w(inner) - col(p.Syx))


S41 = Comparison(
    "S41", lambda p, k, q: _s41(p, k, q),
    mutants={"U_q^T in front (k and q swapped)": lambda p, k, q: _s41(p, k, q, swap=True),
             "missing factor 2": lambda p, k, q: _s41(p, k, q, two=1)},
    evaluate=lambda f, p: [f(p, k, q) for k in range(1, p.m + 1) for q in range(1, p.m + 1)],
    reference=lambda p: [g for g in gradient_reference(moment_loss, p) for _ in range(p.m)],
    domain=GENERIC, algebraic=False,
    what="(S41) for every pair (k, q) at generic points vs the gradient w.r.t. w_k computed another way.")


# ---------------------------------------------------------------------------------------------
# S42-S49: the Hessian.
# ---------------------------------------------------------------------------------------------


def residual_vector(p: Point, q: int) -> Array:
    """(Sigma_x (x) I) U_q w_q - vec(Sigma_yx): zero exactly at a global minimum (S44)."""
    return SxI(p) @ U(p.W, q) @ p.w(q) - col(p.Syx)


def _s42(p: Point, q: int, k: int, residual_sign: int = 1, keep_residual: bool = True, two_gn: int = 2,
         S: Callable[[Point], Array] | None = None) -> list[Array]:
    """Both lines of (S42): rows l of the (q, k) block, in the denominator layout."""
    S = S or SxI

    def s41_k(P: Point) -> Array:
        return tr(U(P.W, k)) @ (SxI(P) @ (U(P.W, q) @ P.w(q)) - col(P.Syx))

    line1 = 2 * p.d(s41_k, q)
    r = residual_vector(p, q)
    gauss_newton = two_gn * p.d(lambda P: P.w(q), q) @ per_sample(tr(U(p.W, q)) @ S(p) @ U(p.W, k))
    line2 = gauss_newton
    if keep_residual:
        line2 = residual_sign * 2 * per_sample(tr(r)) @ p.d(lambda P: tr(U(P.W, k)), q) + gauss_newton
    return [rows(line1), rows(line2)]


def _hessian_ref_blocks(p: Point) -> list[Array]:
    blocks = hessian_blocks(p, hessian_reference(p))
    return [blocks[q, k] for q in range(1, p.m + 1) for k in range(1, p.m + 1)]


def _per_qk(n_forms: int) -> Callable[[Point], list]:
    def reference(p: Point) -> list:
        return [b for b in _hessian_ref_blocks(p) for _ in range(n_forms)]
    return reference


S42 = Comparison(
    "S42", lambda p, q, k: _s42(p, q, k),
    mutants={"residual term dropped (the at-minimum form used everywhere)":
             lambda p, q, k: _s42(p, q, k, keep_residual=False),
             "residual term with the opposite sign": lambda p, q, k: _s42(p, q, k, residual_sign=-1),
             "missing factor 2 in the second term": lambda p, q, k: _s42(p, q, k, two_gn=1)},
    evaluate=_each_qk, reference=_per_qk(2), domain=GENERIC, algebraic=False, max_weights=18,
    what=("Both lines of (S42) -- the derivative of the (S41) expression w.r.t. w_{q,l}, and its product-rule "
          "form with dU_k^T/dw_{q,l} -- for all q, k, l, in the denominator layout of footnote 2, vs the rows of "
          "the Hessian of the loss computed another way. Valid at every point, not only at minima."))

S42_AT_MINIMUM_MUTANTS = {
    "missing factor 2 in the second term": lambda p, q, k: _s42(p, q, k, two_gn=1),
    "Sigma_x^{1/2} instead of Sigma_x in the second term":
    lambda p, q, k: _s42(p, q, k, S=lambda P: ln.kron(P.R, P.I()))}


def _s43(p: Point, q: int, S: Callable[[Point], Array] | None = None, left: bool = False) -> list[Array]:
    Sm = S(p) if S else p.Sx
    SI = ln.kron(Sm, p.I())
    P = prod(p.W, 1, p.m)
    return [SI @ U(p.W, q) @ p.w(q), SI @ col(P), col(Sm @ P) if left else col(P @ Sm),
            col(p.Syx @ p.inv(p.Sx) @ Sm), col(p.Syx)]


S43 = Comparison(
    "S43", lambda p, q: _s43(p, q),
    mutants={"Sigma_x^{1/2} instead of Sigma_x": lambda p, q: _s43(p, q, S=lambda p: p.R),
             "P1 misapplied: vec(Sigma_x prod W_i)": lambda p, q: _s43(p, q, left=True)},
    evaluate=_each_k, reference=lambda p: [col(p.Syx)] * (5 * p.m), domain=MINIMUM,
    what="Each expression of the chain (S43), for every q, at global minima, vs vec(Sigma_yx) of the data.")


def _syx_scale(p: Point) -> Array:
    return _max_abs(p.Syx, p.Syx.ndim - 2)


S44 = Comparison(
    "S44", residual_vector,
    mutants={"Sigma_x^{1/2} instead of Sigma_x": lambda p, q: ln.kron(p.R, p.I()) @ U(p.W, q) @ p.w(q) - col(p.Syx),
             "I (x) Sigma_x (factors swapped)": lambda p, q: ln.kron(p.I(), p.Sx) @ U(p.W, q) @ p.w(q) - col(p.Syx)},
    evaluate=_each_k, reference=lambda p: [0 * col(p.Syx)] * p.m, domain=MINIMUM, scale=_syx_scale,
    what=("(S44) for every q at global minima: the vector must vanish; residual = its largest entry relative to "
          "the largest entry of Sigma_yx (the size of the terms that cancel)."))


def _s45(p: Point, q: int, k: int, two: int = 2, S: Callable[[Point], Array] | None = None) -> Array:
    S = S or SxI
    return rows(two * p.d(lambda P: P.w(q), q) @ per_sample(tr(U(p.W, q)) @ S(p) @ U(p.W, k)))


S45 = Comparison(
    "S45", lambda p, q, k: _s45(p, q, k),
    mutants={"missing factor 2": lambda p, q, k: _s45(p, q, k, two=1),
             "Sigma_x^{1/2} instead of Sigma_x": lambda p, q, k: _s45(p, q, k, S=lambda P: ln.kron(P.R, P.I())),
             "I (x) Sigma_x (factors swapped)": lambda p, q, k: _s45(p, q, k, S=lambda P: ln.kron(P.I(), P.Sx))},
    evaluate=_each_qk, reference=_per_qk(1), domain=MINIMUM, algebraic=False,
    what=("(S45) for all q, k and every entry l of w_q (rows of the (q, k) block) at global minima vs the Hessian "
          "of the loss computed another way."))


def _s46(p: Point, q: int, k: int, two: int = 2, half: Callable[[Point], Array] | None = None,
         transposed: bool = False) -> list[Array]:
    a, b = (k, q) if transposed else (q, k)
    Ua, Ub = U(p.W, a), U(p.W, b)
    RI = ln.kron(half(p) if half else p.R, p.I())
    dwq = rows(p.d(lambda P: P.w(q), q))                           # d w_q / d w_q = I
    return [two * dwq @ tr(Ua) @ SxI(p) @ Ub, two * tr(Ua) @ SxI(p) @ Ub, two * tr(Ua) @ tr(RI) @ RI @ Ub]


S46 = Comparison(
    "S46", lambda p, q, k: _s46(p, q, k),
    mutants={"Sigma_x instead of Sigma_x^{1/2} in the last form": lambda p, q, k: _s46(p, q, k, half=lambda P: P.Sx),
             "missing factor 2": lambda p, q, k: _s46(p, q, k, two=1),
             "block transposed: U_k^T (Sigma_x (x) I) U_q": lambda p, q, k: _s46(p, q, k, transposed=True)},
    evaluate=_each_qk, reference=_per_qk(3), domain=MINIMUM, algebraic=False,
    what=("The three printed forms of the (q, k) block (S46) -- with dw_q/dw_q, without it, and with the square "
          "roots -- for all q, k at global minima vs the Hessian of the loss computed another way. (The leftmost "
          "derivative prints a non-bold w_q; read as the vector w_q, the only meaning it has here.)"))


def _s47(p: Point, k: int, half: Callable[[Point], Array] | None = None, A_transposed: bool = True,
         swap_last: bool = False) -> list[Array]:
    W, m = p.W, p.m
    R = half(p) if half else p.R
    A, B = prod(W, k + 1, m), prod(W, 1, k - 1)
    At = tr(A) if A_transposed else A
    RI = ln.kron(R, p.I())
    last = ln.kron(At, B @ R) if swap_last else ln.kron(B @ R, At)
    return [tr(U(W, k)) @ tr(RI), ln.kron(B, At) @ RI, last]


def phi_k(p: Point, k: int, half: Callable[[Point], Array] | None = None, swap: bool = False) -> Array:
    """Phi_k in the last form of (S47): (prod_{j<k} W_j Sigma_x^{1/2}) (x) (prod_{i>k} W_i)^T."""
    return _s47(p, k, half=half, swap_last=swap)[-1]


def _phi_reference(p: Point, k: int) -> Array:
    """Phi_k^T is the Jacobian of vec(W_m...W_1 Sigma_x^{1/2}) w.r.t. w_k."""
    return tr(linear_jacobian(lambda q: prod(q.W, 1, q.m) @ q.R, p, k))


S47 = Comparison(
    "S47", lambda p, k: _s47(p, k),
    mutants={"Sigma_x instead of Sigma_x^{1/2}": lambda p, k: _s47(p, k, half=lambda P: P.Sx),
             "(prod_{i>k} W_i) not transposed": lambda p, k: _s47(p, k, A_transposed=False),
             "Kronecker factors swapped in the last form": lambda p, k: _s47(p, k, swap_last=True)},
    evaluate=_each_k, reference=lambda p: [_phi_reference(p, k) for k in range(1, p.m + 1) for _ in range(3)],
    domain=GENERIC,
    what=("The three printed forms of Phi_k (S47), for every k at generic points, vs Phi_k computed as the "
          "transpose of the Jacobian of vec(W_m...W_1 Sigma_x^{1/2}) w.r.t. w_k (the layer map applied to basis "
          "matrices). (Printed with non-bold U_k, W_j, I: the same objects.)"))


def _s48(p: Point, q: int, k: int, two: int = 2, half: Callable | None = None, transposed: bool = False) -> Array:
    a, b = (k, q) if transposed else (q, k)
    return two * phi_k(p, a, half) @ tr(phi_k(p, b, half))


S48 = Comparison(
    "S48", lambda p, q, k: _s48(p, q, k),
    mutants={"Sigma_x instead of Sigma_x^{1/2} in Phi": lambda p, q, k: _s48(p, q, k, half=lambda P: P.Sx),
             "missing factor 2": lambda p, q, k: _s48(p, q, k, two=1),
             "block transposed: 2 Phi_k Phi_q^T": lambda p, q, k: _s48(p, q, k, transposed=True)},
    evaluate=_each_qk, reference=_per_qk(1), domain=MINIMUM, algebraic=False,
    what=("(S48) 2 Phi_q Phi_k^T with Phi_k as in (S47), for all q, k at global minima, vs the (q, k) block of the "
          "Hessian of the loss computed another way."))


def _s49(p: Point, two: int = 2, half: Callable | None = None, swap: bool = False) -> Array:
    Phi = ln.namespace(p.W[0]).concat([phi_k(p, k, half, swap) for k in range(1, p.m + 1)], axis=-2)
    return two * Phi @ tr(Phi)


S49 = Comparison(
    "S49", lambda p: _s49(p),
    mutants={"missing factor 2": lambda p: _s49(p, two=1),
             "Sigma_x instead of Sigma_x^{1/2} in Phi": lambda p: _s49(p, half=lambda P: P.Sx),
             "Kronecker factors swapped in Phi_k": lambda p: _s49(p, swap=True)},
    evaluate=lambda f, p: [f(p)], reference=lambda p: [hessian_reference(p)], domain=MINIMUM, algebraic=False,
    what="(S49) H_w = 2 Phi Phi^T at global minima vs the Hessian of the loss computed another way.")


def _lemma3_swapped(p: Point) -> Array:
    return _s49(p, swap=True)


LEMMA3 = Comparison(
    "Lemma 3", lambda p: lemma3.hessian(list(p.W), p.data),
    mutants={"missing factor 2": lambda p: lemma3.hessian(list(p.W), p.data) / 2,
             "Sigma_x instead of Sigma_x^{1/2}": lambda p: lemma3.hessian(
                 list(p.W), replace(p.data, Sigma_x_half=p.data.Sigma_x)),
             "transposed Kronecker order in Phi_k": _lemma3_swapped},
    evaluate=lambda f, p: [f(p)], reference=lambda p: [hessian_reference(p)], domain=MINIMUM, algebraic=False,
    what=("Lemma 3 as implemented by proofs.lemma3.hessian (2 Phi Phi^T, Phi_k of (S47)) at global minima of "
          "every kind (canonical, random (S104), rotated and rebalanced flattest), rectangular widths, "
          "rank-deficient T and every Sigma_x kind, vs the Hessian of the loss computed another way."))


def _s42_hessian(p: Point) -> Array:
    """The full Hessian assembled from line 2 of (S42): valid at every point. It is the negative
    control of several off-minimum checks, so it is computed once per point."""
    return REFERENCES.get(_assemble_s42, p)


def _assemble_s42(p: Point) -> Array:
    xp = ln.namespace(p.W[0])
    return xp.concat([xp.concat([_s42(p, q, k)[1] for k in range(1, p.m + 1)], axis=-1)
                      for q in range(1, p.m + 1)], axis=-2)


def _s42_block(p: Point, q: int, k: int) -> Array:
    return hessian_blocks(p, _s42_hessian(p))[q, k]


S42_EVERYWHERE = "the product-rule form (S42) with its residual term"


# ---------------------------------------------------------------------------------------------
# Registration.
# ---------------------------------------------------------------------------------------------

for _c in (S33, S34, S35, S36, S37, S38, S39, S40, S41, S43, S44, S45, S46, S47, S48, S49, LEMMA3):
    add_standard_checks(_c)

add_standard_checks(S42)
add_high_precision_check(S42, "exact", domain=MINIMUM, mutants=S42_AT_MINIMUM_MUTANTS)

for _c, _everywhere in (
    (replace(S45, min_depth=2), {S42_EVERYWHERE: _s42_block}),
    (replace(S46, min_depth=2), {S42_EVERYWHERE: lambda p, q, k: [_s42_block(p, q, k)] * 3}),
    (replace(S48, min_depth=2), {S42_EVERYWHERE: _s42_block}),
    (replace(S49, min_depth=2), {S42_EVERYWHERE: _s42_hessian}),
    (replace(LEMMA3, min_depth=2), {S42_EVERYWHERE: _s42_hessian}),
):
    add_off_minimum_check(_c, _everywhere)

add_off_minimum_check(
    replace(S44, scale=_syx_scale),
    {"Sigma_yx replaced by (prod W_i) Sigma_x (the minimum assumed)":
     lambda p, q: SxI(p) @ U(p.W, q) @ p.w(q) - col(prod(p.W, 1, p.m) @ p.Sx)})


# ---------------------------------------------------------------------------------------------
# Checks with their own comparison.
# ---------------------------------------------------------------------------------------------


def _link_residuals(chain: Sequence[Array], batch: tuple[int, ...]) -> np.ndarray:
    """Relative differences between consecutive expressions of a chain, shape (links, instances)."""
    return np.stack([numeric_residuals([a], [b], batch) * 1.0 for a, b in zip(chain[:-1], chain[1:])])


def _s43_off_minimum(points: Iterator[Point], formula: Formula, tol: float, threshold: float) -> Measurement:
    """Links 1, 2 and 4 of (S43) must hold at every generic point; link 3 must fail."""
    algebra_worst, departures, shapes, where = 0.0, [], [], []
    for p in points:
        for q in range(1, p.m + 1):
            try:
                links = _link_residuals(formula(p, q), p.batch)
            except (ValueError, ArithmeticError):
                return Measurement(math.inf, threshold, "chain not evaluable", 0, holds=False)
            algebra_worst = max(algebra_worst, float(np.max(links[[0, 1, 3]])))
            departures.append(links[2])
            where.extend([dict(p.replay, q=q, index=i) for i in range(links.shape[1])])
        shapes.append(_shape_label(p))
    dep = np.concatenate(departures)
    worst = int(np.argmin(dep))
    holds = bool(dep[worst] > threshold and algebra_worst <= tol)
    return Measurement(
        residual=float(dep[worst]), tolerance=threshold,
        tolerance_reason=(f"inverted test: link 3 (prod W_i = Sigma_yx Sigma_x^-1, i.e. w in Omega) must differ by "
                          f"more than {threshold:g} relative at every generic point, while links 1, 2, 4 (vec/P1 "
                          f"algebra) hold within {tol:g}; residual = the smallest link-3 difference"),
        instances=int(dep.size), shapes=sorted(set(shapes)), holds=holds,
        counterexample=None if holds else to_jsonable(dict(where[worst], link3=_number(dep[worst]),
                                                          worst_other_link=algebra_worst)),
        details={"worst_other_link": algebra_worst})


_S43_OFF_MUTANTS = {"fourth expression vec(prod W_i Sigma_x), i.e. without w in Omega":
                    lambda p, q: _s43(p, q)[:3] + [col(prod(p.W, 1, p.m) @ p.Sx), col(prod(p.W, 1, p.m) @ p.Sx)]}


@check("S43", method="float", printed=lambda p, q: _s43(p, q), mutants=_S43_OFF_MUTANTS,
       name="fails_off_minimum_float64", backend=True)
def s43_off_minimum_float(ctx: Context, formula: Formula) -> Measurement:
    """The chain (S43) at generic float64 points: the vec/Kronecker links (1, 2, 4) still hold, the link that
    uses w in Omega (3) fails -- evidence that the step needs the global minimum. Instances are drawn on the
    host; the chain and its residuals are computed on the run's array backend."""
    return _s43_off_minimum(float_points(ctx, GENERIC), formula, ALGEBRA_TOL, OFF_MINIMUM_TOL)


@check("S43", method="exact", printed=lambda p, q: _s43(p, q), mutants=_S43_OFF_MUTANTS, name="fails_off_minimum_exact")
def s43_off_minimum_exact(ctx: Context, formula: Formula) -> Measurement:
    """The chain (S43) at generic points in rationals: links 1, 2 and 4 hold exactly, link 3 (w in Omega)
    differs."""
    return _s43_off_minimum(pool(ctx, "exact", GENERIC), formula, 0.0, 0.0)


def _s45_rows_checked(p: Point, q: int, ls: Sequence[int]) -> float:
    """Largest exact difference between the rows l of (S45) and of the Hessian, over k."""
    blocks = hessian_blocks(p, hessian_reference(p))
    idx = [l - 1 for l in ls]
    worst = 0.0
    for k in range(1, p.m + 1):
        worst = max(worst, float(numeric_residuals([_s45(p, q, k)[idx]], [blocks[q, k][idx]])[0]))
    return worst


def s45_printed_range(dims: Sequence[int], q: int) -> range:
    """'for all 1 <= l <= m' as printed after (S45)."""
    return range(1, len(dims))


@check("S45", method="exact", printed=s45_printed_range, name="range_of_l_exact",
       mutants={"1 <= l <= d_q": lambda dims, q: range(1, dims[q] + 1),
                "1 <= l <= d_{q-1}": lambda dims, q: range(1, dims[q - 1] + 1)},
       corrected=Variant(lambda dims, q: range(1, dims[q] * dims[q - 1] + 1),
                         reason="l indexes the entries of w_q = vec(W_q), so its range is 1 <= l <= d_q d_{q-1}; "
                                "the printed 1 <= l <= m names entries that do not exist when m > d_q d_{q-1} and "
                                "leaves rows of the block out when m < d_q d_{q-1}, so (S46) would not follow",
                         text=r"\text{for all } 1 \leq l \leq d_q d_{q-1}"))
def s45_range_exact(ctx: Context, l_range: Callable[[Sequence[int], int], range]) -> Measurement:
    """The quantifier after (S45): every l in the stated range must name an entry w_{q,l} of w_q and together
    they must cover the whole (q, k) block, which is what (S46) concludes; each named row of (S45) is compared
    exactly with the hyper-dual Hessian at rational global minima."""
    worst, shapes, violations = 0.0, [], {}
    for p in pool(ctx, "exact", MINIMUM):
        shapes.append(_shape_label(p))
        for q in range(1, p.m + 1):
            n_q = p.dims[q] * p.dims[q - 1]
            ls = list(l_range(p.dims, q))
            absent = [l for l in ls if not 1 <= l <= n_q]
            uncovered = sorted(set(range(1, n_q + 1)) - set(ls))
            where = dict(p.replay, q=q, m=p.m, entries_of_w_q=n_q, l_from=ls[0] if ls else None,
                         l_to=ls[-1] if ls else None)
            if absent:
                violations.setdefault("l names no entry of w_q", dict(where, l_without_entry=absent))
            if uncovered:
                violations.setdefault("rows of the block left out", dict(where, rows_not_covered=uncovered))
            ls = [l for l in ls if 1 <= l <= n_q]
            if ls:
                worst = max(worst, _s45_rows_checked(p, q, ls))
    if violations:
        return Measurement(residual=float(len(violations)), tolerance=0.0,
                           tolerance_reason="kinds of violation of the range (naming absent entries, leaving rows out)",
                           instances=len(shapes), shapes=shapes, counterexample=to_jsonable(violations),
                           details={"rows_named_and_present_max_difference": worst})
    return Measurement(residual=worst, tolerance=0.0, tolerance_reason=EXACT_REASON, instances=len(shapes),
                       shapes=shapes)


SIMULATION_SHAPES = ((3, 4, 2), (2, 3, 3, 2), (3, 3, 3), (2, 2, 2, 2, 2), (4, 3, 3, 2), (1, 2, 3), (2, 4, 1),
                     (3, 3, 4, 3, 3))


def optimized_minimum(rng: np.random.Generator, dims: tuple[int, ...], n: int = 40) -> tuple[list, ln.Data, float]:
    """Weights found by BFGS (from a random start) for the loss of noisy samples; returns them, the
    data and their relative distance ||W_m...W_1 - T|| / ||T|| from the set of global minima."""
    from scipy.optimize import minimize

    X = rng.standard_normal((dims[0], n))
    Y = rng.standard_normal((dims[-1], dims[0])) @ X + 0.3 * rng.standard_normal((dims[-1], n))
    data = ln.from_samples(X, Y)
    n_weights = sum(dims[k] * dims[k - 1] for k in range(1, len(dims)))
    result = minimize(lambda w: float(ln.loss(ln.unflatten(w, dims), data)), 0.7 * rng.standard_normal(n_weights),
                      jac=lambda w: ln.flatten(ln.gradient(ln.unflatten(w, dims), data)), method="BFGS",
                      options={"gtol": 1e-14, "maxiter": 20000})
    W = ln.unflatten(result.x, dims)
    return W, data, float(np.linalg.norm(ln.end_to_end(W) - data.T) / np.linalg.norm(data.T))


@check("Lemma 3", method="simulation", printed=LEMMA3.printed, mutants=LEMMA3.mutants, name="optimizer_found_minima")
def lemma3_at_optimizer_minima(ctx: Context, formula: Formula) -> Measurement:
    """Lemma 3 at global minima that no generator built: BFGS minimises the loss of noisy samples from random
    starts (hidden widths >= min(d_x, d_y), so the minimum is in Omega); there 2 Phi Phi^T is compared with
    central differences of the analytic gradient. A start that does not reach Omega (distance > 1e-7) fails."""
    rng = ctx.rng("optimizer")
    res, shapes, worst_ce, distances = [], [], None, []
    for i in range(max(16, ctx.profile.instances // 50)):
        dims = SIMULATION_SHAPES[i % len(SIMULATION_SHAPES)]
        W, data, distance = optimized_minimum(rng, dims)
        p = Point(tuple(W), data, "float", ("optimizer", ctx.seed, i), {"dims": list(dims), "run": i})
        r = float(numeric_residuals(LEMMA3.evaluate(formula, p), [hessian_reference(p)])[0])
        r = r if distance <= 1e-7 else math.inf
        distances.append(distance)
        if not res or r > max(res):
            worst_ce = {"dims": list(dims), "run": i, "distance_to_Omega": distance, "residual": _number(r)}
        res.append(r)
        shapes.append("dims=" + "x".join(map(str, dims)))
    worst = max(res)
    return Measurement(residual=worst, tolerance=FD_TOL,
                       tolerance_reason=FD_REASON + "; the point is within 1e-7 of Omega, which moves H by O(1e-7)",
                       instances=len(res), shapes=sorted(set(shapes)),
                       counterexample=to_jsonable(worst_ce) if worst > FD_TOL else None,
                       details={"largest_distance_to_Omega": max(distances)})

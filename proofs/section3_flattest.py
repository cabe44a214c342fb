"""Section III.1 of the supplement: the set of flattest minima of a scalar network, (S8)-(S22).

Every check compares the paper's expression with ground truth computed from the loss itself:
composition of the layers, the moment expansion of the empirical loss, least squares, numerical
optimizers, sympy's derivatives of the loss polynomial (``proofs.scalar_network``), exact central
differences and a dense eigensolver of that Hessian.

Conventions. A formula takes the weights ``w`` as a sequence of per-layer values -- sympy
expressions, or numpy arrays over a batch of instances -- so one encoding of a printed expression
serves the symbolic and the float checks. Printed powers of tau are evaluated on the principal
branch (complex numpy arrays, or sympy), never silently as powers of |tau|. Float checks draw the
depth m uniformly from 1..max(8, max_depth), both signs of tau and log-uniform sigma_x^2; sympy
checks run every depth m = 1..ctx.profile.max_depth.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import sympy as sp
from hypothesis import strategies as st
from scipy import optimize

from verify.checks import check
from verify.context import Context, derive_seed
from verify.measure import batch_measurement, relative_residuals, to_jsonable
from verify.model import Measurement, Variant
from verify.search import search

from . import linear_network as ln
from . import scalar_network as sn
from .on_backend import map_chunks

EXACT = "exact symbolic identity (sympy)"
FLOAT_TOL = 1e-10
FLOAT_REASON = ("float64: products of <= 10 factors and a dense symmetric eigensolver are accurate to "
                "~1e-14 relative; 1e-10 leaves room for weights spread over e^(+-5)")
SET_REASON = "a set characterization: the number of points on which the statement and ground truth disagree"
TAU = sp.Symbol("tau", real=True, nonzero=True)

Weights = Sequence[Any]


# --------------------------------------------------------------------------- small shared pieces
def prod(values: Iterable[Any]) -> Any:
    """Product of sympy expressions or numpy arrays (1 for an empty product)."""
    return math.prod(values)


def others(w: Weights, k: int) -> Any:
    """prod_{j != k} w_j."""
    return prod(wj for j, wj in enumerate(w) if j != k)


def sgn(x: Any) -> Any:
    return sp.sign(x) if isinstance(x, sp.Basic) else np.sign(x)


def compose(w: Weights, x: Any) -> Any:
    """The network applied layer by layer: x -> w_1 x -> w_2 w_1 x -> ... (no product formula)."""
    h = x
    for wj in w:
        h = wj * h
    return h


def columns(w: np.ndarray, keepdims: bool = False) -> list[np.ndarray]:
    return [w[:, j : j + 1] if keepdims else w[:, j] for j in range(w.shape[1])]


def sample_mean(a: Any) -> Any:
    """The empirical mean E-hat over samples: the last axis (object arrays of sympy, or any array namespace)."""
    if isinstance(a, np.ndarray) and a.dtype == object:
        return np.mean(a, axis=-1)
    return ln.namespace(a).mean(a, axis=-1)


def central_difference(w: Weights, q: int) -> Callable[[Callable[[Weights], Any]], Any]:
    """d/dw_q at w by a central difference. Exact up to rounding for every function of degree <= 2
    in w_q, which covers every function it is applied to here (the loss and its factors are
    multilinear in the weights); h = max(1, |w_q|) keeps the rounding small. Any array namespace."""
    xp = ln.namespace(w[q])
    h = xp.clip(xp.abs(w[q]), min=1.0)

    def d(fn: Callable[[Weights], Any]) -> Any:
        plus, minus = list(w), list(w)
        plus[q], minus[q] = w[q] + h, w[q] - h
        return (fn(plus) - fn(minus)) / (2 * h)

    return d


def symbolic_derivative(w: Weights, q: int) -> Callable[[Callable[[Weights], Any]], Any]:
    return lambda fn: sp.diff(fn(w), w[q])


def float_depths(ctx: Context) -> range:
    return range(1, max(8, ctx.profile.max_depth) + 1)


def symbolic_depths(ctx: Context) -> range:
    return range(1, ctx.profile.max_depth + 1)


def split_by_depth(rng: np.random.Generator, count: int, depths: range) -> dict[int, int]:
    m = rng.integers(depths.start, depths.stop, size=count)
    return {d: int(np.sum(m == d)) for d in depths if np.any(m == d)}


def signed_scales(rng: np.random.Generator, n: int, spread: float = 2.0) -> np.ndarray:
    """Both signs, log-uniform magnitudes in e^(+-spread)."""
    return rng.choice([-1.0, 1.0], n) * np.exp(rng.uniform(-spread, spread, n))


def complex_tau(tau: ln.Array) -> ln.Array:
    """tau as complex numbers, so that tau ** r is the principal power, as printed (any namespace)."""
    xp = ln.namespace(tau)
    return xp.astype(tau, xp.complex128)


def vanishes(expr: sp.Expr) -> bool:
    return sp.cancel(sp.expand(expr)) == 0


class Residuals:
    """Per-instance residuals gathered over depth groups, with the data that replays each one."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.records: list[Callable[[int], Mapping[str, Any]]] = []
        self.shapes: list[str] = []

    def add(self, m: int, residuals: np.ndarray, record: Callable[[int], Mapping[str, Any]], shape: str = "") -> None:
        self.parts.append(np.asarray(residuals, dtype=float).ravel())
        self.records.append(record)
        self.shapes.append(f"m={m}{shape}")

    def measurement(self, tolerance: float, reason: str, **details: Any) -> Measurement:
        sizes = np.cumsum([len(p) for p in self.parts])

        def instance(i: int) -> Mapping[str, Any]:
            g = int(np.searchsorted(sizes, i, side="right"))
            local = i - (int(sizes[g - 1]) if g else 0)
            return to_jsonable(self.records[g](local))

        return batch_measurement(np.concatenate(self.parts), tolerance, reason, sorted(set(self.shapes)), instance,
                                 **details)


def exact_over_depths(ctx: Context, compare: Callable[[int], Mapping[str, Any] | None],
                      depths: Iterable[int] | None = None, reason: str = EXACT) -> Measurement:
    """Run ``compare(m)`` (None, or a counterexample) for every depth; stop at the first failure."""
    shapes: list[str] = []
    for m in depths if depths is not None else symbolic_depths(ctx):
        shapes.append(f"m={m}")
        bad = compare(m)
        if bad is not None:
            return Measurement(1.0, 0.0, reason, len(shapes), shapes, counterexample=to_jsonable({"m": m, **bad}))
    return Measurement(0.0, 0.0, reason, len(shapes), shapes)


def count_measurement(bad: list[Mapping[str, Any]], instances: int, shapes: Sequence[str], reason: str = SET_REASON,
                      **details: Any) -> Measurement:
    """A logical check: the residual is the number of failing instances; the first is kept."""
    return Measurement(float(len(bad)), 0.0, reason, instances, sorted(set(shapes)),
                       counterexample=to_jsonable(bad[0]) if bad else None, details=to_jsonable(details))


def same_power(truth: sp.Expr, printed: sp.Expr, tau: sp.Symbol = TAU) -> Mapping[str, Any] | None:
    """Compare two expressions in tau separately for tau > 0 and tau < 0. Principal branches are kept
    (sympy's own powers); a difference sympy cannot simplify away is confirmed at tau = +-2 and +-1/3
    (other symbols 3/2) with 30 digits, and reported with those values."""
    truth, printed = sp.sympify(truth), sp.sympify(printed)
    for sign, symbol in (("positive", sp.Symbol("tau", positive=True)), ("negative", sp.Symbol("tau", negative=True))):
        t, p = truth.subs(tau, symbol), printed.subs(tau, symbol)
        if sp.simplify(t - p) == 0:
            continue
        rest = {s: sp.Rational(3, 2) for s in (t - p).free_symbols if s != symbol}
        for value in (2, sp.Rational(1, 3)):
            v = value if sign == "positive" else -value
            at = {**rest, symbol: v}
            tv, pv = complex(sp.N(t.subs(at), 30)), complex(sp.N(p.subs(at), 30))
            if abs(tv - pv) > 1e-20 * max(1.0, abs(tv)):
                return {"tau_sign": sign, "at": {str(k): str(x) for k, x in at.items()},
                        "truth": [tv.real, tv.imag], "printed": [pv.real, pv.imag]}
        return {"tau_sign": sign, "undecided": str(sp.simplify(t - p))}
    return None


# --------------------------------------------------------------------------- random instances
@dataclass(frozen=True)
class Minima:
    """A batch of global minima (prod w = tau) of depth m, with sympy's Hessian of the loss there."""

    m: int
    sx2: np.ndarray
    tau: np.ndarray
    w: np.ndarray
    hessian: np.ndarray

    @property
    def sxy(self) -> np.ndarray:
        return self.tau * self.sx2

    def record(self, i: int, **extra: Any) -> dict[str, Any]:
        return {"m": self.m, "sigma_x2": self.sx2[i], "sigma_xy": self.sxy[i], "tau": self.tau[i], "w": self.w[i],
                **{k: v[i] for k, v in extra.items()}}


@lru_cache(maxsize=16)
def minima_batches(seed: int, count: int, max_depth: int) -> tuple[Minima, ...]:
    rng = np.random.default_rng(seed)
    out = []
    for m, n in split_by_depth(rng, count, range(1, max_depth + 1)).items():
        tau, sx2 = signed_scales(rng, n), np.exp(rng.uniform(-2, 2, n))
        w = sn.random_minima(rng, m, tau)
        out.append(Minima(m, sx2, tau, w, sn.hessian(w, sx2, tau * sx2)))
    return tuple(out)


def minima(ctx: Context) -> tuple[Minima, ...]:
    """ctx.profile.instances random global minima, the same for every variant of a check."""
    return minima_batches(derive_seed(ctx.seed, ctx.check_id, "minima"), ctx.profile.instances, float_depths(ctx).stop - 1)


@dataclass(frozen=True)
class Points:
    """A batch of arbitrary points w of depth m (almost surely not minima) with samples x, y."""

    m: int
    w: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sx2: np.ndarray
    sxy: np.ndarray
    sy2: np.ndarray
    hessian: np.ndarray

    def record(self, i: int) -> dict[str, Any]:
        return {"m": self.m, "w": self.w[i], "x": self.x[i], "y": self.y[i]}


def regression_data(rng: np.random.Generator, n: int, samples: int) -> tuple[np.ndarray, ...]:
    """Samples x, y = t (x + noise) with |t| in e^(+-1) of both signs, and their moments."""
    x = rng.standard_normal((n, samples)) * np.exp(rng.uniform(-1, 1, (n, 1)))
    y = signed_scales(rng, n, 1.0)[:, None] * (x + 0.3 * rng.standard_normal((n, samples)))
    return x, y, np.mean(x * x, -1), np.mean(x * y, -1), np.mean(y * y, -1)


@lru_cache(maxsize=16)
def point_batches(seed: int, count: int, max_depth: int) -> tuple[Points, ...]:
    rng = np.random.default_rng(seed)
    out = []
    for m, n in split_by_depth(rng, count, range(1, max_depth + 1)).items():
        x, y, sx2, sxy, sy2 = regression_data(rng, n, int(rng.integers(2, 33)))
        w = rng.standard_normal((n, m)) * np.exp(rng.uniform(-0.5, 0.5, (n, 1)))
        out.append(Points(m, w, x, y, sx2, sxy, sy2, sn.hessian(w, sx2, sxy)))
    return tuple(out)


def points(ctx: Context) -> tuple[Points, ...]:
    return point_batches(derive_seed(ctx.seed, ctx.check_id, "points"), ctx.profile.instances, float_depths(ctx).stop - 1)


def least_squares_slope(x: ln.Array, y: ln.Array) -> ln.Array:
    """argmin_a mean((y - a x)^2) by a pseudo-inverse (SVD), batched: not the formula (S10). Any namespace."""
    return (ln.namespace(x).linalg.pinv(x[:, :, None]) @ y[:, :, None])[:, 0, 0]


# --------------------------------------------------------------------------- (S8)
def s8_printed(w: Weights, x: Any) -> Any:
    return prod(w) * x


S8_MUTANTS = {
    "sum of the weights instead of their product": lambda w, x: sum(w) * x,
    "last layer missing": lambda w, x: prod(w[:-1]) * x,
    "input x missing": lambda w, x: prod(w),
}


@check("S8", method="sympy", printed=s8_printed, mutants=S8_MUTANTS)
def s8_composition_of_layers(ctx: Context, formula) -> Measurement:
    """(S8) against the network applied layer by layer (x -> w_1 x -> w_2 w_1 x ...), exactly, for
    symbolic weights and input, m = 1..max_depth."""
    x = sp.Symbol("x", real=True)

    def compare(m: int) -> Mapping[str, Any] | None:
        w = sn.symbols(m)[0]
        diff = sp.expand(formula(w, x) - compose(w, x))
        return None if diff == 0 else {"difference": str(diff)}

    return exact_over_depths(ctx, compare)


@check("S8", method="float", printed=s8_printed, mutants=S8_MUTANTS, backend=True)
def s8_composition_float(ctx: Context, formula) -> Measurement:
    """(S8) against the layers applied one after the other, on random weights and samples; both on
    ``ctx.xp``."""
    def both(w: ln.Array, x: ln.Array) -> tuple:
        cols = columns(w, keepdims=True)
        return formula(cols, x), compose(cols, x)

    out = Residuals()
    for batch in points(ctx):
        out.add(batch.m, relative_residuals(*map_chunks(ctx, both, (batch.w, batch.x))), batch.record)
    return out.measurement(FLOAT_TOL, FLOAT_REASON)


# --------------------------------------------------------------------------- (S9)
def s9_printed(y: Any, fx: Any, mean: Callable[[Any], Any]) -> Any:
    return mean((y - fx) ** 2)


S9_MUTANTS = {
    "square of the mean instead of the mean of the square": lambda y, fx, mean: mean(y - fx) ** 2,
    "y + f instead of y - f": lambda y, fx, mean: mean((y + fx) ** 2),
    "factor 1/2": lambda y, fx, mean: mean((y - fx) ** 2) / 2,
}


def _linear_sums(expr: sp.Expr, index: sp.Symbol) -> sp.Expr:
    """Expand every Sum by linearity, moving factors free of the summation index outside."""
    def split(s: sp.Sum) -> sp.Expr:
        terms = sp.Add.make_args(sp.expand(s.function))
        return sp.Add(*[sp.Mul(*[f for f in t.as_ordered_factors() if not f.has(index)])
                        * sp.Sum(sp.Mul(*[f for f in t.as_ordered_factors() if f.has(index)]), *s.limits)
                        for t in terms])
    return sp.expand(expr.replace(lambda e: isinstance(e, sp.Sum), split))


@check("S9", method="sympy", printed=s9_printed, mutants=S9_MUTANTS, proves=True)
def s9_moment_expansion(ctx: Context, formula) -> Measurement:
    """(S9) with E-hat the mean of n symbolic samples (n symbolic) and f = p x (S8, p = prod w
    symbolic) equals sigma_x^2 p^2 - 2 sigma_xy p + sigma_y^2, the moment form the section and the
    ground truth ``scalar_network.loss`` use: exact for every n and every depth."""
    i, n = sp.symbols("i n", integer=True, positive=True)
    x, y, p = sp.IndexedBase("x"), sp.IndexedBase("y"), sp.Symbol("p", real=True)
    mean = lambda e: sp.Sum(e, (i, 1, n)) / n  # noqa: E731 - the empirical mean over n samples
    moments = p**2 * mean(x[i] ** 2) - 2 * p * mean(x[i] * y[i]) + mean(y[i] ** 2)
    diff = _linear_sums(formula(y[i], p * x[i], mean) - moments, i)
    if diff != 0:
        return Measurement(1.0, 0.0, EXACT, 1, ["n, p symbolic"], counterexample={"difference": str(diff)})
    return Measurement(0.0, 0.0, EXACT, 1, ["n, p symbolic"])


@check("S9", method="float", printed=s9_printed, mutants=S9_MUTANTS, backend=True)
def s9_samples_against_moments(ctx: Context, formula) -> Measurement:
    """(S9) on random samples (2..32 of them) and weights (on ``ctx.xp``) against the moment expansion
    sigma_x^2 p^2 - 2 sigma_xy p + sigma_y^2 of the same samples (host)."""
    out = Residuals()
    for b in points(ctx):
        value = map_chunks(ctx, lambda w, x, y: formula(y, compose(columns(w, keepdims=True), x), sample_mean),
                           (b.w, b.x, b.y))
        res = relative_residuals(value, sn.loss(b.w, b.sx2, b.sxy, b.sy2))
        out.add(b.m, res, b.record)
    return out.measurement(FLOAT_TOL, FLOAT_REASON)


# --------------------------------------------------------------------------- (S10)
def s10_printed(sx2: Any, sxy: Any, sy2: Any) -> Any:
    return sxy / sx2


S10_MUTANTS = {
    "sigma_y^2 in the denominator": lambda sx2, sxy, sy2: sxy / sy2,
    "ratio inverted": lambda sx2, sxy, sy2: sx2 / sxy,
    "sigma_x instead of sigma_x^2": lambda sx2, sxy, sy2: sxy / abs(sx2) ** 0.5,
}


@check("S10", method="sympy", printed=s10_printed, mutants=S10_MUTANTS, proves=True)
def s10_unique_minimizer(ctx: Context, formula) -> Measurement:
    """The loss of a one-layer net a x, sigma_x^2 a^2 - 2 sigma_xy a + sigma_y^2 (symbolic moments,
    sigma_x^2 > 0), has a single stationary point, a minimum (second derivative 2 sigma_x^2 > 0),
    and it equals (S10): exact for all moments."""
    (a,), sx2, sxy, sy2 = sn.symbols(1)
    g = sn.symbolic_loss(1)
    roots = sp.solve(sp.diff(g, a), a)
    curvature = sp.diff(g, a, 2)
    printed = formula(sx2, sxy, sy2)
    if len(roots) != 1 or not curvature.is_positive or sp.simplify(roots[0] - printed) != 0:
        return Measurement(1.0, 0.0, EXACT, 1, ["symbolic moments"],
                           counterexample={"stationary points": str(roots), "printed": str(printed)})
    return Measurement(0.0, 0.0, EXACT, 1, ["symbolic moments"])


@check("S10", method="float", printed=s10_printed, mutants=S10_MUTANTS, backend=True)
def s10_against_least_squares(ctx: Context, formula) -> Measurement:
    """(S10) from the sample moments against the least-squares slope of y on x (no intercept) computed
    by a pseudo-inverse, on random samples; both on ``ctx.xp``."""
    def both(sx2, sxy, sy2, x, y) -> tuple:
        return formula(sx2, sxy, sy2), least_squares_slope(x, y)

    out = Residuals()
    for b in points(ctx):
        out.add(b.m, relative_residuals(*map_chunks(ctx, both, (b.sx2, b.sxy, b.sy2, b.x, b.y))), b.record)
    return out.measurement(1e-9, "float64 least squares by SVD: relative error ~ cond * eps with a 2..32-sample design")


@st.composite
def regression_samples(draw) -> dict[str, Any]:
    """2-8 samples, |x| in [0.1, 10] (so sigma_x^2 > 0), y in [-10, 10], and a competitor offset."""
    n = draw(st.integers(2, 8))
    mag = st.floats(0.1, 10.0)
    x = [draw(mag) * draw(st.sampled_from([1.0, -1.0])) for _ in range(n)]
    y = [draw(st.floats(-10.0, 10.0)) for _ in range(n)]
    return {"x": x, "y": y, "offset": draw(st.floats(-1.0, 1.0))}


@check("S10", method="hypothesis", printed=s10_printed, mutants=S10_MUTANTS)
def s10_no_better_coefficient(ctx: Context, formula) -> Measurement:
    """Search samples and a competitor a = a_ls (1 + d) + d (a_ls: least squares, d in [-1, 1], d = 0
    included) with a smaller empirical loss E-hat[(y - a x)^2] than the printed tau."""
    def residual(ex: Mapping[str, Any]) -> float:
        x, y = np.array(ex["x"]), np.array(ex["y"])
        loss = lambda a: np.mean((y - a * x) ** 2)  # noqa: E731
        a_ls = least_squares_slope(x[None], y[None])[0]
        a = a_ls * (1 + ex["offset"]) + ex["offset"]
        with np.errstate(all="ignore"):
            tau = formula(np.mean(x * x), np.mean(x * y), np.mean(y * y))
        return (loss(tau) - loss(a)) / (np.mean(y * y) + np.mean(x * x) * (1 + a_ls**2))

    return search(ctx, regression_samples(), residual, 1e-12,
                  "float64 rounding of a mean of <= 8 squares, relative to sigma_y^2 + sigma_x^2 (1 + tau^2)",
                  shape=lambda ex: f"n={len(ex['x'])}")


# --------------------------------------------------------------------------- (S11)
def s11_printed(w: Weights, tau: Any) -> Any:
    """The global minima as the zero set of prod(w) - tau."""
    return prod(w) - tau


S11_MUTANTS = {
    "sum of the weights equals tau": lambda w, tau: sum(w) - tau,
    "product equals tau^m": lambda w, tau: prod(w) - tau ** len(w),
    "product equals -tau": lambda w, tau: prod(w) + tau,
}


@check("S11", method="sympy", printed=s11_printed, mutants=S11_MUTANTS)
def s11_completed_square(ctx: Context, formula) -> Measurement:
    """sympy: loss(w) = sigma_x^2 (prod w - tau)^2 + (sigma_y^2 - sigma_xy^2/sigma_x^2) exactly, so the
    global minima are exactly {prod w = tau} (attained, e.g. w = (tau, 1, ..., 1)). The printed zero
    set is compared with it both ways: solving formula(w, tau) = 0 for tau must give tau = prod w only,
    for every m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        w, sx2, sxy, sy2 = sn.symbols(m)
        tau = sp.Symbol("tau", real=True)
        p = prod(w)
        square = sx2 * (p - sxy / sx2) ** 2 + (sy2 - sxy**2 / sx2)
        if not vanishes(sn.symbolic_loss(m) - square):
            return {"step": "completed square", "difference": str(sp.cancel(sn.symbolic_loss(m) - square))}
        solutions = sp.solve(formula(list(w), tau), tau)
        if not solutions or any(sp.expand(s - p) != 0 for s in solutions):
            return {"step": "zero set of the printed constraint", "tau solving it": str(solutions), "prod w": str(p)}
        return None

    return exact_over_depths(ctx, compare)


def _min_loss(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a = least_squares_slope(x, y)
    return np.mean((y - a[:, None] * x) ** 2, axis=-1)


@dataclass(frozen=True)
class Descent:
    """Local minimizations of the empirical loss from random starts, one per instance."""

    m: int
    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    w: np.ndarray
    excess: np.ndarray  # (loss(w) - least-squares minimum) / (sigma_x^2 tau^2)
    fallbacks: int  # runs where BFGS stopped early (line search) and L-BFGS-B finished


def _relative_excess(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    sx2, sxy = np.mean(x * x, -1), np.mean(x * y, -1)
    return (sn.loss_from_samples(w, x, y) - _min_loss(x, y)) / (sx2 * (sxy / sx2) ** 2)


def descend(start: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, bool]:
    """A local minimization of the empirical loss (sympy gradient): BFGS, and L-BFGS-B from where it
    stopped if a line search gave up before the least-squares minimum (seen for m >= 9)."""
    moments = (np.mean(x * x, keepdims=True), np.mean(x * y, keepdims=True))
    sy2 = float(np.mean(y * y))
    fun = lambda v: float(sn.loss(v[None], *moments, sy2)[0])  # noqa: E731
    jac = lambda v: sn.gradient(v[None], *moments)[0]  # noqa: E731
    w = optimize.minimize(fun, start, jac=jac, method="BFGS", options={"gtol": 1e-12}).x
    if _relative_excess(w[None], x[None], y[None])[0] <= 1e-10:
        return w, False
    return optimize.minimize(fun, w, jac=jac, method="L-BFGS-B", options={"gtol": 1e-14, "ftol": 0.0}).x, True


@lru_cache(maxsize=8)
def loss_descents(seed: int, count: int, max_depth: int) -> tuple[Descent, ...]:
    rng = np.random.default_rng(seed)
    out = []
    for m, n in split_by_depth(rng, count, range(1, max_depth + 1)).items():
        x, y, *_ = regression_data(rng, n, 16)
        start = rng.choice([-1.0, 1.0], (n, m)) * np.exp(0.5 * rng.standard_normal((n, m)))
        runs = [descend(start[i], x[i], y[i]) for i in range(n)]
        found = np.array([w for w, _ in runs])
        out.append(Descent(m, x, y, start, found, _relative_excess(found, x, y), sum(f for _, f in runs)))
    return tuple(out)


@check("S11", method="simulation", printed=s11_printed, mutants=S11_MUTANTS)
def s11_descent_lands_on_the_set(ctx: Context, formula) -> Measurement:
    """Local minimization of the empirical loss (``descend``) from random starts reaches the
    least-squares minimum of the loss (checked), and every point it lands on satisfies (S11) with tau of (S10):
    |formula(w, tau)| / (1 + |tau|), over ctx.profile.instances // 10 runs."""
    out = Residuals()
    runs = loss_descents(derive_seed(ctx.seed, ctx.check_id, "descent"), max(20, ctx.profile.instances // 10),
                         float_depths(ctx).stop - 1)
    worst_excess, fallbacks = 0.0, sum(r.fallbacks for r in runs)
    for r in runs:
        tau = np.mean(r.x * r.y, -1) / np.mean(r.x**2, -1)  # (S10)
        res = np.abs(formula(columns(r.w), tau)) / (1 + np.abs(tau))
        res = np.where(r.excess <= 1e-10, res, np.inf)  # an optimizer that did not reach the minimum is no evidence
        worst_excess = max(worst_excess, float(np.max(r.excess)))
        out.add(r.m, res, lambda i, r=r: {"m": r.m, "x": r.x[i], "y": r.y[i], "start": r.start[i], "found": r.w[i]})
    return out.measurement(1e-6, "the minimization stops at |grad| <= 1e-12 (or no further decrease); prod w is "
                                 "then within ~1e-8 of tau",
                           worst_relative_loss_excess=worst_excess, l_bfgs_b_fallbacks=fallbacks)


def _classify_minima(sx2: np.ndarray, sxy: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Ground truth: is w a global minimum? Its loss exceeds the least-squares minimum by at most 1e-8
    sigma_x^2 tau^2 (the off-set points used exceed it by >= 1e-4 sigma_x^2 tau^2)."""
    excess = sn.loss_from_samples(w, x, y) - _min_loss(x, y)
    return excess <= 1e-8 * sx2 * (sxy / sx2) ** 2


def _on_set(formula, w: ln.Array, tau: ln.Array) -> ln.Array:
    """Does (S11) put w in the set of global minima (any namespace)?"""
    xp = ln.namespace(w, tau)
    return xp.abs(formula(columns(w), tau)) <= 1e-9 * (1 + xp.abs(tau))


@check("S11", method="float", printed=s11_printed, mutants=S11_MUTANTS, backend=True)
def s11_classifies_minima(ctx: Context, formula) -> Measurement:
    """On random samples, points w with w_m = tau / prod(w_1..w_{m-1}) and the same points with w_m
    scaled by 1 + e (0.01 <= |e| <= 1): (S11) (on ``ctx.xp``) must call a point a global minimum
    exactly when its loss equals the least-squares minimum of the loss (host)."""
    rng = ctx.rng("classify")
    bad, shapes, total = [], [], 0
    for m, n in split_by_depth(rng, ctx.profile.instances, float_depths(ctx)).items():
        x, y, sx2, sxy, _ = regression_data(rng, n, 16)
        tau = sxy / sx2
        w = sn.random_minima(rng, m, tau)
        off = w.copy()
        off[:, -1] *= 1 + rng.choice([-1.0, 1.0], n) * rng.uniform(0.01, 1.0, n)
        for pts in (w, off):
            on_set = map_chunks(ctx, lambda w, t: _on_set(formula, w, t), (pts, tau))
            disagree = on_set != _classify_minima(sx2, sxy, x, y, pts)
            bad += [{"m": m, "x": x[i], "y": y[i], "w": pts[i]} for i in np.flatnonzero(disagree)]
            total += n
        shapes.append(f"m={m}")
    return count_measurement(bad, total, shapes)


@st.composite
def loss_points(draw) -> dict[str, Any]:
    """Samples, a depth, free weights and a point on {w_m = tau / prod} or off it by a factor 1 + e."""
    data = draw(regression_samples())
    m = draw(st.integers(1, 8))
    free = [draw(st.sampled_from([1.0, -1.0])) * 10.0 ** draw(st.floats(-1.0, 1.0)) for _ in range(m - 1)]
    e = draw(st.one_of(st.just(0.0), st.floats(0.01, 1.0), st.floats(-1.0, -0.01)))
    return {"x": data["x"], "y": data["y"], "m": m, "free": free, "e": e}


@check("S11", method="hypothesis", printed=s11_printed, mutants=S11_MUTANTS)
def s11_search_misclassified_point(ctx: Context, formula) -> Measurement:
    """Search samples (with |tau| >= 0.1) and points on or off {w_m = tau / prod} where (S11) and
    the least-squares minimum of the loss disagree about being a global minimum."""
    def residual(ex: Mapping[str, Any]) -> float:
        x, y = np.array([ex["x"]]), np.array([ex["y"]])
        sx2, sxy = np.mean(x * x, -1), np.mean(x * y, -1)
        tau = sxy / sx2
        if abs(tau[0]) < 0.1:
            return 0.0  # outside the searched region: the loss excess would drown in rounding
        w = np.array([ex["free"] + [tau[0] / prod(ex["free"]) * (1 + ex["e"])]])
        return float(_on_set(formula, w, tau)[0] != _classify_minima(sx2, sxy, x, y, w)[0])

    return search(ctx, loss_points(), residual, 0.0, SET_REASON, shape=lambda ex: f"m={ex['m']}")


# --------------------------------------------------------------------------- (S12)
class GradientChain(NamedTuple):
    """The expressions of (S12) after the first equality sign, left to right."""

    chain_rule: Callable  # (y, f, df/dw_k, mean) -> -2 E[(y - f) df/dw_k]
    explicit: Callable  # (w, k, x, y, mean) -> -2 E[(y - prod w x) prod_{j!=k} w_j x]
    moments: Callable  # (w, k, sx2, sxy) -> 2 (sx2 prod w - sxy) prod_{j!=k} w_j


S12_PRINTED = GradientChain(
    chain_rule=lambda y, fx, dfx, mean: -2 * mean((y - fx) * dfx),
    explicit=lambda w, k, x, y, mean: -2 * mean((y - prod(w) * x) * others(w, k) * x),
    moments=lambda w, k, sx2, sxy: 2 * (sx2 * prod(w) - sxy) * others(w, k),
)
S12_MUTANTS = {
    "final form: + sigma_xy": S12_PRINTED._replace(moments=lambda w, k, sx2, sxy: 2 * (sx2 * prod(w) + sxy) * others(w, k)),
    "final form: factor 2 missing": S12_PRINTED._replace(moments=lambda w, k, sx2, sxy: (sx2 * prod(w) - sxy) * others(w, k)),
    "final form: product over all j": S12_PRINTED._replace(moments=lambda w, k, sx2, sxy: 2 * (sx2 * prod(w) - sxy) * prod(w)),
    "explicit form: x missing in the inner derivative": S12_PRINTED._replace(
        explicit=lambda w, k, x, y, mean: -2 * mean((y - prod(w) * x) * others(w, k))),
    "chain rule: sign +2": S12_PRINTED._replace(chain_rule=lambda y, fx, dfx, mean: 2 * mean((y - fx) * dfx)),
}


@lru_cache(maxsize=None)
def _sample_symbols(n: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.array(sp.symbols(f"x1:{n + 1}", real=True), dtype=object),
            np.array(sp.symbols(f"y1:{n + 1}", real=True), dtype=object))


@check("S12", method="sympy", printed=S12_PRINTED, mutants=S12_MUTANTS)
def s12_every_form_against_sympy(ctx: Context, formula: GradientChain) -> Measurement:
    """Each expression of (S12) against sympy's derivative of the empirical loss E-hat[(y - f)^2] of
    three symbolic samples, f the composed layers; the final form also with symbolic moments against
    sympy's gradient of the moment loss. Exact, every k, m = 1..max_depth."""
    x, y = _sample_symbols(3)

    def compare(m: int) -> Mapping[str, Any] | None:
        w, sx2, sxy, _ = sn.symbols(m)
        fx = compose(w, x)
        loss = sample_mean((y - fx) ** 2)
        for k in range(m):
            truth = sp.diff(loss, w[k])
            forms = {
                "chain rule": formula.chain_rule(y, fx, np.array([sp.diff(f, w[k]) for f in fx], dtype=object), sample_mean),
                "explicit": formula.explicit(list(w), k, x, y, sample_mean),
                "moments of the samples": formula.moments(list(w), k, sample_mean(x * x), sample_mean(x * y)),
            }
            for name, value in forms.items():
                if sp.expand(value - truth) != 0:
                    return {"k": k + 1, "form": name, "difference": str(sp.factor(value - truth))}
            diff = sp.expand(formula.moments(list(w), k, sx2, sxy) - sn.symbolic_gradient(m)[k])
            if diff != 0:
                return {"k": k + 1, "form": "moments (symbolic)", "difference": str(diff)}
        return None

    return exact_over_depths(ctx, compare)


def s12_worst(formula: GradientChain, w: ln.Array, x: ln.Array, y: ln.Array, sx2: ln.Array, sxy: ln.Array) -> ln.Array:
    """The worst relative gap, over k and the three forms of (S12), to central differences of the
    empirical loss, per instance (any namespace)."""
    xp = ln.namespace(w, x)
    mean = lambda a: xp.mean(a, axis=-1, keepdims=True)  # noqa: E731 - E-hat, one column per instance
    cols = columns(w, keepdims=True)
    loss = lambda v: mean((y - compose(v, x)) ** 2)  # noqa: E731
    fx = compose(cols, x)
    worst = xp.zeros((w.shape[0], 1), dtype=w.dtype)
    for k in range(w.shape[1]):
        d = central_difference(cols, k)
        truth = d(loss)
        forms = (formula.chain_rule(y, fx, d(lambda v: compose(v, x)), mean),
                 formula.explicit(cols, k, x, y, mean),
                 formula.moments(cols, k, sx2[:, None], sxy[:, None]))
        scale = xp.abs(truth) + loss(cols) / xp.clip(xp.abs(cols[k]), min=1.0)
        for value in forms:
            worst = xp.maximum(worst, xp.abs(value - truth) / scale)
    return worst[:, 0]


@check("S12", method="float", printed=S12_PRINTED, mutants=S12_MUTANTS, backend=True)
def s12_against_central_differences(ctx: Context, formula: GradientChain) -> Measurement:
    """Each expression of (S12) on random samples and weights against central differences of the
    empirical loss, which are exact up to rounding because the loss is quadratic in each w_k;
    relative to |gradient| + loss / h; on ``ctx.xp``."""
    out = Residuals()
    for b in points(ctx):
        worst = map_chunks(ctx, lambda *a: s12_worst(formula, *a), (b.w, b.x, b.y, b.sx2, b.sxy))
        out.add(b.m, worst, b.record)
    return out.measurement(1e-12, "central differences of a quadratic are exact; only rounding of loss values, "
                                  "~1e-15 of loss / h, remains")


# --------------------------------------------------------------------------- (S13), (S14)
# A Hessian-entry form is entry(w, k, q, sx2, sxy, d), with d differentiating a function of w
# with respect to w_q (sympy's diff, or an exact central difference).
def _inner(sx2: Any, sxy: Any) -> Callable[[Weights], Any]:
    """The factor sigma_x^2 prod w - sigma_xy of (S12)."""
    return lambda v: sx2 * prod(v) - sxy


def _outer(w, k, q, sx2, sxy, d):
    return d(lambda v: 2 * _inner(sx2, sxy)(v) * others(v, k))


def _product_rule(w, k, q, sx2, sxy, d):
    return 2 * others(w, k) * d(_inner(sx2, sxy)) + 2 * _inner(sx2, sxy)(w) * d(lambda v: others(v, k))


def _first_term(w, k, q, sx2, sxy, d):
    return 2 * others(w, k) * d(_inner(sx2, sxy))


def _product_form(w, k, q, sx2, sxy, d):
    return 2 * sx2 * others(w, k) * others(w, q)


class HessianForms(NamedTuple):
    """The two right-hand sides of (S13)."""

    outer: Callable
    product_rule: Callable


class AtMinimumForms(NamedTuple):
    """The two right-hand sides of (S14)."""

    middle: Callable
    final: Callable


S13_PRINTED = HessianForms(outer=_outer, product_rule=_product_rule)
S13_MUTANTS = {
    "second term dropped (the at-minimum form (S14))": S13_PRINTED._replace(product_rule=_first_term),
    "second term with the opposite sign": S13_PRINTED._replace(
        product_rule=lambda w, k, q, sx2, sxy, d: (_first_term(w, k, q, sx2, sxy, d)
                                                   - 2 * _inner(sx2, sxy)(w) * d(lambda v: others(v, k)))),
    "outer form: + sigma_xy": S13_PRINTED._replace(
        outer=lambda w, k, q, sx2, sxy, d: d(lambda v: 2 * (sx2 * prod(v) + sxy) * others(v, k))),
}
S14_PRINTED = AtMinimumForms(middle=_first_term, final=_product_form)
S14_MUTANTS = {
    "final form: factor 2 missing": S14_PRINTED._replace(final=lambda *a: _product_form(*a) / 2),
    "final form: prod_{j != k} squared": S14_PRINTED._replace(
        final=lambda w, k, q, sx2, sxy, d: 2 * sx2 * others(w, k) ** 2),
    "middle form: derivative of prod_{j != k} w_j": S14_PRINTED._replace(
        middle=lambda w, k, q, sx2, sxy, d: 2 * others(w, k) * d(lambda v: others(v, k))),
}
S14_NOTE = "(S14) writes L(w) for the loss that (S9) calls ell(w); read as ell(w)"


def symbolic_entries_differ(forms: NamedTuple, m: int, on: Mapping[sp.Symbol, sp.Expr] | None = None) -> Mapping[str, Any] | None:
    """Compare every form with sympy's Hessian of the loss, entry by entry, after substituting ``on``."""
    w, sx2, sxy, _ = sn.symbols(m)
    on = on or {}
    H = sn.symbolic_hessian(m).subs(on)
    for k, q in itertools.product(range(m), repeat=2):
        d = symbolic_derivative(list(w), q)
        for name, form in zip(forms._fields, forms):
            diff = sp.expand(sp.sympify(form(list(w), k, q, sx2, sxy, d)).subs(on) - H[k, q])
            if diff != 0:
                return {"k": k + 1, "q": q + 1, "form": name, "difference": str(sp.factor(diff))}
    return None


def float_entries_residual(ctx: Context, forms: NamedTuple, w: np.ndarray, sx2: np.ndarray, sxy: np.ndarray,
                           hessian: np.ndarray) -> np.ndarray:
    """Worst relative residual over the forms of the matrices they give (exact central differences
    for d, on ``ctx.xp``) against ``hessian`` (host), per instance."""
    n, m = w.shape

    def matrices(w: ln.Array, sx2: ln.Array, sxy: ln.Array) -> tuple:
        cols = columns(w)
        return tuple(_as_batch([[form(cols, k, q, sx2, sxy, central_difference(cols, q)) for q in range(m)]
                                for k in range(m)], w.shape[0], sx2) for form in forms)

    worst = np.zeros(n)
    for value in map_chunks(ctx, matrices, (w, sx2, sxy)):
        worst = np.maximum(worst, relative_residuals(value, hessian))
    return worst


FD2_TOL = 1e-5
FD_REASON = "exact central differences (degree <= 2 in w_q, h >= 1) against sympy's Hessian: rounding only"


@check("S13", method="sympy", printed=S13_PRINTED, mutants=S13_MUTANTS)
def s13_against_sympy_hessian(ctx: Context, formula: HessianForms) -> Measurement:
    """Both right-hand sides of (S13) (sympy's diff for the printed d/dw_q) against sympy's Hessian
    of the loss at arbitrary symbolic points, every entry, m = 1..max_depth."""
    return exact_over_depths(ctx, lambda m: symbolic_entries_differ(formula, m))


@check("S13", method="float", printed=S13_PRINTED, mutants=S13_MUTANTS, backend=True)
def s13_at_random_points(ctx: Context, formula: HessianForms) -> Measurement:
    """Both right-hand sides of (S13) (on ``ctx.xp``) against sympy's Hessian of the loss (host) at random
    points (not minima), both signs of tau, random sigma_x^2 and sigma_xy."""
    out = Residuals()
    for b in points(ctx):
        out.add(b.m, float_entries_residual(ctx, formula, b.w, b.sx2, b.sxy, b.hessian), b.record)
    return out.measurement(1e-9, FD_REASON)


def _with_note(m: Measurement, note: str) -> Measurement:
    return Measurement(m.residual, m.tolerance, m.tolerance_reason, m.instances, m.shapes, m.counterexample,
                       m.holds, {**m.details, "note": note})


@check("S14", method="sympy", printed=S14_PRINTED, mutants=S14_MUTANTS)
def s14_on_every_global_minimum(ctx: Context, formula: AtMinimumForms) -> Measurement:
    """Both right-hand sides of (S14) against sympy's Hessian of the loss on the whole set of global
    minima, written as sigma_xy = sigma_x^2 prod w ((S10), (S11)): polynomial identities, so every
    minimum is covered, tau = 0 and zero weights included; m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        w, sx2, sxy, _ = sn.symbols(m)
        return symbolic_entries_differ(formula, m, {sxy: sx2 * prod(w)})

    return _with_note(exact_over_depths(ctx, compare), S14_NOTE)


@check("S14", method="float", printed=S14_PRINTED, mutants=S14_MUTANTS, backend=True)
def s14_at_random_minima(ctx: Context, formula: AtMinimumForms) -> Measurement:
    """Both right-hand sides of (S14) (on ``ctx.xp``) against sympy's Hessian of the loss (host) at random
    global minima, both signs of tau."""
    out = Residuals()
    for b in minima(ctx):
        out.add(b.m, float_entries_residual(ctx, formula, b.w, b.sx2, b.sxy, b.hessian), b.record)
    return _with_note(out.measurement(1e-9, FD_REASON), S14_NOTE)


@check("S14", method="float", printed=S14_PRINTED,
       mutants={"the full Hessian (S13), valid everywhere": AtMinimumForms(_product_rule, _product_rule),
                "final form: factor 2 missing": S14_MUTANTS["final form: factor 2 missing"]}, backend=True)
def s14_needs_the_minimum(ctx: Context, formula: AtMinimumForms) -> Measurement:
    """Evidence that (S14) needs its assumption: its forms equal sympy's Hessian at random global
    minima (the residual) and differ from it by more than 1e-6 (relative) at >= 99% of random
    non-minima of depth m >= 2 (holds). For m = 1 the dropped term of (S13) is identically 0 (it
    differentiates an empty product), so (S14) holds everywhere there. A formula valid everywhere
    (the product rule of (S13)) must be rejected. The forms run on ``ctx.xp``."""
    at_min = Residuals()
    for b in minima(ctx):
        at_min.add(b.m, float_entries_residual(ctx, formula, b.w, b.sx2, b.sxy, b.hessian), b.record)
    measured = at_min.measurement(1e-9, FD_REASON)
    off = np.concatenate([float_entries_residual(ctx, formula, b.w, b.sx2, b.sxy, b.hessian)
                          for b in points(ctx) if b.m >= 2])
    fraction = float(np.mean(off > 1e-6))
    return Measurement(measured.residual, measured.tolerance, measured.tolerance_reason, measured.instances + off.size,
                       measured.shapes, measured.counterexample, holds=measured.ok and fraction >= 0.99,
                       details={"fraction of non-minima where (S14) fails": fraction,
                                "median relative discrepancy at non-minima": float(np.median(off)),
                                "note": S14_NOTE})


# --------------------------------------------------------------------------- (S15)-(S18)
def inverse(w: Weights) -> list[Any]:
    """z = [1/w_1, ..., 1/w_m] of (S16)."""
    return [1 / wj for wj in w]


@lru_cache(maxsize=None)
def on_manifold(m: int) -> tuple[list[sp.Expr], sp.Matrix]:
    """Weights and sympy's Hessian on the global minima with tau != 0: sigma_xy = sigma_x^2 tau (S10),
    w_m = tau / prod(w_1..w_{m-1}) (S11); every such minimum has this form."""
    w, sx2, sxy, _ = sn.symbols(m)
    on = {sxy: sx2 * TAU, w[-1]: TAU / prod(w[:-1])}
    return [wj.subs(on) for wj in w], sn.symbolic_hessian(m).subs(on)


@lru_cache(maxsize=None)
def outer_product_at_minima(m: int) -> bool:
    """sympy: at every global minimum (sigma_xy = sigma_x^2 prod w) the Hessian of the loss equals
    2 sigma_x^2 v v^T, v_k = prod_{j != k} w_j: so it is PSD of rank <= 1, its only nonzero
    eigenvalue is its trace, and lambda_max = trace."""
    w, sx2, sxy, _ = sn.symbols(m)
    v = sp.Matrix([others(w, k) for k in range(m)])
    return (sn.symbolic_hessian(m).subs(sxy, sx2 * prod(w)) - 2 * sx2 * v * v.T).expand() == sp.zeros(m, m)


def s15_printed(sx2: Any, tau: Any, w: Weights, k: int, q: int) -> Any:
    return 2 * sx2 * tau**2 / (w[k] * w[q])


S15_MUTANTS = {
    "factor 2 missing": lambda sx2, tau, w, k, q: sx2 * tau**2 / (w[k] * w[q]),
    "tau instead of tau^2": lambda sx2, tau, w, k, q: 2 * sx2 * tau / (w[k] * w[q]),
    "(w_k w_q)^2 in the denominator": lambda sx2, tau, w, k, q: 2 * sx2 * tau**2 / (w[k] * w[q]) ** 2,
}


def s16_printed(sx2: Any, tau: Any, w: Weights) -> list[list[Any]]:
    z = inverse(w)
    return [[2 * sx2 * tau**2 * zk * zq for zq in z] for zk in z]


S16_MUTANTS = {
    "diag(z)^2 instead of z z^T": lambda sx2, tau, w: [[2 * sx2 * tau**2 * zk * zq * int(k == q) for q, zq in enumerate(inverse(w))]
                                                       for k, zk in enumerate(inverse(w))],
    "w w^T instead of z z^T": lambda sx2, tau, w: [[2 * sx2 * tau**2 * wk * wq for wq in w] for wk in w],
    "tau instead of tau^2": lambda sx2, tau, w: [[2 * sx2 * tau * zk * zq for zq in inverse(w)] for zk in inverse(w)],
}


def _norm(z: Sequence[Any]) -> Any:
    total = sum(zj**2 for zj in z)
    return sp.sqrt(total) if isinstance(z[0], sp.Basic) else total**0.5  # ** 0.5: any array namespace


class Eigenpair(NamedTuple):
    value: Callable  # (sx2, tau, w) -> eigenvalue
    vector: Callable  # (w) -> eigenvector as a list


S17_PRINTED = Eigenpair(value=lambda sx2, tau, w: 2 * sx2 * tau**2 * sum(zj**2 for zj in inverse(w)), vector=inverse)
S17_MUTANTS = {
    "eigenvector w instead of z": S17_PRINTED._replace(vector=list),
    "eigenvector z^2 (entrywise)": S17_PRINTED._replace(vector=lambda w: [zj**2 for zj in inverse(w)]),
    "eigenvalue with ||z|| not squared": S17_PRINTED._replace(
        value=lambda sx2, tau, w: 2 * sx2 * tau**2 * _norm(inverse(w))),
}


class LambdaMaxForms(NamedTuple):
    norm: Callable  # (sx2, tau, w) -> 2 sx2 tau^2 ||z||^2
    sum: Callable  # (sx2, tau, w) -> 2 sx2 tau^2 sum 1/w_j^2


S18_PRINTED = LambdaMaxForms(norm=lambda sx2, tau, w: 2 * sx2 * tau**2 * _norm(inverse(w)) ** 2,
                             sum=lambda sx2, tau, w: 2 * sx2 * tau**2 * sum(1 / wj**2 for wj in w))
S18_MUTANTS = {
    "sum of w_j^2 instead of 1/w_j^2": S18_PRINTED._replace(sum=lambda sx2, tau, w: 2 * sx2 * tau**2 * sum(wj**2 for wj in w)),
    "||z|| not squared": S18_PRINTED._replace(norm=lambda sx2, tau, w: 2 * sx2 * tau**2 * _norm(inverse(w))),
    "tau instead of tau^2": S18_PRINTED._replace(sum=lambda sx2, tau, w: 2 * sx2 * tau * sum(1 / wj**2 for wj in w)),
}


def _per_instance(e: Any, n: int, like: ln.Array) -> ln.Array:
    """An entry (array over the batch, or a number) as an array of shape (n,) in the namespace of ``like``."""
    xp = ln.namespace(like)
    return xp.broadcast_to(e if hasattr(e, "shape") else xp.asarray(e, dtype=like.dtype), (n,))


def _as_batch(nested: list[list[Any]], n: int, like: ln.Array) -> ln.Array:
    """A nested list of per-entry arrays (or scalars) as a batch of matrices (n, m, m), any namespace."""
    xp = ln.namespace(like)
    return xp.stack([xp.stack([_per_instance(e, n, like) for e in row], axis=-1) for row in nested], axis=-2)


def _hessian_entries(formula, sx2, tau, w, n: int) -> ln.Array:
    m = len(w)
    return _as_batch([[formula(sx2, tau, w, k, q) for q in range(m)] for k in range(m)], n, sx2)


def _eigen_residual(formula: Eigenpair, H: ln.Array, sx2, tau, w: list) -> ln.Array:
    """Top eigenvalue, the angle between the top eigenvector and the printed one (sine), and the other
    eigenvalues (must be 0), all relative to lambda_max, from a dense eigensolver of H (any namespace)."""
    xp = ln.namespace(H)
    n = H.shape[0]
    evals, evecs = xp.linalg.eigh(H)
    value = _per_instance(formula.value(sx2, tau, w), n, H)
    vector = xp.stack([_per_instance(c, n, H) for c in formula.vector(w)], axis=-1)
    unit = vector / xp.linalg.vector_norm(vector, axis=-1, keepdims=True)
    top = evecs[:, :, -1]
    sine = xp.linalg.vector_norm(top - xp.sum(top * unit, axis=-1, keepdims=True) * unit, axis=-1)  # no sqrt(1 - cos^2) cancellation
    lam = evals[:, -1]
    rest = (xp.max(xp.abs(evals[:, :-1]), axis=-1) if H.shape[-1] > 1 else xp.zeros_like(lam)) / lam
    return xp.maximum(xp.maximum(xp.abs(value - lam) / lam, sine), rest)


def at_minima(ctx: Context, b: "Minima", fn: Callable[..., Any]) -> Any:
    """``fn(sx2, tau, w columns, hessian)`` for the minima of ``b``, on ``ctx.xp`` in chunks, back on the host."""
    return map_chunks(ctx, lambda sx2, tau, w, H: fn(sx2, tau, columns(w), H), (b.sx2, b.tau, b.w, b.hessian))


@check("S15", method="sympy", printed=s15_printed, mutants=S15_MUTANTS)
def s15_against_sympy_hessian(ctx: Context, formula) -> Measurement:
    """Every entry of sympy's Hessian of the loss on the global minima with tau != 0 (all weights are
    then nonzero) against (S15): exact rational-function identities, m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        w, H = on_manifold(m)
        sx2 = sn.symbols(m)[1]
        for k, q in itertools.product(range(m), repeat=2):
            diff = sp.cancel(H[k, q] - formula(sx2, TAU, w, k, q))
            if diff != 0:
                return {"k": k + 1, "q": q + 1, "difference": str(diff)}
        return None

    return exact_over_depths(ctx, compare)


@check("S15", method="float", printed=s15_printed, mutants=S15_MUTANTS, backend=True)
def s15_at_random_minima(ctx: Context, formula) -> Measurement:
    """(S15) against sympy's Hessian of the loss (and central second differences of the loss) at
    random global minima, both signs of tau. The formula runs on ``ctx.xp``; the references are
    computed on the host (sympy's lambdified Hessian, differences of the loss)."""
    out = Residuals()
    for b in minima(ctx):
        value = at_minima(ctx, b, lambda sx2, tau, w, H: _hessian_entries(formula, sx2, tau, w, H.shape[0]))
        fd = sn.finite_difference_hessian(lambda v: sn.loss(v, b.sx2, b.sxy, 0.0), b.w)
        res = np.maximum(relative_residuals(value, b.hessian), relative_residuals(value, fd) * FLOAT_TOL / FD2_TOL)
        out.add(b.m, res, b.record)
    return out.measurement(FLOAT_TOL, FLOAT_REASON + f"; against second differences (h = 1e-4: truncation and "
                                                     f"rounding) the residual is counted in units of {FD2_TOL:g}")


@check("S16", method="sympy", printed=s16_printed, mutants=S16_MUTANTS)
def s16_against_sympy_hessian(ctx: Context, formula) -> Measurement:
    """sympy's Hessian of the loss on the global minima with tau != 0 equals the matrix (S16), exactly
    (rational functions), m = 1..max_depth; with ``outer_product_at_minima`` it is of rank one."""
    def compare(m: int) -> Mapping[str, Any] | None:
        w, H = on_manifold(m)
        diff = (H - sp.Matrix(formula(sn.symbols(m)[1], TAU, w))).applyfunc(sp.cancel)
        if diff != sp.zeros(m, m):
            return {"difference": str(diff)}
        if not outer_product_at_minima(m):
            return {"step": "H = 2 sigma_x^2 v v^T at minima"}
        return None

    return exact_over_depths(ctx, compare)


@check("S16", method="float", printed=s16_printed, mutants=S16_MUTANTS, backend=True)
def s16_at_random_minima(ctx: Context, formula) -> Measurement:
    """The matrix (S16) (on ``ctx.xp``) against sympy's Hessian of the loss at random global minima, both
    signs of tau."""
    out = Residuals()
    for b in minima(ctx):
        value = at_minima(ctx, b, lambda sx2, tau, w, H: _as_batch(formula(sx2, tau, w), H.shape[0], H))
        out.add(b.m, relative_residuals(value, b.hessian), b.record)
    return out.measurement(FLOAT_TOL, FLOAT_REASON)


def numerical_rank(H: ln.Array) -> ln.Array:
    """Singular values above 1e-9 of the largest, counted (any namespace)."""
    xp = ln.namespace(H)
    s = xp.linalg.svdvals(H)
    return xp.sum(xp.astype(s > 1e-9 * s[:, :1], xp.int64), axis=-1)


@check("S16", method="float", printed=lambda m: 1,
       mutants={"full rank m": lambda m: m, "rank two": lambda m: 2}, backend=True)
def s16_rank_one(ctx: Context, formula) -> Measurement:
    """'The Hessian is a rank one matrix': the numerical rank (singular values above 1e-9 of the
    largest, SVD on ``ctx.xp``) of sympy's Hessian of the loss at random global minima equals the stated
    rank."""
    out = Residuals()
    for b in minima(ctx):
        rank = at_minima(ctx, b, lambda sx2, tau, w, H: numerical_rank(H))
        out.add(b.m, np.abs(rank - formula(b.m)), lambda i, b=b, rank=rank: b.record(i, numerical_rank=rank))
    return out.measurement(0.0, "integer ranks; singular values of a float rank-one matrix other than the first are "
                                "~1e-16 of it, far below the 1e-9 threshold")


@check("S17", method="sympy", printed=S17_PRINTED, mutants=S17_MUTANTS)
def s17_eigenpair_sympy(ctx: Context, formula: Eigenpair) -> Measurement:
    """On the global minima with tau != 0, sympy's Hessian of the loss times the printed eigenvector
    equals the printed eigenvalue times it (exact, m = 1..max_depth); the other eigenvalues are 0
    because that Hessian is 2 sigma_x^2 v v^T (rank one, ``outer_product_at_minima``)."""
    def compare(m: int) -> Mapping[str, Any] | None:
        w, H = on_manifold(m)
        sx2 = sn.symbols(m)[1]
        z = sp.Matrix(formula.vector(w))
        diff = (H * z - formula.value(sx2, TAU, w) * z).applyfunc(sp.cancel)
        if diff != sp.zeros(m, 1) or z == sp.zeros(m, 1):
            return {"H z - lambda z": str(diff)}
        return None if outer_product_at_minima(m) else {"step": "rank one"}

    return exact_over_depths(ctx, compare)


@check("S17", method="float", printed=S17_PRINTED, mutants=S17_MUTANTS, backend=True)
def s17_eigenpair_float(ctx: Context, formula: Eigenpair) -> Measurement:
    """A dense eigensolver of sympy's Hessian at random global minima (on ``ctx.xp``): its top eigenvalue
    equals the printed one, its top eigenvector is parallel to z (sine of the angle), its other
    eigenvalues are 0 (relative to lambda_max)."""
    out = Residuals()
    for b in minima(ctx):
        out.add(b.m, at_minima(ctx, b, lambda sx2, tau, w, H: _eigen_residual(formula, H, sx2, tau, w)), b.record)
    return out.measurement(1e-8, "eigenvectors of a float64 symmetric matrix with a gap lambda_max: ~m eps cond")


@check("S18", method="sympy", printed=S18_PRINTED, mutants=S18_MUTANTS)
def s18_trace_sympy(ctx: Context, formula: LambdaMaxForms) -> Measurement:
    """lambda_max of sympy's Hessian on the global minima with tau != 0 is its trace (the Hessian is
    2 sigma_x^2 v v^T, PSD of rank one); both printed forms equal it exactly, m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        if not outer_product_at_minima(m):
            return {"step": "rank one"}
        w, H = on_manifold(m)
        for name, form in zip(formula._fields, formula):
            diff = sp.cancel(H.trace() - form(sn.symbols(m)[1], TAU, w))
            if diff != 0:
                return {"form": name, "difference": str(diff)}
        return None

    return exact_over_depths(ctx, compare)


@check("S18", method="float", printed=S18_PRINTED, mutants=S18_MUTANTS, backend=True)
def s18_against_eigensolver(ctx: Context, formula: LambdaMaxForms) -> Measurement:
    """Both printed forms of lambda_max against the largest eigenvalue of sympy's Hessian of the loss
    (dense symmetric eigensolver) at random global minima, both signs of tau; both on ``ctx.xp``."""
    out = Residuals()
    for b in minima(ctx):
        def forms(sx2, tau, w, H):
            lam = ln.namespace(H).linalg.eigvalsh(H)[:, -1]
            return (lam, *(_per_instance(form(sx2, tau, w), H.shape[0], H) for form in formula))

        lam, *values = at_minima(ctx, b, forms)
        res = np.max([np.abs(v - lam) / lam for v in values], axis=0)
        out.add(b.m, res, b.record)
    return out.measurement(FLOAT_TOL, FLOAT_REASON)


# tau = 0: every global minimum has a zero weight, so 1/w_k in (S15)-(S18) is undefined there.
EXACT_SIGMA_X2 = sp.Rational(3, 2)


def exact_minima(m: int, rng: np.random.Generator) -> list[tuple[sp.Rational, list[sp.Rational]]]:
    """Exact global minima (tau, w) of depth m: one with tau != 0 of each sign, and tau = 0 ones with
    one zero weight and (m >= 2) two zero weights."""
    def free(count: int) -> list[sp.Rational]:
        return [sp.Rational(int(rng.integers(1, 5)) * int(rng.choice([-1, 1])), int(rng.integers(1, 4))) for _ in range(count)]

    out = []
    for tau in (sp.Rational(3, 2), sp.Rational(-2, 3)):
        f = free(m - 1)
        out.append((tau, f + [tau / prod(f)]))
    out.append((sp.Integer(0), [sp.Integer(0)] + free(m - 1)))
    if m >= 2:
        out.append((sp.Integer(0), [sp.Integer(0), sp.Integer(0)] + free(m - 2)))
    return out


def _exact_hessian(m: int, tau: sp.Expr, w: Sequence[sp.Expr]) -> sp.Matrix:
    ws, sx2, sxy, _ = sn.symbols(m)
    return sn.symbolic_hessian(m).subs({**dict(zip(ws, w)), sx2: EXACT_SIGMA_X2, sxy: EXACT_SIGMA_X2 * tau})


def _finite(value: Any) -> bool:
    return all(sp.sympify(e).is_finite for e in (value if isinstance(value, (list, sp.Matrix)) else [value]))


def all_minima_check(ctx: Context, differs: Callable[[int, sp.Expr, list, sp.Matrix], Mapping[str, Any] | None]) -> Measurement:
    """Exact comparison on every minimum of ``exact_minima``, tau = 0 included; the first failure is
    kept (smallest m first)."""
    rng = ctx.rng("exact minima")

    def compare(m: int) -> Mapping[str, Any] | None:
        for tau, w in exact_minima(m, rng):
            bad = differs(m, tau, w, _exact_hessian(m, tau, w))
            if bad is not None:
                return {"sigma_x2": str(EXACT_SIGMA_X2), "tau": str(tau), "w": [str(x) for x in w], **bad}
        return None

    return exact_over_depths(ctx, compare, reason="exact rational arithmetic (sympy); undefined values (0/0) fail")


def _s15_differs(formula):
    def differs(m, tau, w, H):
        for k, q in itertools.product(range(m), repeat=2):
            value = formula(EXACT_SIGMA_X2, tau, w, k, q)
            if not _finite(value) or sp.simplify(value - H[k, q]) != 0:
                return {"k": k + 1, "q": q + 1, "hessian_entry": str(H[k, q]), "printed": str(value)}
        return None
    return differs


def _s16_differs(formula):
    def differs(m, tau, w, H):
        value = sp.Matrix(formula(EXACT_SIGMA_X2, tau, w))
        if not _finite(list(value)) or value != H:
            return {"hessian": str(H.tolist()), "printed": str(value.tolist())}
        return None
    return differs


def _s17_differs(formula):
    def differs(m, tau, w, H):
        z, lam = sp.Matrix(formula.vector(w)), formula.value(EXACT_SIGMA_X2, tau, w)
        if not _finite(list(z) + [lam]) or H * z != lam * z:
            return {"hessian": str(H.tolist()), "printed_vector": str(list(z)), "printed_value": str(lam)}
        return None
    return differs


def _s18_differs(formula):
    def differs(m, tau, w, H):
        lam = float(np.linalg.eigvalsh(np.array(H.tolist(), dtype=float))[-1])
        for name, form in zip(formula._fields, formula):
            value = form(EXACT_SIGMA_X2, tau, w)
            if not _finite(value) or abs(float(value) - lam) > 1e-12 * max(1.0, lam):
                return {"form": name, "lambda_max": lam, "printed": str(value)}
        return None
    return differs


def _tau_zero_check(label: str, printed: Any, mutants: Mapping[str, Any], differs) -> None:
    @check(label, method="exact", printed=printed, mutants=mutants, without="tau != 0",
           name=f"{label.lower()}_on_every_minimum_tau_zero_included")
    def run(ctx: Context, formula) -> Measurement:
        """The printed formula at exact global minima, tau = 0 included (there some w_k = 0 and 1/w_k
        is undefined), against sympy's Hessian of the loss (for lambda_max: its eigenvalues)."""
        return all_minima_check(ctx, differs(formula))


_tau_zero_check("S15", s15_printed, S15_MUTANTS, _s15_differs)
_tau_zero_check("S16", s16_printed, S16_MUTANTS, _s16_differs)
_tau_zero_check("S17", S17_PRINTED, S17_MUTANTS, _s17_differs)
_tau_zero_check("S18", S18_PRINTED, S18_MUTANTS, _s18_differs)


# --------------------------------------------------------------------------- (S19)-(S22)
def printed_minimum(m: Any, sx2: Any, tau: Any) -> Any:
    """2 m sigma_x^2 tau^(2(1 - 1/m)): the right-hand side of (S21), stated to be the value of (S19)."""
    return 2 * m * sx2 * tau ** (2 * (1 - 1 / m))


def corrected_minimum(m: Any, sx2: Any, tau: Any) -> Any:
    return 2 * m * sx2 * (tau**2) ** (1 - 1 / m)


MINIMUM_MUTANTS = {
    "factor m missing": lambda m, sx2, tau: 2 * sx2 * tau ** (2 * (1 - 1 / m)),
    "exponent 2/m instead of 2(1 - 1/m)": lambda m, sx2, tau: 2 * m * sx2 * tau ** (2 / m),
    "factor 2 missing": lambda m, sx2, tau: m * sx2 * tau ** (2 * (1 - 1 / m)),
}
NEGATIVE_TAU = ("for tau < 0, tau^{2(1-1/m)} (principal branch) is negative for m = 2 and not real for m >= 3; "
                "with |tau|, i.e. (tau^2)^{1-1/m}, it holds")
S19_CORRECTED = Variant(corrected_minimum, reason=NEGATIVE_TAU,
                        text=r"\min_{\prod_j w_j = \tau} \lambda_{\max}(\mathbf{H}_{\mathbf{w}}) = "
                             r"2m \hat{\sigma}_x^2 |\tau|^{2(1-\frac{1}{m})}")
S21_CORRECTED = Variant(corrected_minimum, reason=NEGATIVE_TAU,
                        text=r"\lambda_{\max}(\mathbf{H}_{\mathbf{w}}) \geq 2m \hat{\sigma}_x^2 |\tau|^{2(1-\frac{1}{m})}")


@lru_cache(maxsize=None)
def flattest_derivation(m: int) -> tuple[str, ...]:
    """The steps of the minimum of (S19) that fail, derived with sympy from the loss (empty: all hold).

    At a global minimum the Hessian is 2 sigma_x^2 v v^T (``outer_product_at_minima``), so
    lambda_max = 2 sigma_x^2 sum_k prod_{j != k} w_j^2 = F(a), a_j = w_j^2 > 0 (tau != 0), and the
    feasible set is {prod a = tau^2} (any such a is reached by choosing signs). For the Lagrangian
    F - mu (prod a - tau^2) with gradient g, the identity a_k g_k - a_l g_l = 2 sigma_x^2 (a_k - a_l)
    prod_{j != k, l} a_j holds, so every critical point has all a_j equal: a_j = (tau^2)^{1/m}. F
    grows without bound as some a_j -> 0 on the constraint set, so this point is the minimum."""
    if not outer_product_at_minima(m):
        return ("H = 2 sigma_x^2 v v^T at the minima",)
    sx2, mu = sn.symbols(m)[1], sp.Symbol("mu")
    a = sp.symbols(f"a1:{m + 1}", positive=True)
    F = 2 * sx2 * sum(others(a, k) for k in range(m))
    g = [sp.diff(F - mu * (prod(a) - TAU**2), ak) for ak in a]
    for k, l in itertools.combinations(range(m), 2):
        rest = prod(a[j] for j in range(m) if j not in (k, l))
        if sp.expand(a[k] * g[k] - a[l] * g[l] - 2 * sx2 * (a[k] - a[l]) * rest) != 0:
            return (f"Lagrange identity for k={k + 1}, l={l + 1}",)
    return ()


def flattest_values(m: int) -> tuple[sp.Expr, sp.Expr]:
    """w_j^2 at the flattest minima, (tau^2)^{1/m}, and the minimum 2 m sigma_x^2 ((tau^2)^{1/m})^{m-1}."""
    c = (TAU**2) ** sp.Rational(1, m)
    return c, 2 * m * sn.symbols(m)[1] * c ** (m - 1)


def zero_tau_minimum(m: int) -> sp.Expr:
    """The minimum of (S19) for tau = 0: lambda_max at w = 0 (sympy's Hessian there), which is the least
    value since the Hessian at every minimum is PSD (``outer_product_at_minima``); for m = 1, w = 0 is
    the only minimum."""
    w, sx2, sxy, _ = sn.symbols(m)
    H0 = sn.symbolic_hessian(m).subs({**{wj: 0 for wj in w}, sxy: 0})
    return max(H0.eigenvals(), key=lambda e: e.subs(sx2, 1))


@check("S19", method="sympy", printed=printed_minimum, mutants=MINIMUM_MUTANTS, corrected=S19_CORRECTED)
def s19_minimum_derived_with_sympy(ctx: Context, formula) -> Measurement:
    """The minimum of (S19) derived from sympy's Hessian of the loss (``flattest_derivation``), and
    for tau = 0 from the Hessian at w = 0, against the printed value, separately for tau > 0 and tau < 0
    (principal powers), m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        failed = flattest_derivation(m)
        if failed:
            return {"step": failed[0]}
        sx2 = sn.symbols(m)[1]
        bad = same_power(flattest_values(m)[1], formula(sp.Integer(m), sx2, TAU))
        if bad is not None:
            return {"sigma_x2": "symbolic", **bad}
        at_zero = sp.sympify(formula(sp.Integer(m), sx2, sp.Integer(0)))
        if sp.simplify(at_zero - zero_tau_minimum(m)) != 0:
            return {"tau": 0, "derived": str(zero_tau_minimum(m)), "printed": str(at_zero)}
        return None

    return exact_over_depths(ctx, compare)


@dataclass(frozen=True)
class SharpnessMinimum:
    """The least lambda_max found on {prod w = tau} by BFGS from several starts."""

    m: int
    sx2: float
    tau: float
    w: np.ndarray
    value: float

    def record(self, **extra: Any) -> dict[str, Any]:
        return {"m": self.m, "sigma_x2": self.sx2, "tau": self.tau, "minimizer": self.w, "lambda_max": self.value, **extra}


def _feasible(free: np.ndarray, tau: float) -> np.ndarray:
    return np.append(free, tau / np.prod(free))


def minimize_sharpness(rng: np.random.Generator, m: int, sx2: float, tau: float, starts: int = 2) -> SharpnessMinimum:
    """min lambda_max(H_w) over prod w = tau: w_j = s_j e^{u_j} (j < m, random signs s), w_m = tau / prod,
    BFGS over u from random starts; lambda_max from a dense eigensolver of sympy's Hessian."""
    def sharpness(w: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            H = sn.hessian(w[None], sx2, sx2 * tau)
        return float(np.linalg.eigvalsh(H)[0, -1]) if np.all(np.isfinite(H)) else np.inf  # line searches may overflow

    if m == 1:
        return SharpnessMinimum(m, sx2, tau, np.array([tau]), sharpness(np.array([tau])))
    best = None
    for _ in range(starts):
        s = rng.choice([-1.0, 1.0], m - 1)
        with np.errstate(all="ignore"):
            res = optimize.minimize(lambda u: sharpness(_feasible(s * np.exp(u), tau)), rng.standard_normal(m - 1),
                                    method="BFGS", options={"gtol": 1e-9})
        if best is None or res.fun < best.value:
            best = SharpnessMinimum(m, sx2, tau, _feasible(s * np.exp(res.x), tau), float(res.fun))
    return best


@lru_cache(maxsize=4)
def sharpness_minima(seed: int, count: int, max_depth: int) -> tuple[SharpnessMinimum, ...]:
    rng = np.random.default_rng(seed)
    return tuple(minimize_sharpness(rng, int(rng.integers(1, max_depth + 1)), float(np.exp(rng.uniform(-2, 2))),
                                    float(signed_scales(rng, 1)[0])) for _ in range(count))


def optimized(ctx: Context) -> tuple[SharpnessMinimum, ...]:
    """Shared by the (S19) and (S22) checks: min(500, max(12, instances // 40)) optimizations."""
    count = min(500, max(12, ctx.profile.instances // 40))
    return sharpness_minima(derive_seed(ctx.seed, "III.1", "sharpness minimization"), count, float_depths(ctx).stop - 1)


@check("S19", method="simulation", printed=printed_minimum, mutants=MINIMUM_MUTANTS, corrected=S19_CORRECTED)
def s19_minimum_by_optimizer(ctx: Context, formula) -> Measurement:
    """The least lambda_max over {prod w = tau} found by BFGS from several starts (dense eigensolver of
    sympy's Hessian) against the printed minimum (principal power), random m, both signs of tau."""
    runs = optimized(ctx)
    with np.errstate(all="ignore"):
        printed = [complex(formula(r.m, r.sx2, complex(r.tau))) for r in runs]
    res = np.array([abs(p - r.value) / r.value for p, r in zip(printed, runs)])
    return batch_measurement(res, 1e-7, "BFGS on a smooth function: lambda_max near its minimum is quadratic, so "
                                        "the value is found to ~1e-12; 1e-7 for safety",
                             sorted({f"m={r.m}" for r in runs}),
                             lambda i: to_jsonable(runs[i].record(printed=[printed[i].real, printed[i].imag])))


class AmGm(NamedTuple):
    """The two right-hand sides of (S20)."""

    middle: Callable  # (w, m) -> m (prod 1/w_j^2)^{1/m}
    right: Callable  # (m, tau) -> m tau^{-2/m}


S20_PRINTED = AmGm(middle=lambda w, m: m * prod(1 / wj**2 for wj in w) ** (1 / m), right=lambda m, tau: m * tau ** (-2 / m))
S20_MUTANTS = {
    "right side: exponent 2/m": S20_PRINTED._replace(right=lambda m, tau: m * tau ** (2 / m)),
    "right side: factor m missing": S20_PRINTED._replace(right=lambda m, tau: tau ** (-2 / m)),
    "middle: m-th root missing": S20_PRINTED._replace(middle=lambda w, m: m * prod(1 / wj**2 for wj in w)),
}
S20_CORRECTED = Variant(S20_PRINTED._replace(right=lambda m, tau: m * (tau**2) ** (-1 / m)), reason=NEGATIVE_TAU.replace(
    "{2(1-1/m)}", "{-2/m}").replace("{1-1/m}", "{-1/m}"),
    text=r"\sum_{j=1}^m \frac{1}{w_j^2} \geq m \left(\prod_{j=1}^m \frac{1}{w_j^2}\right)^{\frac{1}{m}} = m |\tau|^{-\frac{2}{m}}")


def s20_sides(formula: AmGm, m: int, tau: ln.Array, w: ln.Array) -> tuple[ln.Array, ...]:
    """max of the AM-GM violation (middle - sum 1/w_j^2)/sum and |middle - right| / |middle| at
    feasible points w (the right side on the principal branch), then the sides: sum 1/w_j^2, middle,
    real and imaginary parts of the right side. Any namespace."""
    xp = ln.namespace(w, tau)
    with np.errstate(all="ignore"):
        lhs = xp.sum(1 / w**2, axis=-1)
        mid = xp.broadcast_to(formula.middle(columns(w), m), tau.shape)
        right = xp.broadcast_to(formula.right(m, complex_tau(tau)), tau.shape)
        res = xp.maximum(xp.clip(mid - lhs, min=0.0) / lhs, xp.abs(mid - right) / xp.abs(mid))
    return res, lhs, mid, xp.real(right), xp.imag(right)


def s20_residual(formula: AmGm, m: int, tau: np.ndarray, w: np.ndarray,
                 ctx: Context | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``s20_sides`` on ``ctx.xp`` (NumPy without a context): the residual and the named sides (host)."""
    res, lhs, mid, re, im = map_chunks(ctx or Context(), lambda t, v: s20_sides(formula, m, t, v), (tau, w))
    return res, {"sum_inverse_squares": lhs, "middle": mid, "printed_right": np.stack([re, im], -1)}


@check("S20", method="sympy", printed=S20_PRINTED, mutants=S20_MUTANTS, corrected=S20_CORRECTED)
def s20_equality_on_the_manifold(ctx: Context, formula: AmGm) -> Measurement:
    """The equality in (S20): m (prod 1/w_j^2)^{1/m} with w on {prod w = tau} (w_m = tau / prod of the
    others) against m tau^{-2/m}, exact, separately for tau > 0 and tau < 0 (principal powers),
    m = 1..max_depth. (The inequality is AM-GM; it is searched numerically.)"""
    def compare(m: int) -> Mapping[str, Any] | None:
        w = on_manifold(m)[0]
        return same_power(formula.middle(w, sp.Integer(m)), formula.right(sp.Integer(m), TAU))

    return exact_over_depths(ctx, compare)


@check("S20", method="float", printed=S20_PRINTED, mutants=S20_MUTANTS, corrected=S20_CORRECTED, backend=True)
def s20_at_random_minima(ctx: Context, formula: AmGm) -> Measurement:
    """Both relations of (S20) at random global minima (w_1..w_{m-1} log-normal, w_m = tau / prod),
    both signs of tau: sum 1/w_j^2 computed directly; on ``ctx.xp``."""
    out = Residuals()
    for b in minima(ctx):
        res, sides = s20_residual(formula, b.m, b.tau, b.w, ctx)
        out.add(b.m, res, lambda i, b=b, sides=sides: b.record(i, **sides))
    return out.measurement(FLOAT_TOL, FLOAT_REASON)


@st.composite
def feasible_points(draw, zero_tau: bool = False) -> dict[str, Any]:
    """m in 1..8, tau of either sign in 10^(+-2) (or 0), sigma_x^2 in 10^(+-1), and a point of
    {prod w = tau}: w_j = s_j r 10^(e_j) for j < m, r = |tau|^{1/m} (1 for tau = 0), e_j in [-1, 1]."""
    m = draw(st.integers(1, 8))
    signed = st.builds(lambda s, e: s * 10.0**e, st.sampled_from([1.0, -1.0]), st.floats(-2.0, 2.0))
    tau = draw(st.one_of(st.just(0.0), signed) if zero_tau else signed)
    r = abs(tau) ** (1 / m) if tau else 1.0
    free = [draw(st.sampled_from([1.0, -1.0])) * r * 10.0 ** draw(st.floats(-1.0, 1.0)) for _ in range(m - 1)]
    return {"m": m, "tau": tau, "sigma_x2": 10.0 ** draw(st.floats(-1.0, 1.0)), "w": free + [tau / prod(free)]}


def _point(ex: Mapping[str, Any]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    return ex["m"], np.array([ex["sigma_x2"]]), np.array([ex["tau"]]), np.array([ex["w"]])


@check("S20", method="hypothesis", printed=S20_PRINTED, mutants=S20_MUTANTS, corrected=S20_CORRECTED)
def s20_search(ctx: Context, formula: AmGm) -> Measurement:
    """Search feasible points (both signs of tau) where the AM-GM inequality or the equality of (S20)
    fails (principal powers)."""
    def residual(ex: Mapping[str, Any]) -> float:
        m, _, tau, w = _point(ex)
        return float(s20_residual(formula, m, tau, w)[0][0])

    return search(ctx, feasible_points(), residual, FLOAT_TOL, FLOAT_REASON, shape=lambda ex: f"m={ex['m']}")


def balanced(w: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """|w_j| = |tau|^{1/m} with the signs of w_1..w_{m-1} and the last sign making prod w = tau: where
    the text says (S21) is attained."""
    m = w.shape[1]
    s = np.where(w[:, :-1] < 0, -1.0, 1.0)
    signs = np.concatenate([s, (np.sign(tau) * np.prod(s, -1))[:, None]], -1)
    return np.abs(tau)[:, None] ** (1 / m) * signs


def s21_sides(formula, m: int, sx2: ln.Array, tau: ln.Array, H: ln.Array, H_bal: ln.Array) -> tuple[ln.Array, ...]:
    """Given the Hessians at feasible w and at its balanced point: the violation of lambda_max(w) >=
    bound and the gap between the bound and lambda_max at the balanced point (it must be attained),
    relative to lambda_max, infinite when the printed bound is not a real number; then the bound's
    real and imaginary parts and both lambda_max (dense eigensolver). Any namespace."""
    xp = ln.namespace(H, tau)
    with np.errstate(all="ignore"):
        bound = xp.broadcast_to(formula(m, sx2, complex_tau(tau)), tau.shape)
    lam = xp.linalg.eigvalsh(H)[:, -1]
    lam_bal = xp.linalg.eigvalsh(H_bal)[:, -1]
    floor = 1e-12 * sx2  # lambda_max is 0 at tau = 0, m >= 2
    re, im = xp.real(bound), xp.imag(bound)
    violation = xp.clip(re - lam, min=0.0) / xp.maximum(lam, floor)
    gap = xp.abs(lam_bal - re) / xp.maximum(lam_bal, floor)
    real = xp.abs(im) <= 1e-12 * xp.abs(bound)
    res = xp.where(real, xp.maximum(violation, gap), xp.full_like(gap, math.inf))
    return res, re, im, lam, lam_bal


def s21_residual(formula, m: int, sx2: np.ndarray, tau: np.ndarray, w: np.ndarray,
                 ctx: Context | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``s21_sides`` on ``ctx.xp`` (NumPy without a context) with sympy's Hessians of the loss at w and
    at its balanced point (host): the residual, the bound and both lambda_max."""
    sxy = sx2 * tau
    hessians = (sn.hessian(w, sx2, sxy), sn.hessian(balanced(w, tau), sx2, sxy))
    res, re, im, lam, lam_bal = map_chunks(ctx or Context(), lambda *a: s21_sides(formula, m, *a), (sx2, tau, *hessians))
    return res, {"printed_bound": np.stack([re, im], -1), "lambda_max": lam, "lambda_max_balanced": lam_bal}


@check("S21", method="float", printed=printed_minimum, mutants=MINIMUM_MUTANTS, corrected=S21_CORRECTED, backend=True)
def s21_at_random_minima(ctx: Context, formula) -> Measurement:
    """(S21) at random global minima (both signs of tau, and tau = 0 minima with w_1 = 0) and its
    attainment at the balanced point, against a dense eigensolver (on ``ctx.xp``) of sympy's Hessian
    of the loss (host).
    Reported: the least slack (lambda_max - bound) / lambda_max over the random minima with m >= 2
    where the printed bound is real (for m = 1 every minimum is flattest)."""
    out = Residuals()
    slack = [np.array([np.inf])]
    for b in minima(ctx):
        res, seen = s21_residual(formula, b.m, b.sx2, b.tau, b.w, ctx)
        out.add(b.m, res, lambda i, b=b, seen=seen: b.record(i, **seen))
        bound, lam = seen["printed_bound"], seen["lambda_max"]
        if b.m >= 2:
            slack.append(((lam - bound[:, 0]) / lam)[np.abs(bound[:, 1]) <= 1e-12 * np.abs(bound[:, 0])])
        zero = b.w[:20].copy()
        zero[:, 0] = 0.0
        res, seen = s21_residual(formula, b.m, b.sx2[:20], np.zeros(len(zero)), zero, ctx)
        out.add(b.m, res, lambda i, z=zero, b=b, seen=seen: {"m": b.m, "sigma_x2": b.sx2[i], "tau": 0.0, "w": z[i],
                                                             **{k: v[i] for k, v in seen.items()}}, shape=", tau=0")
    return out.measurement(FLOAT_TOL, FLOAT_REASON, least_slack_m_ge_2=float(np.min(np.concatenate(slack))))


@check("S21", method="hypothesis", printed=printed_minimum, mutants=MINIMUM_MUTANTS, corrected=S21_CORRECTED)
def s21_search(ctx: Context, formula) -> Measurement:
    """Search feasible points (tau of either sign or 0) where (S21) fails or is not attained at the
    balanced point (principal powers; lambda_max from sympy's Hessian)."""
    def residual(ex: Mapping[str, Any]) -> float:
        m, sx2, tau, w = _point(ex)
        return float(s21_residual(formula, m, sx2, tau, w)[0][0])

    return search(ctx, feasible_points(zero_tau=True), residual, FLOAT_TOL, FLOAT_REASON, shape=lambda ex: f"m={ex['m']}")


def s22_printed(m: Any, tau: Any) -> tuple[Any, Any]:
    """Omega_0 as (the required prod_j sgn(w_j), the common |w_j|)."""
    return sgn(tau), abs(tau) ** (1 / m)


S22_MUTANTS = {
    "sign condition dropped (product of signs +1)": lambda m, tau: (sgn(tau) ** 2, abs(tau) ** (1 / m)),
    "m-th root missing": lambda m, tau: (sgn(tau), abs(tau)),
    "2m-th root": lambda m, tau: (sgn(tau), abs(tau) ** (1 / (2 * m))),
}


def omega0_member(formula, m: int, tau: np.ndarray, w: np.ndarray, rtol: float) -> np.ndarray:
    sign, mag = (np.broadcast_to(np.asarray(v, dtype=float), tau.shape)[:, None] for v in formula(m, tau))
    close = np.all(np.abs(np.abs(w) - mag) <= rtol * mag, -1)
    return close & (np.prod(np.sign(w), -1) == sign[:, 0])


def omega0_sample(formula, m: int, tau: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points of Omega_0 as the formula describes it: random signs with the required product."""
    sign, mag = (np.broadcast_to(np.asarray(v, dtype=float), tau.shape) for v in formula(m, tau))
    s = rng.choice([-1.0, 1.0], (len(tau), m - 1))
    return mag[:, None] * np.concatenate([s, (sign * np.prod(s, -1))[:, None]], -1)


def s22_violations(ctx: Context, formula) -> tuple[list[dict], int, list[str]]:
    """tau != 0: points of Omega_0 must be global minima of one common lambda_max; random feasible
    points must not be flatter, and as flat only inside Omega_0; the minimizers of (S19) found by
    the optimizer must lie in Omega_0 with the same lambda_max."""
    rng = ctx.rng("omega0 samples")
    bad, total, shapes = [], 0, []

    def flag(reason: str, **data: Any) -> None:
        bad.append({"reason": reason, **data})

    for b in minima(ctx):
        omega = [omega0_sample(formula, b.m, b.tau, rng) for _ in range(2)]
        lam_o = [sn.lambda_max(o, b.sx2, b.sxy) for o in omega]
        lam_w = np.linalg.eigvalsh(b.hessian)[:, -1]
        inside = omega0_member(formula, b.m, b.tau, b.w, 1e-6)
        for i in range(len(b.tau)):
            rec = lambda **x: b.record(i) | {k: to_jsonable(v) for k, v in x.items()}  # noqa: E731
            if any(abs(np.prod(o[i]) - b.tau[i]) > 1e-12 * abs(b.tau[i]) for o in omega):
                flag("a point of Omega_0 is not a global minimum (prod w != tau)", **rec(omega0_point=omega[0][i]))
            elif abs(lam_o[0][i] - lam_o[1][i]) > 1e-9 * lam_o[0][i]:
                flag("points of Omega_0 with different lambda_max", **rec(points=[o[i] for o in omega]))
            elif lam_w[i] < lam_o[0][i] * (1 - 1e-9):
                flag("a global minimum flatter than Omega_0", **rec(lambda_max=lam_w[i], omega0=lam_o[0][i]))
            elif not inside[i] and lam_w[i] <= lam_o[0][i] * (1 + 1e-9):
                flag("a global minimum outside Omega_0 as flat as Omega_0", **rec(lambda_max=lam_w[i]))
        total += 3 * len(b.tau)
        shapes.append(f"m={b.m}")
    for r in optimized(ctx):
        tau = np.array([r.tau])
        o = omega0_sample(formula, r.m, tau, rng)
        lam_o = float(sn.lambda_max(o, np.array([r.sx2]), r.sx2 * tau)[0])
        if not omega0_member(formula, r.m, tau, r.w[None], 1e-4)[0]:
            bad.append(r.record(reason="a minimizer of (S19) found by the optimizer lies outside Omega_0"))
        elif abs(lam_o - r.value) > 1e-6 * r.value:
            bad.append(r.record(reason="the optimum differs from lambda_max on Omega_0", omega0=lam_o))
        total += 1
    return bad, total, shapes


@check("S22", method="float", printed=s22_printed, mutants=S22_MUTANTS)
def s22_flattest_set(ctx: Context, formula) -> Measurement:
    """Omega_0 as printed against ground truth for tau != 0 (both signs): lambda_max from a dense
    eigensolver of sympy's Hessian at random global minima and at sampled points of Omega_0, global
    minima by (S11), and the minimizers of (S19) found by BFGS (shared with the (S19) check). Stays on
    NumPy: scipy's optimizer and a per-instance host loop of case distinctions."""
    bad, total, shapes = s22_violations(ctx, formula)
    return count_measurement(bad, total, shapes)


@check("S22", method="sympy", printed=s22_printed, mutants=S22_MUTANTS)
def s22_derived_with_sympy(ctx: Context, formula) -> Measurement:
    """The minimizers of (S19) derived with sympy from the loss (``flattest_derivation``: w_j^2 =
    (tau^2)^{1/m} for all j, prod w = tau) against Omega_0: the printed |w_j| squared must equal
    (tau^2)^{1/m} and (required sign) * |w_j|^m must equal tau, for tau > 0 and tau < 0,
    m = 1..max_depth."""
    def compare(m: int) -> Mapping[str, Any] | None:
        failed = flattest_derivation(m)
        if failed:
            return {"step": failed[0]}
        sign, mag = formula(sp.Integer(m), TAU)
        bad = same_power(flattest_values(m)[0], mag**2)
        if bad is not None:
            return {"condition": "|w_j|", **bad}
        bad = same_power(TAU, sign * mag**m)
        return None if bad is None else {"condition": "sign of the product", **bad}

    return exact_over_depths(ctx, compare)


@check("S22", method="hypothesis", printed=s22_printed, mutants=S22_MUTANTS)
def s22_search(ctx: Context, formula) -> Measurement:
    """Search feasible points (tau != 0, both signs; balanced points are drawn too) that are flatter
    than Omega_0, or as flat (within 1e-12) while 1e-3 away from it, or inside it but sharper, or
    an Omega_0 point that is not a global minimum."""
    def residual(ex: Mapping[str, Any]) -> float:
        m, sx2, tau, w = _point(ex)
        sign, mag = (float(np.asarray(v).ravel()[0]) for v in formula(m, tau))
        omega = np.array([[mag] * (m - 1) + [sign * mag]])
        if abs(np.prod(omega) - tau[0]) > 1e-12 * abs(tau[0]):
            return 1.0
        lam_o, lam = sn.lambda_max(omega, sx2, sx2 * tau)[0], sn.lambda_max(w, sx2, sx2 * tau)[0]
        distance = np.max(np.abs(np.abs(w[0]) / mag - 1)) if mag > 0 else np.inf
        inside = omega0_member(formula, m, tau, w, 1e-9)[0]
        return float(lam < lam_o * (1 - 1e-9) or (distance > 1e-3 and lam <= lam_o * (1 + 1e-12))
                     or (inside and lam > lam_o * (1 + 1e-9)))

    return search(ctx, feasible_points(), residual, 0.0, SET_REASON, shape=lambda ex: f"m={ex['m']}")


def s22_zero_tau_violations(formula, depths: range) -> tuple[list[dict], int]:
    """tau = 0: every w in {-1, 0, 1}^m with prod w = 0 (a global minimum), sigma_x^2 = 1. The least
    lambda_max among them is the minimum of (S19) (the Hessian at minima is PSD, and w = 0 is among
    them). Flattest (lambda_max at that least value) must be the same as being in Omega_0."""
    bad, total = [], 0
    for m in depths:
        W = np.array([c for c in itertools.product((0.0, 1.0, -1.0), repeat=m) if prod(c) == 0])
        total += len(W)
        lam = sn.lambda_max(W, 1.0, 0.0)
        flattest = lam <= lam.min() + 1e-12
        inside = omega0_member(formula, m, np.zeros(len(W)), W, 0.0)
        for i in np.flatnonzero(flattest != inside)[:1]:
            bad.append({"m": m, "tau": 0.0, "sigma_x2": 1.0, "w": W[i], "lambda_max": lam[i],
                        "minimum": lam.min(), "in Omega_0 as printed": bool(inside[i])})
    return bad, total


@check("S22", method="float", printed=s22_printed, mutants=S22_MUTANTS, without="tau != 0")
def s22_flattest_set_tau_zero_included(ctx: Context, formula) -> Measurement:
    """The float check of Omega_0 for tau != 0 together with tau = 0, where all of {-1, 0, 1}^m with
    prod w = 0 (m = 1..min(6, max_depth)) are compared: exact Hessians (small integers), lambda_max
    from a dense eigensolver. Stays on NumPy, as the tau != 0 check does (scipy, host loops)."""
    bad, total, shapes = s22_violations(ctx, formula)
    depths = range(1, min(6, ctx.profile.max_depth) + 1)
    zero, points_at_zero = s22_zero_tau_violations(formula, depths)
    return count_measurement(zero + bad, total + points_at_zero, shapes + [f"m={m}, tau=0" for m in depths])

"""Section III.2 of the supplement (proof of Lemma 2): sharpness of scalar minima along the line
joining them, Claim S1 and equations (S23)-(S32).

*Sharpness along the line* at a minimum w^(i), in the direction of d = w^(1) - w^(2), is measured
from the loss itself: the loss restricted to the line, t -> loss(w^(i) + t d), is a polynomial in t
and the measurement is twice its t^2 coefficient (``sn.line_curvature``: polynomial arithmetic,
exact on rationals, with a rounding bound in float64), or a central second difference of the loss.
Neither uses the closed form (S16) of the Hessian, which is what (S25) rests on. Exact checks use
the unnormalised d: rescaling the direction multiplies both sharpnesses by the same ||d||^2.

Formulas are written once against a tiny vector vocabulary (``total``, ``depth``, ``ratio_sum``)
and evaluated on float arrays, on object arrays of Fractions or sympy symbols, and on ``Termwise``
vectors of symbolic length m, where sums become sympy ``Sum`` over i = 1..m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable

import mpmath
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from verify.checks import check
from verify.context import Context, derive_seed
from verify.measure import batch_measurement, to_jsonable
from verify.model import Measurement
from verify.search import search
from proofs import linear_network as ln
from proofs import scalar_network as sn
from proofs.on_backend import map_chunks

EPS = np.finfo(float).eps
DEPTHS = range(2, 9)  # depths with more than one minimum per orthant (m = 1 has a single minimum)
EXACT = "exact rational arithmetic: no tolerance"
LOGICAL = ("logical: predicted and measured orderings agree on every instance; float sharpnesses "
           "count as ordered only when they differ by more than their rounding bound")


# --- a vector vocabulary shared by arrays and symbolic-length vectors ---------------------------------

INDEX = sp.Symbol("i", integer=True, positive=True)
M = sp.Symbol("m", integer=True, positive=True)


@dataclass(frozen=True)
class Termwise:
    """A vector of symbolic length m given by its i-th entry; arithmetic is entrywise and
    ``total`` is sympy's Sum over i = 1..m, so array formulas become statements for every m."""

    term: sp.Expr

    @staticmethod
    def _entry(x: Any) -> Any:
        return x.term if isinstance(x, Termwise) else x

    def __add__(self, o: Any) -> Termwise: return Termwise(self.term + self._entry(o))
    def __sub__(self, o: Any) -> Termwise: return Termwise(self.term - self._entry(o))
    def __mul__(self, o: Any) -> Termwise: return Termwise(self.term * self._entry(o))
    def __truediv__(self, o: Any) -> Termwise: return Termwise(self.term / self._entry(o))
    def __rtruediv__(self, o: Any) -> Termwise: return Termwise(self._entry(o) / self.term)
    def __pow__(self, k: Any) -> Termwise: return Termwise(self.term ** k)
    __radd__, __rmul__ = __add__, __mul__


def exact_arrays(*xs: Any) -> bool:
    """Are these NumPy object arrays (Fractions, sympy) or plain numbers, not arrays of a float namespace?"""
    return all(not hasattr(x, "shape") or (isinstance(x, np.ndarray) and x.dtype == object) for x in xs)


def total(x: Any) -> Any:
    """Sum over the layer index (the last array axis of any namespace, or i = 1..m)."""
    if isinstance(x, Termwise):
        return sp.Sum(x.term, (INDEX, 1, M))
    return x.sum(axis=-1) if exact_arrays(x) else ln.namespace(x).sum(x, axis=-1)


def depth(x: Any) -> Any:
    return M if isinstance(x, Termwise) else x.shape[-1]


def ratio_sum(a: Any, b: Any) -> Any:
    """sum_i a_i / b_i."""
    return total(a / b)


def exact_root(x: Fraction, m: int) -> Fraction | float:
    """The m-th root of a positive rational, exactly when it is rational."""
    num, num_exact = sp.integer_nthroot(x.numerator, m)
    den, den_exact = sp.integer_nthroot(x.denominator, m)
    return Fraction(int(num), int(den)) if num_exact and den_exact else float(x) ** (1 / m)


def geometric_mean(v: np.ndarray) -> Any:
    """(prod_i v_i)^(1/m) over the last axis; exact on Fractions when the root is rational."""
    p, m = np.prod(v, axis=-1), v.shape[-1]
    if np.asarray(p).dtype == object:
        return np.vectorize(lambda x: exact_root(Fraction(x), m), otypes=[object])(p)
    return p ** (1 / m)


def three_way(lhs: Any, rhs: Any) -> Any:
    """+1 where lhs > rhs, -1 where lhs < rhs, 0 where equal (object arrays, or any float namespace)."""
    if exact_arrays(lhs, rhs):
        lhs, rhs = np.asarray(lhs), np.asarray(rhs)
        return (lhs > rhs).astype(int) - (lhs < rhs).astype(int)
    xp = ln.namespace(*(x for x in (lhs, rhs) if hasattr(x, "shape")))
    return xp.astype(lhs > rhs, xp.int64) - xp.astype(lhs < rhs, xp.int64)


# --- the supplement's expressions, as printed ------------------------------------------------------
# Criteria are returned as (lhs, rhs), meaning "w^(1) looks sharper than w^(2) iff lhs > rhs".

def s23_printed(w1, w2):
    """(S23) = (S28): sum w2/w1 > sum w1/w2."""
    return ratio_sum(w2, w1), ratio_sum(w1, w2)


def s24_printed(l0, slope, curvature, eta):
    """(S24): loss(w + eta alpha) ~ loss(w) + eta alpha^T grad + eta^2/2 alpha^T H alpha."""
    return l0 + eta * slope + eta**2 / 2 * curvature


def s25_printed(w1, w2):
    """(S25): ((w1 - w2)^T z1)^2 > ((w1 - w2)^T z2)^2 with z = 1/w entrywise."""
    d = w1 - w2
    return total(d * (1 / w1)) ** 2, total(d * (1 / w2)) ** 2


def s26_printed(w1, w2):
    """(S26): |sum w2/w1 - m| > |sum w1/w2 - m|."""
    m = depth(w1)
    return abs(ratio_sum(w2, w1) - m), abs(ratio_sum(w1, w2) - m)


def s27_printed(w1, w2):
    """(S27): the lower bound m (prod w2/w1)^(1/m) (= m) of sum w2/w1."""
    return depth(w1) * geometric_mean(w2 / w1)


s28_printed = s23_printed  # (S28) is printed with the same two sums as (S23)


def s29_printed(w1, w2):
    """(S29): w3 = w1^2 / w2 entrywise."""
    return w1**2 / w2


def s30_printed(w1, w2):
    """(S30): sum w1/w2 > sum w2/w1 (w2 looks sharper than the flattest w1)."""
    return ratio_sum(w1, w2), ratio_sum(w2, w1)


def s31_printed(w1, w2, w3):
    """(S31): the two equalities  sum w3/w1 = sum w1/w2  and  sum w2/w1 = sum w1/w3."""
    return (ratio_sum(w3, w1), ratio_sum(w1, w2)), (ratio_sum(w2, w1), ratio_sum(w1, w3))


def s32_printed(w1, w2):
    """(S32), m = 2: w1^(1)/w1^(2) + w2^(1)/w2^(2) = w2^(2)/w2^(1) + w1^(2)/w1^(1)."""
    return w1[..., 0] / w2[..., 0] + w1[..., 1] / w2[..., 1], w2[..., 1] / w1[..., 1] + w2[..., 0] / w1[..., 0]


@dataclass(frozen=True)
class AtDepth:
    """A statement made for one depth m (S32 is about m = 2); mutants move it to another depth."""

    m: int
    sides: Callable = s32_printed


def same_sums_identity(w1, w2):
    """The S32 identity written for any depth: sum w1/w2 = sum w2/w1."""
    return ratio_sum(w1, w2), ratio_sum(w2, w1)


def lemma2_printed(m: int) -> bool:
    """Lemma 2: a minimum that looks flatter along the line than the flattest one, although its
    lambda_max is larger, exists for m >= 3; for m = 2 all minima look equally sharp."""
    return m >= 3


# --- instances: pairs of global minima -------------------------------------------------------------

@dataclass(frozen=True)
class Pairs:
    """A batch of pairs of global minima (prod w = tau) of one depth: w1, w2 of shape (n, m)."""

    w1: np.ndarray
    w2: np.ndarray
    sx2: np.ndarray
    tau: np.ndarray
    kind: str

    @property
    def m(self) -> int:
        return self.w1.shape[-1]

    def instance(self, k: int) -> dict[str, Any]:
        return to_jsonable({"m": self.m, "kind": self.kind, "tau": self.tau[k], "sigma_x2": self.sx2[k],
                            "w1": list(self.w1[k]), "w2": list(self.w2[k])})


def restrict(pairs: Pairs, mask: np.ndarray, label: str) -> Pairs:
    return Pairs(pairs.w1[mask], pairs.w2[mask], pairs.sx2[mask], pairs.tau[mask], f"{pairs.kind} {label}")


def sign_patterns(rng: np.random.Generator, n: int, m: int, tau_sign: np.ndarray) -> np.ndarray:
    """Random orthants whose sign product is sign(tau), shape (n, m)."""
    s = rng.choice([-1, 1], size=(n, m))
    s[:, -1] = tau_sign * np.prod(s[:, :-1], axis=-1)
    return s


def float_magnitudes(rng: np.random.Generator, abs_tau: np.ndarray, m: int) -> np.ndarray:
    """Positive minima with prod = |tau|: log-normal with a random spread per instance."""
    n = abs_tau.shape[0]
    u = rng.standard_normal((n, m)) * rng.uniform(0.05, 1.5, (n, 1))
    u += (np.log(abs_tau) - u.sum(-1))[:, None] / m
    return np.exp(u)


def rational_magnitudes(rng: np.random.Generator, abs_tau: np.ndarray, m: int) -> np.ndarray:
    """Positive rational minima with prod = |tau| exactly: small fractions, the last one absorbs."""
    n = abs_tau.shape[0]
    w = np.empty((n, m), dtype=object)
    for k in range(n):
        free = [Fraction(int(p), int(q)) for p, q in rng.integers(1, 13, (m - 1, 2))]
        w[k] = free + [abs_tau[k] / math.prod(free)]
    return w


def tie_row(rs: list[Fraction], m: int, mode: str) -> list[Fraction]:
    """Positive rational factors v with prod v = 1 (w2 = w1 * v is again a minimum), from ratios
    rs != 1. 'exact': pairs (r, 1/r) padded with ones: the multiset is closed under v -> 1/v, so
    sum v = sum 1/v, an exact tie of (S23). 'near': (r^2, 1/r, 1/r, 1, ...) with r close to 1:
    sum v - sum 1/v = 2 (r - 1)^3 + ..., a tie broken at third order (m = 2 leaves only ties)."""
    if mode == "near" and m >= 3:
        r = rs[0]
        return [r * r, 1 / r, 1 / r] + [Fraction(1)] * (m - 3)
    pairs = [x for r in rs[: max(1, m // 2)] for x in (r, 1 / r)]
    return pairs + [Fraction(1)] * (m - len(pairs))


def tie_factors(rng: np.random.Generator, n: int, m: int, mode: str) -> np.ndarray:
    """``tie_row`` factors in random order, shape (n, m): random small ratios for 'exact' ties,
    r = 1 + 1/k with k in [100, 10000) for 'near' ties."""
    v = np.empty((n, m), dtype=object)
    for k in range(n):
        if mode == "exact":
            rs = [Fraction(int(p), int(q)) for p, q in rng.integers(1, 13, (m // 2, 2))]
            rs = [r if r != 1 else Fraction(2) for r in rs]
        else:
            rs = [1 + Fraction(1, int(rng.integers(100, 10_000)))]
        row = tie_row(rs, m, mode)
        v[k] = [row[i] for i in rng.permutation(m)]
    return v


def make_pairs(rng: np.random.Generator, n: int, m: int, *, exact: bool, tau_sign: int = 1,
               orthants: str = "positive", ties: str = "") -> Pairs:
    """n pairs of minima of depth m. orthants: 'positive' (the domain of Claim S1), 'same' (a shared
    random orthant) or 'mixed' (independent random orthants). ties: '' (independent minima),
    'exact' or 'near': w2 = w1 * v with v from ``tie_factors`` (exact arithmetic only)."""
    if exact:
        abs_tau = np.array([Fraction(int(p), int(q)) for p, q in rng.integers(1, 10, (n, 2))], dtype=object)
        sx2 = np.array([Fraction(int(p), int(q)) for p, q in rng.integers(1, 6, (n, 2))], dtype=object)
        magnitudes: Callable = rational_magnitudes
    else:
        abs_tau, sx2 = np.exp(rng.uniform(-3, 3, n)), np.exp(rng.uniform(-2, 2, n))
        magnitudes = float_magnitudes
    sign = np.full(n, tau_sign)
    s1 = np.ones((n, m), dtype=int) if orthants == "positive" else sign_patterns(rng, n, m, sign)
    s2 = sign_patterns(rng, n, m, sign) if orthants == "mixed" else s1
    w1 = s1 * magnitudes(rng, abs_tau, m)
    w2 = w1 * tie_factors(rng, n, m, ties) if ties else s2 * magnitudes(rng, abs_tau, m)
    kind = " ".join(filter(None, ["exact" if exact else "float", orthants, "tau<0" if tau_sign < 0 else "",
                                  f"{ties} ties" if ties else ""]))
    return Pairs(w1, w2, sx2, sign * abs_tau, kind=kind)


def flattest(tau: np.ndarray, m: int) -> np.ndarray:
    """The flattest minimum in the positive orthant: every w_i = tau^(1/m) (float)."""
    return np.repeat((tau ** (1 / m))[:, None], m, axis=1)


# --- measurements from the loss --------------------------------------------------------------------

@dataclass(frozen=True)
class LineSharpness:
    """Sharpness along d = w_a - w_b at both ends, and rounding bounds (zero when exact)."""

    at_a: np.ndarray
    at_b: np.ndarray
    noise: np.ndarray

    def order(self) -> np.ndarray:
        """+1: w_a measured sharper, -1: w_b sharper, 0: equal (or within the rounding bound)."""
        gap = self.at_a - self.at_b
        return (gap > self.noise).astype(int) - (-gap > self.noise).astype(int)


def line_sharpness(wa: np.ndarray, wb: np.ndarray, sx2: np.ndarray, tau: np.ndarray) -> LineSharpness:
    """Measured curvature of the loss along the line through wa and wb, at wa and at wb."""
    d = wa - wb
    sxy = tau * sx2
    if wa.dtype == object:
        zero = np.zeros(wa.shape[0])
        return LineSharpness(sn.line_curvature(wa, d, sx2, sxy), sn.line_curvature(wb, d, sx2, sxy), zero)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    noise = sn.line_curvature_rounding_bound(wa, d, sx2, sxy) + sn.line_curvature_rounding_bound(wb, d, sx2, sxy)
    return LineSharpness(sn.line_curvature(wa, d, sx2, sxy), sn.line_curvature(wb, d, sx2, sxy), noise)


def lambda_max(w: np.ndarray, sx2: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of the Hessian of the loss (sympy-derived, dense eigensolver)."""
    w, sx2 = np.asarray(w, dtype=float), np.asarray(sx2, dtype=float)
    return np.linalg.eigvalsh(sn.hessian(w, sx2, np.asarray(tau, dtype=float) * sx2))[:, -1]


def central_difference(w: np.ndarray, alpha: np.ndarray, h: np.ndarray, sx2, tau) -> tuple[np.ndarray, np.ndarray]:
    """(loss(w + h alpha) - 2 loss(w) + loss(w - h alpha)) / h^2 (steps h of shape (n,)) and a bound
    on its rounding error, 4 (m + 3) eps |loss terms| / h^2. The loss has a nonzero floor
    sigma_y^2 - sigma_xy^2 / sigma_x^2 = sigma_x^2 tau^2 / 2, as with noisy data."""
    step = h[:, None] * alpha
    sxy, sy2 = tau * sx2, 1.5 * sx2 * tau**2
    value = (sn.loss(w + step, sx2, sxy, sy2) - 2 * sn.loss(w, sx2, sxy, sy2) + sn.loss(w - step, sx2, sxy, sy2)) / h**2
    p = np.prod(w, axis=-1)
    terms = sx2 * p**2 + 2 * np.abs(sxy * p) + sy2
    return value, 4 * (w.shape[-1] + 3) * EPS * terms / h**2


# --- evaluating an ordering criterion against measurements -----------------------------------------

def ordering_measurement(batches: list[tuple[Pairs, np.ndarray, np.ndarray]], *, implication: bool,
                         from_measured: bool = False, reason: str = LOGICAL, **details: Any) -> Measurement:
    """Compare predicted orderings with measured ones over batches of (pairs, predicted, measured),
    each a three-way order (+1/0/-1) of w1 against w2. implication: only 'predicted +1 => measured
    +1' is required ('measured +1 => predicted +1' with from_measured); otherwise the orders must
    agree (ties included). Float batches mark undecided measurements as 0 and those are left out
    (counted in details)."""
    residuals, owners, shapes = [], [], []
    undecided = 0
    for pairs, predicted, measured in batches:
        considered = measured != 0 if pairs.w1.dtype != object else np.ones_like(measured, dtype=bool)
        undecided += int((~considered).sum())
        premise, conclusion = (measured, predicted) if from_measured else (predicted, measured)
        bad = considered & ((premise == 1) & (conclusion != 1) if implication else predicted != measured)
        residuals.append(bad.astype(float))
        owners += [(pairs, k) for k in range(len(bad))]
        shapes.append(f"m={pairs.m} {pairs.kind}")
    flat = np.concatenate(residuals)
    return batch_measurement(flat, 0.0, reason, sorted(set(shapes)),
                             lambda k: owners[k][0].instance(owners[k][1]),
                             violations=int(flat.sum()), undecided_within_rounding=undecided, **details)


def on_pairs(ctx: Context | None, fn: Callable[..., Any], arrays: tuple[np.ndarray, ...]) -> Any:
    """``fn(*arrays)``: exact (object) arrays on the host, float ones on ``ctx.xp`` in chunks (NumPy
    without a context)."""
    return fn(*arrays) if exact_arrays(*arrays) else map_chunks(ctx or Context(), fn, arrays)


def criterion_order(formula: Callable, pairs: Pairs, ctx: Context | None = None) -> np.ndarray:
    """The three-way order the criterion gives w1 against w2 (float pairs on ``ctx.xp``)."""
    return on_pairs(ctx, lambda w1, w2: three_way(*formula(w1, w2)), (pairs.w1, pairs.w2))


def agreement(batches: list[tuple[Pairs, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """How often a criterion disagrees with measurements (float: where the measurement is decided),
    with one disagreeing instance (for details)."""
    total_n, bad, example = 0, 0, None
    for pairs, predicted, measured in batches:
        decided = measured != 0 if pairs.w1.dtype != object else np.ones(len(measured), dtype=bool)
        wrong = np.flatnonzero(decided & (predicted != measured))
        total_n, bad = total_n + int(decided.sum()), bad + len(wrong)
        if example is None and len(wrong):
            k = wrong[0]
            example = {**pairs.instance(k), "predicted": int(predicted[k]), "measured": int(measured[k])}
    return {"instances": total_n, "disagreements": bad, "example": example}


# --- cached ground truth (independent of the formula, shared by all variants of a check) ----------

def drawn_until(n: int, draw: Callable[[int], Any], kept: Callable[[Any], int]) -> Any:
    """``draw(k)`` for k = n, 2n, 4n, ... (at most 16n) until ``kept`` of the draw reaches n: checks
    that keep only the pairs meeting a premise still test the profile's number of instances."""
    k = n
    while True:
        out = draw(k)
        if kept(out) >= n or k >= 16 * n:
            return out
        k *= 2


def s27_premise(pairs: Pairs) -> np.ndarray:
    return (ratio_sum(pairs.w2, pairs.w1) >= pairs.m) & (ratio_sum(pairs.w1, pairs.w2) >= pairs.m)


def per_depth(n: int) -> int:
    return max(8, math.ceil(n / len(DEPTHS)))  # rounded up: every depth draws, and the total is >= n


EXACT_CAP = 20_000  # exact rational instances cost ~50 us each; beyond this, more of them adds little


def exact_instances(ctx: Context) -> int:
    return min(ctx.profile.instances, EXACT_CAP)


@lru_cache(maxsize=None)
def measured_pairs(seed: int, n: int, exact: bool, tau_sign: int = 1, orthants: str = "positive",
                   ties: str = "") -> tuple[tuple[Pairs, LineSharpness], ...]:
    """Pairs of minima for every depth in DEPTHS and their measured sharpnesses along the line."""
    rng = np.random.default_rng(derive_seed(seed, exact, tau_sign, orthants, ties))
    out = []
    for m in DEPTHS:
        pairs = make_pairs(rng, per_depth(n), m, exact=exact, tau_sign=tau_sign, orthants=orthants, ties=ties)
        out.append((pairs, line_sharpness(pairs.w1, pairs.w2, pairs.sx2, pairs.tau)))
    return tuple(out)


def judged(formula: Callable, batches, ctx: Context | None = None) -> list[tuple[Pairs, np.ndarray, np.ndarray]]:
    return [(pairs, criterion_order(formula, pairs, ctx), sharpness.order()) for pairs, sharpness in batches]


OUTSIDE_DOMAIN = {"tau<0, both minima in one orthant": dict(tau_sign=-1, orthants="same"),
                  "tau>0, minima in different orthants": dict(tau_sign=1, orthants="mixed"),
                  "tau<0, minima in different orthants": dict(tau_sign=-1, orthants="mixed")}


def outside_domain_report(formula: Callable, seed: int, n: int) -> dict[str, Any]:
    """The criterion against exact measurements on pairs outside the positive orthant (evidence)."""
    return {name: agreement(judged(formula, measured_pairs(seed, n, True, **kw)))
            for name, kw in OUTSIDE_DOMAIN.items()}


# === Claim S1 and (S23) =============================================================================

S23_MUTANTS = {"inequality reversed": lambda w1, w2: s23_printed(w2, w1),
               "compared with m instead of the other sum": lambda w1, w2: (ratio_sum(w2, w1), depth(w1)),
               "denominators dropped: sum w2 > sum w1": lambda w1, w2: (total(w2), total(w1))}


@check("Claim S1", method="float", printed=s23_printed, mutants=S23_MUTANTS, backend=True)
def claim_s1_implication_float(ctx: Context, formula) -> Measurement:
    """On random pairs of minima in the positive orthant (tau > 0, m = 2..8): wherever (S23) holds
    (on ``ctx.xp``), w1 is measured sharper along the line (float64 t^2 coefficient of the loss,
    beyond its rounding bound; host). Details: how often the converse (measured sharper => S23)
    holds on the same pairs."""
    batches = judged(formula, measured_pairs(ctx.check_seed, ctx.profile.instances, False), ctx)
    converse = ordering_measurement(batches, implication=True, from_measured=True).details["violations"]
    return ordering_measurement(batches, implication=True, converse_violations=converse)


def exact_pairs_strategy(kinds: tuple[str, ...]) -> st.SearchStrategy:
    """(m, tau, log-offsets of w1, kind, offsets for w2, permutation) for ``exact_pair``."""
    offsets = lambda m: st.lists(st.floats(-2.5, 2.5), min_size=m, max_size=m)  # noqa: E731
    return st.integers(2, 8).flatmap(lambda m: st.tuples(
        st.just(m), st.floats(0.01, 100.0), offsets(m), st.sampled_from(kinds), offsets(m),
        st.permutations(range(m))))


def exact_pair(example: tuple) -> Pairs:
    """Exact rational minima in the positive orthant from a hypothesis example (floats are exact
    rationals): w2 independent of w1, equal to it, an exact tie or a near tie (``tie_row``)."""
    m, tau, u1, kind, u2, perm = example
    tau = Fraction(tau)

    def minimum(u: list[float]) -> list[Fraction]:
        free = [Fraction(math.exp(x)) for x in u[:-1]]
        return free + [tau / math.prod(free, start=Fraction(1))]

    w1 = minimum(u1)
    if kind in ("independent", "equal"):
        w2 = minimum(u2) if kind == "independent" else list(w1)
    else:
        r = Fraction(math.exp(u2[0])) if kind == "tie" else 1 + Fraction(math.exp(u2[0])) / 10**6
        row = tie_row([r if r != 1 else Fraction(2)], m, "exact" if kind == "tie" else "near")
        w2 = [w1[i] * row[perm[i]] for i in range(m)]
    as_row = lambda x: np.array([x], dtype=object)  # noqa: E731
    return Pairs(as_row(w1), as_row(w2), as_row(Fraction(1)), as_row(tau), kind=f"exact {kind}")


@check("Claim S1", method="hypothesis", printed=s23_printed,
       mutants={"inequality reversed": S23_MUTANTS["inequality reversed"],
                "compared with m instead of the other sum": S23_MUTANTS["compared with m instead of the other sum"],
                "product of ratios instead of sum": lambda w1, w2: (np.prod(w2 / w1, -1), np.prod(w1 / w2, -1))})
def claim_s1_equivalence_hypothesis(ctx: Context, formula) -> Measurement:
    """Hypothesis search over exact rational pairs of minima in the positive orthant (independent,
    exact ties, near ties; m = 2..8): the three-way order given by (S23) equals the exact measured
    order of the line sharpnesses, i.e. the claim, its converse and ties all hold."""

    def residual(example: tuple) -> float:
        pairs = exact_pair(example)
        measured = line_sharpness(pairs.w1, pairs.w2, pairs.sx2, pairs.tau).order()
        return float(criterion_order(formula, pairs)[0] != measured[0])

    return search(ctx, exact_pairs_strategy(("independent", "tie", "near")), residual, 0.0,
                  EXACT + "; the predicted and measured orders must agree", shape=lambda ex: f"m={ex[0]} {ex[3]}")


@check("S23", method="exact", printed=s23_printed, mutants=S23_MUTANTS)
def s23_iff_sharper_exact(ctx: Context, formula) -> Measurement:
    """Exact rational pairs of minima in the positive orthant, independent and exact ties (m = 2..8):
    the three-way order of (S23) equals the exact measured order. Details: the same comparison
    outside the claim's domain (tau < 0, different orthants), reported as evidence only."""
    n = exact_instances(ctx) // 2
    batches = [*measured_pairs(ctx.check_seed, n, True), *measured_pairs(ctx.check_seed, n, True, ties="exact")]
    return ordering_measurement(judged(formula, batches), implication=False, reason=EXACT,
                                outside_domain=outside_domain_report(formula, ctx.check_seed, n // 2))


FD_STEP = 1e-4  # relative to the rms weight of the instance


@lru_cache(maxsize=None)
def central_difference_orders(seed: int, n: int) -> tuple[tuple[Pairs, np.ndarray, float], ...]:
    """Float pairs in the positive orthant, the order of their central-difference sharpnesses and
    the worst ratio |difference - t^2 coefficient| / error bound over all instances. The error bound
    of a second difference D(h) is |D(2h) - D(h)| (its O(h^2) truncation) plus its rounding bound;
    an order counts only where the gap exceeds the bounds at both ends."""
    rng = np.random.default_rng(seed)
    out = []
    for m in DEPTHS:
        pairs = make_pairs(rng, per_depth(n), m, exact=False)
        alpha = (pairs.w1 - pairs.w2) / np.linalg.norm(pairs.w1 - pairs.w2, axis=-1, keepdims=True)
        h = FD_STEP * np.sqrt(np.mean(pairs.w1**2 + pairs.w2**2, axis=-1) / 2)
        ends = []
        for w in (pairs.w1, pairs.w2):
            value, rounding = central_difference(w, alpha, h, pairs.sx2, pairs.tau)
            coarse, _ = central_difference(w, alpha, 2 * h, pairs.sx2, pairs.tau)
            ends.append((value, np.abs(coarse - value) + rounding))
        (d1, e1), (d2, e2) = ends
        order = (d1 - d2 > e1 + e2).astype(int) - (d2 - d1 > e1 + e2).astype(int)
        poly = line_sharpness(pairs.w1, pairs.w2, pairs.sx2, pairs.tau)
        actual = np.abs(d1 - poly.at_a) + np.abs(d2 - poly.at_b)
        out.append((pairs, order, float(np.max(actual / (e1 + e2)))))
    return tuple(out)


@check("S23", method="float", printed=s23_printed, mutants=S23_MUTANTS, backend=True)
def s23_iff_sharper_central_differences(ctx: Context, formula) -> Measurement:
    """Float pairs of minima in the positive orthant (m = 2..8): the order of (S23) (on ``ctx.xp``)
    equals the order of central second differences of the loss along the line (host) wherever their
    gap exceeds their error bounds (which must bound their actual error against the float t^2
    coefficient)."""
    data = central_difference_orders(ctx.check_seed, ctx.profile.instances)
    error_ratio = max(ratio for *_, ratio in data)
    batches = [(pairs, criterion_order(formula, pairs, ctx), measured) for pairs, measured, _ in data]
    result = ordering_measurement(
        batches, implication=False, worst_actual_to_bounded_fd_error=error_ratio,
        reason="central differences, step h = 1e-4 rms|w|: orders compared where the gap exceeds "
               "|D(2h) - D(h)| + 4 (m + 3) eps |loss terms| / h^2 at both ends")
    result.holds = result.ok and error_ratio <= 1.0
    return result


# === (S24) ==========================================================================================

S24_MUTANTS = {"missing 1/2": lambda l0, g, c, eta: l0 + eta * g + eta**2 * c,
               "gradient term with the wrong sign": lambda l0, g, c, eta: l0 - eta * g + eta**2 / 2 * c,
               "eta instead of eta^2": lambda l0, g, c, eta: l0 + eta * g + eta / 2 * c}


@lru_cache(maxsize=None)
def symbolic_line_data(m: int) -> tuple:
    """Symbols w, a, t and: the loss coefficients along w + t a up to t^2 (polynomial arithmetic),
    the loss, a^T grad and a^T H a (sympy derivatives of the loss)."""
    w, sx2, sxy, sy2 = sn.symbols(m)
    a = sp.symbols(f"a1:{m + 1}", real=True)
    t = sp.Symbol("t", real=True)
    coeffs = sn.loss_along_line(np.array(w, dtype=object), np.array(a, dtype=object), sx2, sxy, sy2, 2)
    av = sp.Matrix(a)
    slope = (av.T * sn.symbolic_gradient(m))[0]
    curvature = (av.T * sn.symbolic_hessian(m) * av)[0]
    return t, coeffs, sn.symbolic_loss(m), slope, curvature


@check("S24", method="sympy", printed=s24_printed, mutants=S24_MUTANTS)
def s24_taylor_coefficients_sympy(ctx: Context, formula) -> Measurement:
    """For m = 1..max_depth, symbolic point w and direction a (any point, not only minima): the
    printed expansion equals the loss along the line truncated after t^2, coefficient by
    coefficient (polynomial arithmetic on the loss versus sympy's gradient and Hessian)."""
    shapes = []
    for m in range(1, ctx.profile.max_depth + 1):
        t, (c0, c1, c2), l0, slope, curvature = symbolic_line_data(m)
        difference = sp.expand(formula(l0, slope, curvature, t) - (c0 + c1 * t + c2 * t**2))
        if difference != 0:
            return Measurement(1.0, 0.0, "exact symbolic identity", m, shapes + [f"m={m}"],
                               counterexample={"m": m, "difference": str(sp.factor(difference))[:400]})
        shapes.append(f"m={m}")
    return Measurement(0.0, 0.0, "exact symbolic identity", len(shapes), shapes)


@lru_cache(maxsize=None)
def mp_derivatives(m: int) -> tuple[Callable, Callable]:
    w, sx2, sxy, _ = sn.symbols(m)
    return (sp.lambdify((w, sx2, sxy), sn.symbolic_gradient(m), "mpmath"),
            sp.lambdify((w, sx2, sxy), sn.symbolic_hessian(m), "mpmath"))


def remainder_order(formula: Callable, w: list, alpha: list, sx2, sxy, sy2, steps: tuple) -> float | None:
    """log10 |R(eta1)| / |R(eta2)| for the remainder R(eta) = loss(w + eta alpha) - formula, with
    eta2 = eta1 / 10: the order of the remainder; None when R(eta2) vanishes to working precision."""
    grad_fn, hess_fn = mp_derivatives(len(w))
    a = mpmath.matrix(alpha)
    slope = (a.T * mpmath.matrix(grad_fn(w, sx2, sxy)))[0]
    curvature = (a.T * mpmath.matrix(hess_fn(w, sx2, sxy)) * a)[0]

    def loss(x):
        p = mpmath.fprod(x)
        return sx2 * p**2 - 2 * sxy * p + sy2

    l0 = loss(w)
    r = [abs(loss([wi + eta * ai for wi, ai in zip(w, alpha)]) - formula(l0, slope, curvature, eta)) for eta in steps]
    floor = mpmath.mpf(10) ** (-(mpmath.mp.dps - 10)) * (1 + abs(l0))
    if r[1] <= floor:  # vanishes to working precision (m = 1 on the manifold): no lower-order term
        return None
    return float(mpmath.log10(r[0] / r[1]))


@check("S24", method="mpmath", printed=s24_printed, mutants=S24_MUTANTS)
def s24_remainder_order_mpmath(ctx: Context, formula) -> Measurement:
    """At random points on and off the minimum manifold (m = 1..8, random unit directions), the
    remainder loss(w + eta alpha) - (S24), evaluated at ctx.dps digits for eta = 1e-6 and 1e-7,
    shrinks by at least 10^3: it is O(eta^3) (order estimate >= 3 - 0.01)."""
    rng = ctx.rng("points")
    orders, owners = [], []
    with mpmath.workdps(ctx.dps):
        steps = (mpmath.mpf("1e-6"), mpmath.mpf("1e-7"))
        for m in range(1, 9):
            for k in range(min(max(4, ctx.profile.instances // 100), 200)):
                tau, sx2 = rng.choice([-1, 1]) * np.exp(rng.uniform(-2, 2)), np.exp(rng.uniform(-1, 1))
                w = sn.random_minima(rng, m, np.array([tau]), spread=0.7)[0]
                if k % 2:
                    w = w * np.exp(0.3 * rng.standard_normal(m))  # off the manifold: nonzero gradient
                alpha = rng.standard_normal(m)
                alpha /= np.linalg.norm(alpha)
                args = ([mpmath.mpf(x) for x in w], [mpmath.mpf(x) for x in alpha], mpmath.mpf(sx2),
                        mpmath.mpf(tau * sx2), mpmath.mpf(1.5 * sx2 * tau**2))
                order = remainder_order(formula, *args, steps)
                orders.append(0.0 if order is None else max(0.0, 3.0 - order))
                owners.append({"m": m, "w": w, "alpha": alpha, "sigma_x2": sx2, "tau": tau, "on_minimum": not k % 2,
                               "order": order})
    return batch_measurement(np.array(orders), 0.01,
                             f"{ctx.dps}-digit arithmetic; the order estimate from eta = 1e-6, 1e-7 differs "
                             "from its limit 3 by O(eta) << 0.01", ["m=1..8"],
                             lambda k: to_jsonable(owners[k]))


# === (S25), (S26) ===================================================================================

ALL_DOMAINS = {"positive orthant": dict(), **OUTSIDE_DOMAIN}


def all_domain_pairs(seed: int, n: int, exact: bool) -> list[tuple[Pairs, LineSharpness]]:
    """Pairs in the positive orthant, in one shared orthant with tau < 0 and in different orthants
    (both signs of tau), plus exact ties when exact: (S25) and (S26) hold for any two minima."""
    k = n // (len(ALL_DOMAINS) + exact)
    batches = [b for kw in ALL_DOMAINS.values() for b in measured_pairs(seed, k, exact, **kw)]
    return batches + list(measured_pairs(seed, k, True, ties="exact")) if exact else batches


S25_MUTANTS = {"missing square": lambda w1, w2: (total((w1 - w2) / w1), total((w1 - w2) / w2)),
               "z1 and z2 swapped": lambda w1, w2: s25_printed(w1, w2)[::-1],
               "w instead of z": lambda w1, w2: (total((w1 - w2) * w1) ** 2, total((w1 - w2) * w2) ** 2)}


@check("S25", method="exact", printed=s25_printed, mutants=S25_MUTANTS)
def s25_common_factor_exact(ctx: Context, formula) -> Measurement:
    """Exact rational pairs of minima in every orthant, both signs of tau, with ties (m = 2..8): the
    two sides of (S25) are the exactly measured line sharpnesses times one common positive factor,
    so (S25) orders them (ties included). Details: whether the factor is 2 sigma_x^2 tau^2 (S16)."""
    residuals, owners, shapes, factor_is_s16 = [], [], set(), 0
    for pairs, sharp in all_domain_pairs(ctx.check_seed, exact_instances(ctx), True):
        q1, q2 = formula(pairs.w1, pairs.w2)
        proportional = ((sharp.at_a * q2 == sharp.at_b * q1) & (three_way(sharp.at_a, 0) == three_way(q1, 0))
                        & (three_way(sharp.at_b, 0) == three_way(q2, 0)))
        c = 2 * pairs.sx2 * pairs.tau**2
        factor_is_s16 += int(((sharp.at_a == c * q1) & (sharp.at_b == c * q2)).sum())
        residuals.append(1.0 - np.asarray(proportional, dtype=float))
        owners += [(pairs, k) for k in range(len(q1))]
        shapes.add(f"m={pairs.m} {pairs.kind}")
    flat = np.concatenate(residuals)
    return batch_measurement(flat, 0.0, EXACT, sorted(shapes), lambda k: owners[k][0].instance(owners[k][1]),
                             factor_equals_2_sx2_tau2=f"{factor_is_s16} of {flat.size}")


@check("S25", method="float", printed=s25_printed, mutants=S25_MUTANTS, backend=True)
def s25_iff_sharper_float(ctx: Context, formula) -> Measurement:
    """Float pairs of minima in every orthant and both signs of tau (m = 2..8): the order given by
    (S25) (on ``ctx.xp``) equals the measured order of the line sharpnesses (float t^2 coefficient of
    the loss; host)."""
    batches = judged(formula, all_domain_pairs(ctx.check_seed, ctx.profile.instances, False), ctx)
    return ordering_measurement(batches, implication=False)


W1, W2 = sp.IndexedBase("w1", real=True), sp.IndexedBase("w2", real=True)
GENERAL_W1, GENERAL_W2 = Termwise(W1[INDEX]), Termwise(W2[INDEX])


def general_identities(pairs: list[tuple[sp.Expr, sp.Expr]]) -> Measurement:
    """Each (lhs, rhs), expressions in the Termwise vectors of symbolic length m, simplifies to
    lhs - rhs = 0. A pair that does not is evaluated at m = 3 and fixed rationals, to show it false."""
    at_m3 = {W1[1]: sp.Rational(2), W1[2]: sp.Rational(3, 5), W1[3]: sp.Rational(7, 3),
             W2[1]: sp.Rational(5, 2), W2[2]: sp.Rational(1, 3), W2[3]: sp.Rational(4)}
    for k, (lhs, rhs) in enumerate(pairs):
        difference = sp.simplify(lhs - rhs)
        if difference != 0:
            value = (lhs - rhs).subs(M, 3).doit().subs(at_m3)
            return Measurement(abs(float(value)), 0.0, "exact symbolic identity for every m", k + 1, ["general m"],
                               counterexample={"identity": k + 1, "difference": str(difference), "value": str(value),
                                               "at m=3": {str(s): str(v) for s, v in at_m3.items()}},
                               holds=False)
    return Measurement(0.0, 0.0, "exact symbolic identity for every m (sympy Sum over i = 1..m)", len(pairs),
                       ["general m"])


S26_SYMBOLIC_MUTANTS = {"missing m": lambda w1, w2: (abs(ratio_sum(w2, w1)), abs(ratio_sum(w1, w2))),
                        "sides swapped": lambda w1, w2: s26_printed(w1, w2)[::-1],
                        "m - 1 instead of m": lambda w1, w2: (abs(ratio_sum(w2, w1) - depth(w1) + 1),
                                                              abs(ratio_sum(w1, w2) - depth(w1) + 1))}


@check("S26", method="sympy", printed=s26_printed, mutants=S26_SYMBOLIC_MUTANTS, proves=True)
def s26_restates_s25_sympy(ctx: Context, formula) -> Measurement:
    """For every depth m and all nonzero real w1, w2 (sympy Sum over i = 1..m): the sides of (S26)
    equal |(w1 - w2)^T z1| and |(w1 - w2)^T z2| with z = 1/w, so (S26) and (S25) are equivalent."""
    w1, w2 = GENERAL_W1, GENERAL_W2
    sides = formula(w1, w2)
    truth = [sp.Abs(total((w1 - w2) * (1 / z))) for z in (w1, w2)]
    return general_identities([(sp.Abs(side), t) for side, t in zip(sides, truth)])


@check("S26", method="exact", printed=s26_printed,
       mutants={**S26_SYMBOLIC_MUTANTS, "without absolute values": lambda w1, w2: (ratio_sum(w2, w1) - depth(w1),
                                                                                   ratio_sum(w1, w2) - depth(w1))})
def s26_iff_sharper_exact(ctx: Context, formula) -> Measurement:
    """Exact rational pairs of minima in every orthant, both signs of tau, with ties (m = 2..8): the
    three-way order of (S26) equals the exact measured order of the line sharpnesses."""
    batches = judged(formula, all_domain_pairs(ctx.check_seed, exact_instances(ctx), True))
    return ordering_measurement(batches, implication=False, reason=EXACT)


# === (S27), (S28) ===================================================================================

S27_MUTANTS = {"missing factor m": lambda w1, w2: geometric_mean(w2 / w1),
               "missing denominator prod w1": lambda w1, w2: depth(w1) * geometric_mean(w2)}


def am_gm_residuals(formula: Callable, pairs: Pairs, equal: bool) -> np.ndarray:
    """1 where sum w2/w1 falls below the bound, or (for w2 = w1) where the bound is not attained."""
    actual, bound = ratio_sum(pairs.w2, pairs.w1), formula(pairs.w1, pairs.w2)
    failed = actual != bound if equal else actual < bound
    return np.asarray(failed, dtype=float)


def slack_report(pairs_list: list[Pairs]) -> dict[str, Any]:
    """Smallest slack sum w2/w1 - m over pairs with w2 != w1, and how many of them have zero slack
    (random rational pairs sometimes coincide, w2 = w1: those are counted separately)."""
    distinct = [restrict(p, np.any(p.w1 != p.w2, axis=-1), "") for p in pairs_list]
    slack = np.concatenate([np.asarray(ratio_sum(p.w2, p.w1) - p.m, dtype=object) for p in distinct])
    n = sum(p.w1.shape[0] for p in pairs_list)
    return {"pairs": n, "coincident_w2_eq_w1": n - len(slack),
            "min_slack_w2_ne_w1": float(min(slack)), "zero_slack_w2_ne_w1": int(sum(x == 0 for x in slack))}


@check("S27", method="exact", printed=s27_printed, mutants=S27_MUTANTS)
def s27_am_gm_exact(ctx: Context, formula) -> Measurement:
    """Exact rational pairs of minima of one tau > 0 in the positive orthant (m = 2..8): sum w2/w1
    is never below the printed bound, and equals it when w2 = w1 (the bound is attained, = m).
    Details: the smallest slack for w2 != w1 (positive: equality only at w2 = w1) and what happens
    in a shared orthant with tau < 0 and across orthants (AM-GM needs positive ratios)."""
    n = exact_instances(ctx) // 2
    distinct = [p for p, _ in measured_pairs(ctx.check_seed, n, True)]
    equal = [Pairs(p.w1, p.w1.copy(), p.sx2, p.tau, "exact positive w2=w1") for p in distinct]
    residuals = ([am_gm_residuals(formula, p, False) for p in distinct]
                 + [am_gm_residuals(formula, p, True) for p in equal])
    owners = [(p, k) for p in distinct + equal for k in range(p.w1.shape[0])]
    outside = {name: slack_report([p for p, _ in measured_pairs(ctx.check_seed, n // 2, True, **kw)])
               for name, kw in OUTSIDE_DOMAIN.items()}
    return batch_measurement(np.concatenate(residuals), 0.0, EXACT, [f"m={p.m} {p.kind}" for p in distinct + equal],
                             lambda k: owners[k][0].instance(owners[k][1]),
                             in_domain=slack_report(distinct), outside_domain=outside)


@check("S27", method="hypothesis", printed=s27_printed, mutants=S27_MUTANTS)
def s27_am_gm_hypothesis(ctx: Context, formula) -> Measurement:
    """Hypothesis search over exact rational minima in the positive orthant (independent, equal,
    exact and near ties; m = 2..8): sum w2/w1 >= the printed bound, with equality when w2 = w1."""

    def residual(example: tuple) -> float:
        return float(am_gm_residuals(formula, exact_pair(example), example[3] == "equal")[0])

    return search(ctx, exact_pairs_strategy(("independent", "equal", "tie", "near")), residual, 0.0, EXACT,
                  shape=lambda ex: f"m={ex[0]} {ex[3]}")


@check("S28", method="exact", printed=s28_printed, mutants=S23_MUTANTS)
def s28_iff_sharper_exact(ctx: Context, formula) -> Measurement:
    """Exact rational pairs in the positive orthant, independent, exact ties and near ties (sums
    differing at order 1e-6^3; m = 2..8): the three-way order of (S28) equals the measured order."""
    n = exact_instances(ctx) // 3
    batches = [b for ties in ("", "exact", "near") for b in measured_pairs(ctx.check_seed, n, True, ties=ties)]
    return ordering_measurement(judged(formula, batches), implication=False, reason=EXACT)


@check("S28", method="float", printed=s28_printed, mutants=S23_MUTANTS, backend=True)
def s28_reduction_needs_s27_float(ctx: Context, formula) -> Measurement:
    """Float pairs of minima in every orthant (m = 2..8), kept where both ratio sums are >= m (the
    premise (S27) of the reduction (S26) -> (S28)): there the order of (S28) (on ``ctx.xp``) equals
    the measured order. Details: on pairs where (S27) fails, how often (S28) disagrees with the measurement."""
    kept, failing = [], []
    drawn = drawn_until(ctx.profile.instances, lambda k: all_domain_pairs(ctx.check_seed, k, False),
                        lambda batches: sum(int(s27_premise(pairs).sum()) for pairs, _ in batches))
    for pairs, sharp in drawn:
        premise = s27_premise(pairs)
        order = sharp.order()
        for mask, into, label in ((premise, kept, "S27 holds"), (~premise, failing, "S27 fails")):
            if mask.any():
                part = restrict(pairs, mask, label)
                into.append((part, criterion_order(formula, part, ctx), order[mask]))
    return ordering_measurement(kept, implication=False, where_s27_fails=agreement(
        [(p, pred, meas) for p, pred, meas in failing]))


# === (S29), (S30), (S31): the deceptive minimum ====================================================

TAU = sp.Symbol("tau", real=True, nonzero=True)


@lru_cache(maxsize=None)
def symbolic_minimum(m: int, name: str) -> np.ndarray:
    """A general global minimum of depth m: free nonzero w_1..w_{m-1}, w_m = tau / prod (S11)."""
    free = sp.symbols(f"{name}1:{m}", real=True, nonzero=True) if m > 1 else ()
    return np.array([*free, TAU / sp.Mul(*free)], dtype=object)


def at_rationals(expr: sp.Expr) -> sp.Expr:
    """expr at fixed rationals for every free symbol (to show that a nonzero residue is really nonzero)."""
    values = {s: sp.Rational(k + 2, 2 * k + 3) * (-1) ** k for k, s in enumerate(sorted(expr.free_symbols, key=str))}
    return expr.subs(values)


@check("S29", method="sympy", printed=s29_printed,
       mutants={"missing square: w1/w2": lambda w1, w2: w1 / w2,
                "w1^2 / w2^2": lambda w1, w2: w1**2 / w2**2,
                "w1^2 w2": lambda w1, w2: w1**2 * w2})
def s29_global_minimum_sympy(ctx: Context, formula) -> Measurement:
    """For m = 1..max_depth and general symbolic minima w1, w2 (S11): the loss at w3 = (S29) equals
    the global minimum value sigma_y^2 - sigma_xy^2 / sigma_x^2 of the loss (sympy, exact)."""
    shapes = []
    for m in range(1, ctx.profile.max_depth + 1):
        w, sx2, sxy, sy2 = sn.symbols(m)
        w3 = formula(symbolic_minimum(m, "a"), symbolic_minimum(m, "b"))
        excess = sp.cancel(sn.symbolic_loss(m).subs(dict(zip(w, w3))).subs(sxy, TAU * sx2) - (sy2 - sx2 * TAU**2))
        if excess != 0:
            return Measurement(abs(float(at_rationals(excess))), 0.0, "exact symbolic identity", m, shapes + [f"m={m}"],
                               counterexample={"m": m, "loss_above_minimum": str(sp.factor(excess))[:400]})
        shapes.append(f"m={m}")
    return Measurement(0.0, 0.0, "exact symbolic identity", len(shapes), shapes)


@lru_cache(maxsize=None)
def flattest_pairs(seed: int, n: int, exact: bool) -> tuple[Pairs, ...]:
    """For each depth in DEPTHS: w1 the flattest minimum in the positive orthant (every w_i =
    tau^(1/m); exact with tau = c^m) and w2 a random minimum in the positive orthant."""
    rng = np.random.default_rng(seed)
    out = []
    for m in DEPTHS:
        k = per_depth(n)
        if exact:
            c = np.array([Fraction(int(p), int(q)) for p, q in rng.integers(1, 10, (k, 2))], dtype=object)
            tau, w1 = c**m, np.repeat(c[:, None], m, axis=1)
            w2, sx2 = rational_magnitudes(rng, tau, m), np.full(k, Fraction(1), dtype=object)
        else:
            tau, sx2 = np.exp(rng.uniform(-3, 3, k)), np.exp(rng.uniform(-2, 2, k))
            w1, w2 = flattest(tau, m), float_magnitudes(rng, tau, m)
        out.append(Pairs(w1, w2, sx2, tau, kind=f"{'exact' if exact else 'float'} w1 flattest"))
    return tuple(out)


def deceptive(w1: np.ndarray, w3: np.ndarray, sx2, tau) -> np.ndarray:
    """w3 looks flatter than w1 along their line (measured) although lambda_max(w3) > lambda_max(w1)
    by more than 1e-9 relative (dense eigensolver of the sympy Hessian)."""
    looks_flatter = line_sharpness(w1, w3, sx2, tau).order() == 1
    return looks_flatter & (lambda_max(w3, sx2, tau) > lambda_max(w1, sx2, tau) * (1 + 1e-9))


def loyal(pairs: Pairs) -> np.ndarray:
    """w2 measured sharper than the flattest w1 along their line: the line is loyal to lambda_max."""
    return line_sharpness(pairs.w2, pairs.w1, pairs.sx2, pairs.tau).order() == 1


@check("S29", method="float", printed=s29_printed,
       mutants={"missing square: w1/w2": lambda w1, w2: w1 / w2,
                "roles swapped: w2^2/w1": lambda w1, w2: w2**2 / w1,
                "geometric mean sqrt(w1 w2)": lambda w1, w2: (w1 * w2) ** 0.5}, backend=True)
def s29_deceptively_flatter_float(ctx: Context, formula) -> Measurement:
    """w1 the flattest minimum, w2 random minima in the positive orthant (m = 2..8), kept where the
    line is loyal (w2 measured sharper): w3 = (S29) (on ``ctx.xp``) is a global minimum (its loss
    equals the minimum to rounding), looks flatter than w1 along their line, yet has the larger
    lambda_max (host: the loss, its line polynomial and sympy's Hessian)."""
    residuals, owners, counts = [], [], {}
    drawn = drawn_until(ctx.profile.instances, lambda k: flattest_pairs(ctx.check_seed, k, False),
                        lambda batches: sum(int(loyal(pairs).sum()) for pairs in batches))
    for pairs in drawn:
        keep = loyal(pairs)
        w1, w2, sx2, tau = pairs.w1[keep], pairs.w2[keep], pairs.sx2[keep], pairs.tau[keep]
        counts[f"m={pairs.m}"] = f"{int(keep.sum())} loyal of {len(keep)}"
        if not keep.any():
            continue
        w3 = on_pairs(ctx, formula, (w1, w2))
        sxy, sy2 = tau * sx2, 1.5 * sx2 * tau**2
        gap = np.abs(sn.loss(w3, sx2, sxy, sy2) - sn.loss(w1, sx2, sxy, sy2))
        is_minimum = gap <= 8 * (pairs.m + 3) * EPS * 4.5 * sx2 * tau**2
        residuals.append(1.0 - (is_minimum & deceptive(w1, w3, sx2, tau)))
        owners += [{"m": pairs.m, "tau": tau[k], "sigma_x2": sx2[k], "w1": w1[k], "w2": w2[k], "w3": w3[k]}
                   for k in range(len(w1))]
    return batch_measurement(np.concatenate(residuals), 0.0, LOGICAL + "; 'minimum': loss within 8 (m+3) eps "
                             "of its floor; lambda_max larger by > 1e-9 relative", list(counts),
                             lambda k: to_jsonable(owners[k]), loyal_lines=counts)


S30_MUTANTS = {"inequality reversed": lambda w1, w2: s30_printed(w2, w1),
               "index misprint: sum w1/w2 on both sides": lambda w1, w2: (ratio_sum(w1, w2), ratio_sum(w1, w2))}


def s30_measurement(formula: Callable, batches: tuple[Pairs, ...], reason: str,
                    ctx: Context | None = None) -> Measurement:
    """Measured 'w2 sharper than the flattest w1' (loyal line) => (S30); details: the converse."""
    judged_batches = [(p, criterion_order(formula, p, ctx), line_sharpness(p.w2, p.w1, p.sx2, p.tau).order())
                      for p in batches]
    converse = ordering_measurement(judged_batches, implication=True).details["violations"]
    return ordering_measurement(judged_batches, implication=True, from_measured=True, reason=reason,
                                converse_violations=converse)


@check("S30", method="float", printed=s30_printed, mutants=S30_MUTANTS, backend=True)
def s30_loyal_implies_float(ctx: Context, formula) -> Measurement:
    """w1 the flattest minimum, w2 random minima in the positive orthant (float, m = 2..8): wherever
    w2 is measured sharper along the line (host), (S30) holds (on ``ctx.xp``; the direction the text
    takes from Claim S1: its converse)."""
    return s30_measurement(formula, flattest_pairs(ctx.check_seed, ctx.profile.instances, False), LOGICAL, ctx)


@check("S30", method="exact", printed=s30_printed, mutants=S30_MUTANTS)
def s30_loyal_implies_exact(ctx: Context, formula) -> Measurement:
    """As the float check, exactly: tau = c^m with rational c, so the flattest minimum is rational."""
    return s30_measurement(formula, flattest_pairs(ctx.check_seed, exact_instances(ctx) // 2, True), EXACT)


S31_MUTANTS = {"index swap: sum w3/w1 = sum w2/w1":
               lambda w1, w2, w3: ((ratio_sum(w3, w1), ratio_sum(w2, w1)), (ratio_sum(w2, w1), ratio_sum(w1, w3))),
               "ratio inverted: sum w1/w2 = sum w1/w3":
               lambda w1, w2, w3: ((ratio_sum(w3, w1), ratio_sum(w1, w2)), (ratio_sum(w1, w2), ratio_sum(w1, w3)))}


@check("S31", method="sympy", printed=s31_printed, mutants=S31_MUTANTS, proves=True)
def s31_identities_sympy(ctx: Context, formula) -> Measurement:
    """For every depth m and all nonzero real w1, w2 (sympy Sum over i = 1..m), with w3 = w1^2/w2
    (S29): both equalities of (S31) hold, so the chain follows from its middle inequality, which is
    the premise (S30) verbatim (checked there)."""
    w1, w2 = GENERAL_W1, GENERAL_W2
    return general_identities(list(formula(w1, w2, w1**2 / w2)))


def s31_orders(formula: Callable, w1: Any, w2: Any, w3: Any) -> tuple[Any, Any]:
    """The order of w1 against w3 predicted by Claim S1 from either side of each equality of (S31)."""
    (a, b), (c, d) = formula(w1, w2, w3)
    return three_way(a, d), three_way(b, c)


@check("S31", method="float", printed=s31_printed, mutants=S31_MUTANTS, backend=True)
def s31_conclusion_float(ctx: Context, formula) -> Measurement:
    """Random pairs of minima w1, w2 in the positive orthant (any w1, not only the flattest; m =
    2..8) and w3 = w1^2/w2: the order of w1 against w3 along their line, predicted by Claim S1 from
    either side of each equality of (S31), equals the measured one. So the line through w1 and w3
    reverses the verdict of the line through w1 and w2. The sums run on ``ctx.xp``, the measurement
    on the host."""
    batches = []
    for pairs, _ in measured_pairs(ctx.check_seed, ctx.profile.instances, False):
        w3 = pairs.w1**2 / pairs.w2
        measured = line_sharpness(pairs.w1, w3, pairs.sx2, pairs.tau).order()
        first, second = on_pairs(ctx, lambda *w: s31_orders(formula, *w), (pairs.w1, pairs.w2, w3))
        batches += [(pairs, first, measured), (pairs, second, measured)]
    return ordering_measurement(batches, implication=False)


# === (S32): two layers ==============================================================================

def s32_index_misprint(w1, w2):
    """(S32) with w2^(1)/w2^(2) printed for the first term on the right."""
    return s32_printed(w1, w2)[0], w1[..., 1] / w2[..., 1] + w2[..., 0] / w1[..., 0]


S32_MUTANTS = {"the same identity for m = 3": AtDepth(3, same_sums_identity),
               "index misprint: w2^(1)/w2^(2) on the right": AtDepth(2, s32_index_misprint)}


def symbolic_residue(expr: sp.Expr, what: str) -> Measurement:
    """Exact: expr must cancel to 0; otherwise its value at fixed rationals is the residual."""
    residue = sp.cancel(sp.together(expr))
    if residue == 0:
        return Measurement(0.0, 0.0, "exact symbolic identity (all symbols free)", 1, [what])
    return Measurement(abs(float(at_rationals(residue))), 0.0, "exact symbolic identity", 1, [what],
                       counterexample={"residue": str(sp.factor(residue))[:400]}, holds=False)


@check("S32", method="sympy", printed=AtDepth(2), mutants=S32_MUTANTS, proves=True)
def s32_identity_sympy(ctx: Context, formula: AtDepth) -> Measurement:
    """For general minima of depth formula.m (w_m = tau / prod of the others, symbolic nonzero reals
    and tau != 0, any orthant): the two sides of the statement cancel exactly."""
    lhs, rhs = formula.sides(symbolic_minimum(formula.m, "a"), symbolic_minimum(formula.m, "b"))
    return symbolic_residue(lhs - rhs, f"m={formula.m}")


@check("S32", method="sympy", printed=AtDepth(2), mutants={"the same conclusion for m = 3": AtDepth(3)}, proves=True)
def s32_equally_sharp_sympy(ctx: Context, formula: AtDepth) -> Measurement:
    """'The minima appear equally sharp': for general symbolic minima of depth formula.m, the
    curvature of the loss along their line (twice its t^2 coefficient, polynomial arithmetic) is the
    same at both, exactly, for every sigma_x^2, tau and orthant."""
    _, sx2, _, _ = sn.symbols(formula.m)
    w1, w2 = symbolic_minimum(formula.m, "a"), symbolic_minimum(formula.m, "b")
    s1, s2 = (sn.line_curvature(w, w1 - w2, sx2, TAU * sx2) for w in (w1, w2))
    return symbolic_residue(s1 - s2, f"m={formula.m}")


# === Lemma 2 ========================================================================================

@lru_cache(maxsize=None)
def deception_census(seed: int, n: int) -> tuple[dict[str, Any], ...]:
    """Per depth m = 2..8, exactly measured (tau = c^m, w1 the flattest minimum): how many random
    minima w3, and how many S29 witnesses w1^2/w2 built from loyal w2, look flatter than w1 along
    their line while lambda_max(w3) > lambda_max(w1); and whether every line is a tie."""
    out = []
    for pairs in flattest_pairs(seed, n, True):
        args = (pairs.sx2, pairs.tau)
        is_loyal = loyal(pairs)
        witnesses = pairs.w1[is_loyal] ** 2 / pairs.w2[is_loyal]
        loyal_args = tuple(a[is_loyal] for a in args)
        out.append({"m": pairs.m, "random minima": len(pairs.w2),
                    "random deceptive": int(deceptive(pairs.w1, pairs.w2, *args).sum()),
                    "loyal w2": int(is_loyal.sum()),
                    "S29 witnesses deceptive": int(deceptive(pairs.w1[is_loyal], witnesses, *loyal_args).sum())
                    if is_loyal.any() else 0,
                    "all lines ties": bool(np.all(line_sharpness(pairs.w1, pairs.w2, *args).order() == 0))})
    return tuple(out)


@check("Lemma 2", method="exact", printed=lemma2_printed,
       mutants={"deception already at m = 2": lambda m: m >= 2, "only from m = 4": lambda m: m >= 4,
                "never": lambda m: False})
def lemma2_deception_by_depth(ctx: Context, formula) -> Measurement:
    """For random tau > 0 and each m = 2..8, with w1 the flattest minimum: a minimum that looks
    flatter than w1 along their line although its lambda_max is larger (exact line sharpness,
    dense eigensolver) is found, among random minima or S29 witnesses, exactly when the lemma says
    it exists (m >= 3); at m = 2 every sampled line is an exact tie."""
    census = deception_census(ctx.check_seed, exact_instances(ctx))
    found = [row["random deceptive"] + row["S29 witnesses deceptive"] > 0 for row in census]
    wrong = [row for row, f in zip(census, found) if f != formula(row["m"])]
    ties_at_2 = all(row["all lines ties"] for row in census if row["m"] == 2)
    return Measurement(float(len(wrong)), 0.0, EXACT + "; existence per depth must match the lemma",
                       sum(row["random minima"] for row in census), [f"m={row['m']}" for row in census],
                       counterexample=to_jsonable(wrong[0]) if wrong else None,
                       holds=not wrong and ties_at_2, details={"census": list(census)})

"""Certificates: Lemma 3, Theorems 1-3 and (S64)-(S66) proved on rational instances.

Each check here is a proof for its instances (``proofs.certify_instances``: rational global
minima, canonical, rotated flattest and random (S104), N = m d^2 up to 50 weights), not a
measurement: every quantity is an exact rational or an algebraic number enclosed in arb balls
(``proofs.certify``), so a pass is ``verified`` for those instances. It does not prove the claim
for its whole domain, and the claim's verdict counts it as passed. Certificates run only with
``verify --certify`` and need python-flint.

Ground truth is the Hessian of the loss computed without Lemma 3: for Lemma 3 itself the
hyper-dual second derivatives of the loss (``hessian_reference``), elsewhere the forward-mode
derivative of the analytic gradient, both over Fraction. Its spectrum is exact (FLINT's
characteristic polynomial over Q, factored): lambda_max is a root of an irreducible factor
isolated in a ball, its multiplicity and the number of zero eigenvalues are exact. Closed forms
are compared exactly when rational and otherwise by disjoint balls; an equality between two
irrational numbers is never accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from verify.checks import check
from verify.context import Context
from verify.model import Measurement
from proofs import certify_instances as ci
from proofs import lemma3
from proofs import linear_network as ln
from proofs.hessian_reference import HyperDual, hyperdual_hessian
from proofs.section5_theorem1 import FLATTEST_VALUE_MUTANTS, S66_MUTANTS, s64_printed, s66_printed

if TYPE_CHECKING:
    from proofs.certify import ClosedForm, Eigenvalue, Rational, Spectrum

NEEDS = ("flint",)
METHOD = ("rigorous: exact characteristic polynomial over Q (FLINT fmpq_mat.charpoly), factored into irreducibles "
          "with exact multiplicities (clusters are exact factors), roots isolated in arb balls "
          "(fmpz_poly.complex_roots); closed forms compared exactly when rational, else by disjoint balls")

LEMMA3_INSTANCES = ("canonical 3x4x2", "rotated flattest 3x3x3x3", "random (S104) 3x3x3x3",
                    "random (S104) 2x3x2 Sigma_x != I")
FLATTEST = ci.CANONICAL + ci.ROTATED


# --- exact algebra on object arrays ---------------------------------------------------------------

def gradient_jacobian(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray:
    """The Hessian of the loss as the exact derivative of the analytic gradient (one forward-mode
    dual-number pass per weight over Fraction); independent of Lemma 3, valid at any point."""
    dims = ln.widths(weights)
    w0 = ln.flatten(weights)
    columns = []
    for j in range(w0.shape[-1]):
        w = np.array([HyperDual(x, int(k == j)) for k, x in enumerate(w0)], dtype=object)
        g = ln.flatten(ln.gradient(ln.unflatten(w, dims), data))
        columns.append([x.b if isinstance(x, HyperDual) else Fraction(0) for x in g])
    return np.array(columns, dtype=object).T


def dot(a: np.ndarray, b: np.ndarray) -> Fraction:
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


def exactly_zero(A: Any) -> bool:
    return all(x == 0 for x in np.ravel(np.asarray(A, dtype=object)))


def worst(A: Any) -> float:
    """max |A_ij| as a float (how far from zero a refuted exact identity is)."""
    return max((abs(float(x)) for x in np.ravel(np.asarray(A, dtype=object))), default=0.0)


# --- cached ground truth ----------------------------------------------------------------------------

@lru_cache(maxsize=None)
def hessian(label: str) -> np.ndarray:
    """The exact Hessian of the loss at an instance (derivative of the analytic gradient)."""
    inst = ci.instance(label)
    return gradient_jacobian(list(inst.weights), inst.data)


@lru_cache(maxsize=None)
def loss_hessian(label: str) -> np.ndarray:
    """The exact Hessian from hyper-dual second derivatives of the loss itself."""
    inst = ci.instance(label)
    return hyperdual_hessian(list(inst.weights), inst.data)


@lru_cache(maxsize=None)
def spectrum(label: str) -> Spectrum:
    from proofs import certify  # noqa: PLC0415 - python-flint is optional

    return certify.spectrum(hessian(label))


# --- what a certificate established ---------------------------------------------------------------

@dataclass
class Ledger:
    """The statements a certificate proved or refuted, per instance. A refuted statement records
    how far apart its sides are proved to be (``gap``); an undecided one counts as refuted."""

    pieces: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    radii: list[float] = field(default_factory=list)

    def record(self, instance: str, statement: str, ok: bool, gap: float = 0.0) -> bool:
        self.instances.setdefault(instance, {})
        self.pieces.append({"instance": instance, "statement": statement, "proved": ok, "gap": gap})
        return ok

    def exact(self, instance: str, statement: str, difference: Any) -> bool:
        """An identity in exact rationals: ``difference`` must vanish."""
        return self.record(instance, statement, exactly_zero(difference), worst(difference))

    def order(self, instance: str, statement: str, a: Any, b: Any, allowed: Sequence[int]) -> bool:
        """The sign of a - b, proved by ``certify.compare``, must be in ``allowed``
        ((0,) for a = b, (0, 1) for a >= b, (-1, 0) for a <= b)."""
        from proofs import certify  # noqa: PLC0415

        sign = certify.compare(a, b)
        self.radii.append(certify.enclosure_radius([a, b]))
        if sign in allowed:
            return self.record(instance, statement, True)
        return self.record(instance, statement + ("" if sign is not None else " (undecided)"), False,
                           certify.gap(a, b) if sign is not None else float("inf"))

    def fact(self, instance: str, **facts: Any) -> None:
        self.instances.setdefault(instance, {}).update(facts)

    def measurement(self) -> Measurement:
        failed = [p for p in self.pieces if not p["proved"]]
        residual = max((p["gap"] for p in failed), default=0.0)
        return Measurement(
            residual=residual, tolerance=0.0, tolerance_reason=METHOD, instances=len(self.instances),
            shapes=list(self.instances), counterexample=failed[0] if failed else None, holds=not failed,
            radius=max(self.radii, default=0.0),
            details={"method": METHOD, "statements proved": sum(p["proved"] for p in self.pieces),
                     "statements refuted or undecided": len(failed), "instances": self.instances})


def describe_spectrum(ledger: Ledger, label: str) -> Eigenvalue:
    """lambda_max of the instance's Hessian (an Eigenvalue), with its spectrum noted in the ledger."""
    s = spectrum(label)
    ledger.fact(label, **s.describe())
    return s.top()


def value(formula: Callable[..., Any], inst: ci.RationalMinimum, *extra: int, squared: bool = False) -> ClosedForm:
    """The closed form formula(sigma_max(T), m, *extra) (or its square) as a certify.ClosedForm."""
    from proofs import certify  # noqa: PLC0415

    f = (lambda s, m, *k: formula(s, m, *k) ** 2) if squared else formula
    return certify.closed_form(lambda s, m: f(s, m, *extra), inst.sigma_max, inst.m)


def exact_value(x: Fraction) -> Rational:
    from proofs import certify  # noqa: PLC0415

    return certify.rational(x)


# --- Lemma 3 ---------------------------------------------------------------------------------------

def lemma3_printed(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray:
    """H_w = 2 Phi Phi^T with Phi_k = (W_{k-1}..W_1 Sigma_x^{1/2}) (x) (W_m..W_{k+1})^T (S47)-(S49)."""
    return lemma3.hessian(list(weights), data)


def transposed_kronecker(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray:
    """2 P P^T with the Kronecker factors of every Phi_k in the other order."""
    blocks = [ln.kron(A.T, B @ data.Sigma_x_half) for A, B in zip(ln.above(list(weights)), ln.below(list(weights)))]
    P = np.concatenate(blocks, axis=0)
    return 2 * P @ P.T


LEMMA3_MUTANTS = {
    "missing factor 2": lambda W, data: lemma3.hessian(list(W), data) / 2,
    "Sigma_x instead of Sigma_x^{1/2}": lambda W, data: lemma3.hessian(list(W), replace(data, Sigma_x_half=data.Sigma_x)),
    "transposed Kronecker order in Phi_k": transposed_kronecker,
}


@check("Lemma 3", method="interval", printed=lemma3_printed, mutants=LEMMA3_MUTANTS, certificate=True, needs=NEEDS)
def lemma3_certificate(ctx: Context, formula) -> Measurement:
    """At rational global minima (canonical 3x4x2, rotated flattest and random (S104) 3x3x3x3, random
    (S104) 2x3x2 with Sigma_x != I): the formula's Hessian equals, entry by entry in exact rationals,
    the Hessian from hyper-dual second derivatives of the loss, which equals the derivative of the
    analytic gradient; its exact spectrum (lambda_max in a ball, the exact number of zero
    eigenvalues) is recorded."""
    ledger = Ledger()
    for label in LEMMA3_INSTANCES:
        inst = ci.instance(label)
        H, truth = formula(list(inst.weights), inst.data), loss_hessian(label)
        if H.shape != truth.shape:
            ledger.record(label, f"H has shape {H.shape}, the Hessian {truth.shape}", False, float("inf"))
            continue
        ledger.exact(label, "H_w = 2 Phi Phi^T entry by entry", H - truth)
        ledger.exact(label, "the same Hessian as the derivative of the analytic gradient", truth - hessian(label))
        describe_spectrum(ledger, label)
    return ledger.measurement()


# --- lambda_max at global minima: (S64), (S65), Theorem 1 ------------------------------------------------

def top_value_ledger(formula: Callable[[Any, Any], Any], labels: Sequence[str]) -> Ledger:
    """lambda_max(H) = formula(sigma_max, m) at flattest minima and >= it at random minima (S104)."""
    ledger = Ledger()
    for label in labels:
        inst = ci.instance(label)
        lam, closed = describe_spectrum(ledger, label), value(formula, inst)
        ledger.fact(label, **{"closed form": str(closed.exact) if closed.exact is not None else closed.ball(128).str(20)})
        if inst.flattest:
            ledger.order(label, "lambda_max(H) = closed form", lam, closed, (0,))
        else:
            ledger.order(label, "lambda_max(H) >= closed form (minimality)", lam, closed, (0, 1))
    return ledger


@check("S64", method="interval", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, certificate=True, needs=NEEDS)
def s64_certificate(ctx: Context, formula) -> Measurement:
    """Canonical solutions (27) of rational T (4x4x4x4 rank 3, 5x5x5 with sigma_1 = sigma_2, 3x4x2): the
    exact lambda_max of the Hessian equals the closed form, 2m t_1^{2(m-1)} with sigma_max = t_1^m."""
    return top_value_ledger(formula, ci.CANONICAL).measurement()


@check("S65", method="interval", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, certificate=True, needs=NEEDS)
def s65_certificate(ctx: Context, formula) -> Measurement:
    """Flattest minima, canonical and rotated (W_i = M_i^T C_i M_{i-1}, M_i rational orthogonal): the exact
    lambda_max of the Hessian equals the closed form."""
    return top_value_ledger(formula, FLATTEST).measurement()


@check("Theorem 1", method="interval", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, certificate=True,
       needs=NEEDS)
def theorem1_certificate(ctx: Context, formula) -> Measurement:
    """min over global minima of lambda_max(H) = 2m sigma_max^{2(1-1/m)}, on rational instances: attained
    at flattest minima (exact equality) and a lower bound at random minima (S104), whose lambda_max is
    irrational, enclosed in a ball lying above the closed form."""
    return top_value_ledger(formula, FLATTEST + ci.RANDOM).measurement()


# --- (S66): b* = v (x) u is a top eigenvector ----------------------------------------------------------------

@check("S66", method="interval", printed=s66_printed, certificate=True, needs=NEEDS,
       mutants={k: S66_MUTANTS[k] for k in ("b* = u (x) v", "value with exponent 2(1+1/m)")})
def s66_certificate(ctx: Context, formula) -> Measurement:
    """Flattest rational minima: (2 Phi^T Phi) b* = lambda b* and H (Phi b*) = lambda Phi b* exactly, with
    lambda the certified lambda_max of the Hessian, so b* is a top eigenvector of 2 Phi^T Phi and Phi b* of
    H; the left side 2 sum_k ||.||_F^2 of (S66) at B* equals lambda_max, and so does the printed value.
    (The Lemma 4 middle of the chain, a spectral norm, is not part of this certificate.)"""
    ledger = Ledger()
    for label in FLATTEST:
        inst = ci.instance(label)
        W, data = list(inst.weights), inst.data
        lam = describe_spectrum(ledger, label)
        if lam.exact is None:
            ledger.record(label, "lambda_max rational", False, float("inf"))
            continue
        b = formula.b_star(inst.u, inst.v)
        Phi = lemma3.phi(W, data)
        if b.shape != (Phi.shape[1],):
            ledger.record(label, f"b* has shape {b.shape}, Phi {Phi.shape}", False, float("inf"))
            continue
        h = Phi @ b
        ledger.exact(label, "(2 Phi^T Phi) b* = lambda_max b*", 2 * Phi.T @ h - lam.exact * b)
        ledger.record(label, "Phi b* != 0", not exactly_zero(h), float("inf"))
        ledger.exact(label, "H (Phi b*) = lambda_max Phi b*", hessian(label) @ h - lam.exact * h)
        lhs = formula.lhs(W, ln.unvec(b, data.d_y, data.d_x))
        ledger.exact(label, "2 sum_k ||A_k^T B* B_k^T||_F^2 = lambda_max", np.array([lhs - lam.exact]))
        ledger.order(label, "lambda_max = printed value", lam, value(formula.value, inst), (0,))
    return ledger.measurement()


# --- Theorem 2 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gains:
    """Theorem 2's closed forms in sigma = sigma_max(T), m and k: the prefix gain ||W_k..W_1 v||, the suffix
    gain ||(W_m..W_{k+1})^T u|| and the bound on sigma_max(W_{k-1}..W_1) (S91)."""

    prefix: Callable[[Any, Any, int], Any]
    suffix: Callable[[Any, Any, int], Any]
    bound: Callable[[Any, Any, int], Any]


def _sqrt(x: Any) -> Any:
    from proofs import certify  # noqa: PLC0415

    return certify.sqrt(x)


theorem2_printed = Gains(prefix=lambda s, m, k: s ** (k / m), suffix=lambda s, m, k: s ** ((m - k) / m),
                         bound=lambda s, m, k: _sqrt(m) * s ** ((k - 1) / m))
THEOREM2_MUTANTS = {
    "prefix gain sigma^{(k+1)/m}": replace(theorem2_printed, prefix=lambda s, m, k: s ** ((k + 1) / m)),
    "suffix gain sigma^{k/m} (u and v sides swapped)": replace(theorem2_printed, suffix=lambda s, m, k: s ** (k / m)),
    "bound with exponent (k-2)/m": replace(theorem2_printed, bound=lambda s, m, k: _sqrt(m) * s ** ((k - 2) / m)),
}


def sigma_max_squared(M: np.ndarray) -> Eigenvalue:
    """sigma_max(M)^2 = lambda_max(M^T M), certified (an Eigenvalue)."""
    from proofs import certify  # noqa: PLC0415

    return certify.lambda_max(M.T @ M)


@check("Theorem 2", method="interval", printed=theorem2_printed, mutants=THEOREM2_MUTANTS, certificate=True,
       needs=NEEDS)
def theorem2_certificate(ctx: Context, formula) -> Measurement:
    """Flattest rational minima (Sigma_x = I) and every k: v is a right singular vector of W_k..W_1
    ((S81), exact), ||W_k..W_1 v||^2 = prefix^2 (S84) and ||(W_m..W_{k+1})^T u||^2 = suffix^2 (exact or
    by disjoint balls); sigma_max(W_{k-1}..W_1)^2 <= bound^2 (S91) and sigma_max(W_m..W_{k+1})^2 <=
    bound(m-k+1)^2 (the other direction), with sigma_max^2 a certified lambda_max."""
    ledger = Ledger()
    for label in FLATTEST:
        inst = ci.instance(label)
        W, m = list(inst.weights), inst.m
        for k in range(m + 1):
            P, S = ln.product(W, 1, k), ln.product(W, k + 1, m)
            Pv, Su = P @ inst.v, S.T @ inst.u
            gain2 = dot(Pv, Pv)
            ledger.exact(label, f"(S81) k={k}", P.T @ Pv - gain2 * inst.v)
            ledger.order(label, f"(S84) k={k}", exact_value(gain2), value(formula.prefix, inst, k, squared=True), (0,))
            ledger.order(label, f"left gain k={k}", exact_value(dot(Su, Su)),
                         value(formula.suffix, inst, k, squared=True), (0,))
            if k >= 1:
                ledger.order(label, f"(S91) k={k}", sigma_max_squared(ln.product(W, 1, k - 1)),
                             value(formula.bound, inst, k, squared=True), (-1, 0))
                ledger.order(label, f"(S91) other direction k={k}", sigma_max_squared(S),
                             value(formula.bound, inst, m - k + 1, squared=True), (-1, 0))
    return ledger.measurement()


# --- Theorem 3 -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Coupling:
    """Theorem 3: gram(W_k) r_k = eigenvalue(sigma, m) r_k (S96) and W_k r_k / ||r_k|| =
    gain(sigma, m) q_k / ||q_k|| (S97)."""

    gram: Callable[[np.ndarray], np.ndarray]
    eigenvalue: Callable[[Any, Any], Any]
    gain: Callable[[Any, Any], Any]


theorem3_printed = Coupling(gram=lambda W: W.T @ W, eigenvalue=lambda s, m: s ** (2 / m), gain=lambda s, m: s ** (1 / m))
THEOREM3_MUTANTS = {
    "W_k W_k^T instead of W_k^T W_k": replace(theorem3_printed, gram=lambda W: W @ W.T),
    "eigenvalue sigma^{1/m}": replace(theorem3_printed, eigenvalue=lambda s, m: s ** (1 / m)),
    "gain sigma^{2/m}": replace(theorem3_printed, gain=lambda s, m: s ** (2 / m)),
}


def positive_multiple(x: np.ndarray, q: np.ndarray) -> tuple[Fraction, np.ndarray]:
    """(alpha, x - alpha q) with alpha = <x, q> / <q, q>: x = alpha q exactly iff the rest vanishes."""
    alpha = dot(x, q) / dot(q, q)
    return alpha, x - alpha * q


@check("Theorem 3", method="interval", printed=theorem3_printed, mutants=THEOREM3_MUTANTS, certificate=True,
       needs=NEEDS)
def theorem3_certificate(ctx: Context, formula) -> Measurement:
    """Flattest rational minima (Sigma_x = I), k = 1..m, r_k = W_{k-1}..W_1 v, q_k = (W_m..W_{k+1})^T u:
    gram(W_k) r_k = rho r_k exactly and rho = eigenvalue (S96); W_k r_k = alpha q_k exactly with alpha > 0
    and ||W_k r_k||^2 / ||r_k||^2 = gain^2 (S97); r_{k+1} is a positive multiple of q_k (Lemma S2)."""
    ledger = Ledger()
    for label in FLATTEST:
        inst = ci.instance(label)
        W, m = list(inst.weights), inst.m
        for k in range(1, m + 1):
            r, q = ln.product(W, 1, k - 1) @ inst.v, ln.product(W, k + 1, m).T @ inst.u
            G = formula.gram(W[k - 1])
            if G.shape[1] != r.shape[0]:
                ledger.record(label, f"(S96) k={k}: gram of shape {G.shape} against r_k of length {r.shape[0]}", False,
                              float("inf"))
                continue
            Gr = G @ r
            rho = dot(r, Gr) / dot(r, r)
            ledger.exact(label, f"(S96) r_k an eigenvector, k={k}", Gr - rho * r)
            ledger.order(label, f"(S96) eigenvalue k={k}", exact_value(rho), value(formula.eigenvalue, inst), (0,))
            x = W[k - 1] @ r
            alpha, rest = positive_multiple(x, q)
            ledger.exact(label, f"(S97) W_k r_k parallel to q_k, k={k}", rest)
            ledger.record(label, f"(S97) same direction, k={k}", alpha > 0, float("inf"))
            ledger.order(label, f"(S97) gain k={k}", exact_value(dot(x, x) / dot(r, r)),
                         value(formula.gain, inst, squared=True), (0,))
            beta, rest = positive_multiple(ln.product(W, 1, k) @ inst.v, q)
            ledger.exact(label, f"r_(k+1) parallel to q_k, k={k}", rest)
            ledger.record(label, f"r_(k+1) same direction as q_k, k={k}", beta > 0, float("inf"))
    return ledger.measurement()

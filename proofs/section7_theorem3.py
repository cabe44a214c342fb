"""Section VII of the supplement: Theorem 3, (S92)-(S97): the layers of a flattest minimum are coupled.

Reading of r_k and q_k, which the supplement uses without defining them (they are defined in the
main text): from (S95), whose vector on both sides is prod_{j=1}^{k-1} W_j v, r_k = prod_{j<k} W_j v
(unnormalised; (S96) is homogeneous in r_k); and q_k is the image direction in (S97), read on the
u-side, q_k = (prod_{i>k} W_i)^T u, so that "r_{k+1} = q_k (normalised) is in fact the result of
Lemma S2" is exactly (S73) at k. The v-side reading q_k = prod_{j<=k} W_j v = W_k r_k is checked as
well; at a flattest minimum the two are parallel by Lemma S2.

Every statement is encoded as printed and evaluated on the certified flattest minima of
``proofs.flat_instances`` (constructed, extremal, found by the greedy search of (S105)-(S106) plus
refinement), float64 batched and mpmath at ctx.dps digits, with evidence outside the domain (random
minima (S104), where the coupling must fail; Sigma_x = c I and SPD; T = 0) in the details. (S96) and
(S97) are also checked symbolically: as consequences of (S95) and Theorem 2 for symbolic m, and as
identities on a family of 2x2 flattest minima with symbolic rotations and singular values, m = 1..8.

Theorem 3 says sigma^{1/m} is *a* singular value of W_k with singular vectors r_k, q_k. Whether it is
the TOP one (so that the top singular vectors of consecutive layers are coupled) is a stronger
reading, reported in the details of the Theorem 3 checks: it fails on flattest minima.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
import sympy as sp

from verify.checks import check
from verify.context import Context
from verify.model import Measurement

from . import flat_properties as fp
from .flat_claims import (FLATTEST, K0, K1, Chain, T, alignment, chain, families, measure, mv, norm, prefix, pw,
                          register, register_named, spectral, suffix, u_gain, unit, v_gain, with_details)
from .flat_instances import Family
from .flat_symbolic import SIGMA, family_check, over_depths, symbolic_grams, symbolic_residual

# --- the statements as printed ---------------------------------------------------------------------------


def suffix_from(f: Family, k: int) -> Any:
    """prod_{i=k}^m W_i = W_m ... W_k."""
    return suffix(f, k - 1)


def gram(f: Family, k: int) -> Any:
    """W_k^T W_k."""
    return T(f.W[k - 1]) @ f.W[k - 1]


def r_vec(f: Family, k: int) -> Any:
    """r_k = prod_{j=1}^{k-1} W_j v."""
    return mv(prefix(f, k - 1), f.v)


def q_vec(f: Family, k: int) -> Any:
    """q_k = (prod_{i=k+1}^m W_i)^T u (the u-side reading)."""
    return mv(T(suffix(f, k)), f.u)


def q_vec_v_side(f: Family, k: int) -> Any:
    """q_k = prod_{j=1}^k W_j v (the v-side reading)."""
    return mv(prefix(f, k), f.v)


def s92_printed(f: Family, k: int) -> Chain:
    """(S92) = (S73): (prod_{i>k} W_i)^T u / ||.|| = prod_{j<=k} W_j v / ||.||."""
    return alignment(f, k)


def s93_printed(f: Family, k: int) -> Chain:
    """(S93): (prod_{i>=k} W_i)^T u / ||(prod_{i>k} W_i)^T u||
    = (W_k^T W_k) prod_{j<k} W_j v / ||prod_{j<=k} W_j v||."""
    return chain(mv(T(suffix_from(f, k)), f.u) / u_gain(f, k)[..., None],
                 mv(gram(f, k), r_vec(f, k)) / v_gain(f, k)[..., None])


def s94_printed(f: Family, k: int) -> Chain:
    """(S94): (prod_{i>=k} W_i)^T u = ||(prod_{i>=k} W_i)^T u|| / ||prod_{j<k} W_j v|| prod_{j<k} W_j v."""
    lhs = mv(T(suffix_from(f, k)), f.u)
    return chain(lhs, (norm(lhs) / v_gain(f, k - 1))[..., None] * r_vec(f, k))


def s95_printed(f: Family, k: int) -> Chain:
    """(S95): ||(prod_{i>=k} W_i)^T u|| / (||prod_{j<k} W_j v|| ||(prod_{i>k} W_i)^T u||) prod_{j<k} W_j v
    = (W_k^T W_k) prod_{j<k} W_j v / ||prod_{j<=k} W_j v||."""
    coefficient = norm(mv(T(suffix_from(f, k)), f.u)) / (v_gain(f, k - 1) * u_gain(f, k))
    return chain(coefficient[..., None] * r_vec(f, k), mv(gram(f, k), r_vec(f, k)) / v_gain(f, k)[..., None])


def s96_printed(f: Family, k: int) -> Chain:
    """(S96): sigma^{2/m} r_k = (W_k^T W_k) r_k, r_k = prod_{j<k} W_j v."""
    r = r_vec(f, k)
    return chain(pw(f, f.sigma, 2, f.m)[..., None] * r, mv(gram(f, k), r))


def s97_with(q: Callable[[Family, int], Any]) -> Callable[[Family, int], Chain]:
    def formula(f: Family, k: int) -> Chain:
        r = r_vec(f, k)
        return chain(mv(f.W[k - 1], r) / norm(r)[..., None], pw(f, f.sigma, 1, f.m)[..., None] * unit(q(f, k)))
    return formula


s97_printed = s97_with(q_vec)
s97_printed.__doc__ = "(S97), q_k on the u-side: W_k r_k / ||r_k|| = sigma^{1/m} q_k / ||q_k||."
s97_v_side = s97_with(q_vec_v_side)
s97_v_side.__doc__ = "(S97), q_k on the v-side: W_k r_k / ||r_k|| = sigma^{1/m} q_k / ||q_k||, q_k = W_k r_k."


# --- registration ---------------------------------------------------------------------------------------

register("S92", s92_printed, {
    "u -> -u (not a singular pair)": lambda f, k: alignment(replace(f, u=-f.u), k),
    "left side not normalised": lambda f, k: chain(mv(T(suffix(f, k)), f.u), unit(mv(prefix(f, k), f.v))),
}, K0, what="(S92), Lemma S2 restated: the unit vectors (prod_{i>k} W_i)^T u and prod_{j<=k} W_j v.")
register("S93", s93_printed, {
    "W_k W_k^T instead of W_k^T W_k": lambda f, k: chain(
        mv(T(suffix_from(f, k)), f.u) / u_gain(f, k)[..., None],
        mv(f.W[k - 1] @ T(f.W[k - 1]), mv(prefix(f, k), f.v)) / v_gain(f, k)[..., None]),
    "suffix from k + 1 on the left": lambda f, k: chain(mv(T(suffix(f, k)), f.u) / u_gain(f, k)[..., None],
                                                        mv(gram(f, k), r_vec(f, k)) / v_gain(f, k)[..., None]),
}, K1, what="(S93): both sides of (S92) multiplied by W_k^T, as vectors, k = 1..m.")
register("S94", s94_printed, {
    "prefix up to k": lambda f, k: chain(mv(T(suffix_from(f, k)), f.u),
                                         (u_gain(f, k - 1) / v_gain(f, k))[..., None] * mv(prefix(f, k), f.v)),
    "u -> -u (not a singular pair)": lambda f, k: chain(
        mv(T(suffix_from(f, k)), -f.u), (u_gain(f, k - 1) / v_gain(f, k - 1))[..., None] * r_vec(f, k)),
}, K1, what="(S94): Lemma S2 at k - 1 written without normalisation, as vectors.")
register("S95", s95_printed, {
    "coefficient inverted": lambda f, k: chain(
        ((v_gain(f, k - 1) * u_gain(f, k)) / norm(mv(T(suffix_from(f, k)), f.u)))[..., None] * r_vec(f, k),
        mv(gram(f, k), r_vec(f, k)) / v_gain(f, k)[..., None]),
    "without ||prod_{j<=k} W_j v||": lambda f, k: chain(
        (norm(mv(T(suffix_from(f, k)), f.u)) / (v_gain(f, k - 1) * u_gain(f, k)))[..., None] * r_vec(f, k),
        mv(gram(f, k), r_vec(f, k))),
}, K1, what="(S95): the combination of (S93) and (S94), as vectors.")
S96_MUTANTS = {
    "sigma^{1/m}": lambda f, k: chain(pw(f, f.sigma, 1, f.m)[..., None] * r_vec(f, k), mv(gram(f, k), r_vec(f, k))),
    "W_k W_k^T instead of W_k^T W_k": lambda f, k: chain(pw(f, f.sigma, 2, f.m)[..., None] * r_vec(f, k),
                                                         mv(f.W[k - 1] @ T(f.W[k - 1]), r_vec(f, k))),
    "r_k = prod_{j<=k} W_j v": lambda f, k: chain(pw(f, f.sigma, 2, f.m)[..., None] * mv(prefix(f, k), f.v),
                                                 mv(gram(f, k), mv(prefix(f, k), f.v))),
}
register("S96", s96_printed, S96_MUTANTS, K1,
         what="(S96): sigma^{2/m} r_k against (W_k^T W_k) r_k, r_k = prod_{j<k} W_j v, as vectors, k = 1..m.")
S97_MUTANTS = {
    "sigma^{2/m}": lambda f, k: chain(mv(f.W[k - 1], r_vec(f, k)) / norm(r_vec(f, k))[..., None],
                                      pw(f, f.sigma, 2, f.m)[..., None] * unit(q_vec(f, k))),
    "q_k = (prod_{i>=k} W_i)^T u": lambda f, k: chain(mv(f.W[k - 1], r_vec(f, k)) / norm(r_vec(f, k))[..., None],
                                                     pw(f, f.sigma, 1, f.m)[..., None] * unit(q_vec(f, k - 1))),
    "W_k^T instead of W_k": lambda f, k: chain(mv(T(f.W[k - 1]), mv(prefix(f, k), f.v)) / v_gain(f, k)[..., None],
                                               pw(f, f.sigma, 1, f.m)[..., None] * unit(q_vec(f, k))),
}
register("S97", s97_printed, S97_MUTANTS, K1,
         what="(S97), q_k = (prod_{i>k} W_i)^T u: W_k r_k / ||r_k|| against sigma^{1/m} q_k / ||q_k||, as vectors.")
register("S97", s97_v_side, {
    "sigma^{2/m}": lambda f, k: chain(mv(f.W[k - 1], r_vec(f, k)) / norm(r_vec(f, k))[..., None],
                                      pw(f, f.sigma, 2, f.m)[..., None] * unit(q_vec_v_side(f, k))),
    "q_k = prod_{j<k} W_j v": lambda f, k: chain(mv(f.W[k - 1], r_vec(f, k)) / norm(r_vec(f, k))[..., None],
                                                pw(f, f.sigma, 1, f.m)[..., None] * unit(r_vec(f, k))),
}, K1, what="(S97), q_k = prod_{j<=k} W_j v: W_k r_k / ||r_k|| against sigma^{1/m} q_k / ||q_k||, as vectors.",
         methods=("float",), name="s97_v_side_reading")


# --- symbolic checks -----------------------------------------------------------------------------------


def s96_eigenvalue(sigma, m):
    """(S96): the eigenvalue sigma^{2/m}."""
    return sigma ** (sp.Integer(2) / m)


def s97_singular_value(sigma, m):
    """(S97): the singular value sigma^{1/m}."""
    return sigma ** (sp.Integer(1) / m)


EIGENVALUE_MUTANTS = {"sigma^{1/m}": lambda s, m: s ** (sp.Integer(1) / m),
                      "sigma^{2/(m+1)}": lambda s, m: s ** (sp.Integer(2) / (m + 1))}
SINGULAR_VALUE_MUTANTS = {"sigma^{2/m}": lambda s, m: s ** (sp.Integer(2) / m),
                          "sigma^{1/(m+1)}": lambda s, m: s ** (sp.Integer(1) / (m + 1))}


@check("S96", method="sympy", printed=s96_eigenvalue, mutants=EIGENVALUE_MUTANTS)
def s96_follows_from_s95_and_theorem2(ctx: Context, formula) -> Measurement:
    """(S95) with Theorem 2's norms ||(prod_{i>=k} W_i)^T u|| = sigma^{(m-k+1)/m}, ||prod_{j<=k} W_j v|| =
    sigma^{k/m} and ||prod_{j<k} W_j v|| ||(prod_{i>k} W_i)^T u|| = sigma^{1-1/m} gives
    W_k^T W_k r_k = c r_k; sympy simplifies c (symbolic k) and compares it with the printed eigenvalue, for
    m = 1..max_depth and symbolic m."""
    k = sp.Symbol("k", positive=True, integer=True)

    def residual(m):
        left = SIGMA ** ((m - k + 1) / sp.sympify(m)) / SIGMA ** (1 - sp.Integer(1) / m)
        right = 1 / SIGMA ** (k / sp.sympify(m))
        return left / right - formula(SIGMA, m)

    return over_depths(ctx, residual)


@check("S97", method="sympy", printed=s97_singular_value, mutants=SINGULAR_VALUE_MUTANTS)
def s97_singular_value_from_s96(ctx: Context, formula) -> Measurement:
    """"Namely r_k/||r_k|| is a singular vector with singular value sigma^{1/m}": from (S96), ||W_k r||^2 =
    r^T W_k^T W_k r = sigma^{2/m} for a unit r; sympy compares sqrt of that with the printed value, for
    m = 1..max_depth and symbolic m."""
    return over_depths(ctx, lambda m: sp.sqrt(SIGMA ** (sp.Integer(2) / m)) - formula(SIGMA, m))


@check("S96", method="sympy", printed=s96_eigenvalue, mutants=EIGENVALUE_MUTANTS)
def s96_on_symbolic_flattest_family(ctx: Context, formula) -> Measurement:
    """On the 2x2 flattest minima W_k = O_k^T diag(sigma^{1/m}, t_k) O_{k-1} (symbolic rotations, sigma, t_k):
    W_k^T W_k r_k from the symbolic product against the printed eigenvalue times r_k, every k, m = 1..max_depth."""
    def residual(fam: dict, m: int, k: int) -> sp.Expr:
        r = fam["pre"][k - 1]
        diff = (symbolic_grams(m)[k - 1] * r - formula(SIGMA, m) * r).applyfunc(symbolic_residual)
        return sp.S.Zero if diff == sp.zeros(*diff.shape) else diff[0]
    return family_check(ctx, residual)


@check("S97", method="sympy", printed=s97_singular_value, mutants=SINGULAR_VALUE_MUTANTS)
def s97_on_symbolic_flattest_family(ctx: Context, formula) -> Measurement:
    """On the symbolic 2x2 flattest family: W_k r_k / ||r_k|| against the printed singular value times
    q_k / ||q_k|| with q_k = (prod_{i>k} W_i)^T u, every k, m = 1..max_depth."""
    def residual(fam: dict, m: int, k: int) -> sp.Expr:
        r, q = fam["pre"][k - 1], fam["suf"][k]
        lhs = fam["W"][k - 1] * r / fam["pre_norm"][k - 1]
        diff = (lhs - formula(SIGMA, m) * q / fam["suf_norm"][k]).applyfunc(symbolic_residual)
        return sp.S.Zero if diff == sp.zeros(*diff.shape) else diff[0]
    return family_check(ctx, residual)


# --- Theorem 3 ------------------------------------------------------------------------------------------


def theorem3_conclusions(f: Family, k: int) -> list[Chain]:
    """Theorem 3 at k: (S96), (S97) (u-side q_k) and r_{k+1} / ||r_{k+1}|| = q_k / ||q_k|| (Lemma S2)."""
    return [s96_printed(f, k), s97_printed(f, k), chain(unit(r_vec(f, k + 1)), unit(q_vec(f, k)))]


def layer_bound_only(f: Family, k: int) -> Chain:
    """A weaker statement true for ANY weights: ||W_k r_k|| <= sigma_max(W_k) ||r_k||."""
    return chain(norm(mv(f.W[k - 1], r_vec(f, k))), spectral(f.W[k - 1]) * norm(r_vec(f, k)), rel="<=")


register_named("Theorem 3", theorem3_conclusions, K1, weaker=layer_bound_only,
               wrong=lambda f, k: [S96_MUTANTS["sigma^{1/m}"](f, k)],
               what="Theorem 3 (S96, S97 and r_{k+1} = q_k for every k)")


def top_reading(f: Family) -> tuple[np.ndarray, np.ndarray]:
    """Per instance: max over layers of sigma_max(W_k) / sigma^{1/m} - 1 (0 iff sigma^{1/m} is the top
    singular value of every layer), and the largest coupling angle between the top left singular vector of
    W_k and the top right singular vector of W_{k+1} where both are simple (nan if none is)."""
    balance = fp.balance_defects(f.W, f.sigma).max(axis=-1)
    angles, ok = fp.coupling_angles(f.W)
    coupled = np.where(ok, angles, -np.inf).max(axis=-1, initial=-np.inf)
    return balance, np.where(np.isfinite(coupled), coupled, np.nan)


def top_reading_report(ctx: Context) -> dict:
    """How often the stronger reading "sigma^{1/m} is the top singular value of W_k, and the top singular
    vectors of consecutive layers are coupled" holds on the flattest minima, per family, with the worst
    instance (float64 bank)."""
    report = {}
    for f in families(ctx, False).role("flattest"):
        balance, angle = top_reading(f)
        entry = report.setdefault(f.name, {"instances": 0, "sigma^{1/m} not the top singular value": 0,
                                           "max sigma_max(W_k) / sigma^{1/m}": 1.0, "max coupling angle (rad)": 0.0})
        entry["instances"] += f.n
        entry["sigma^{1/m} not the top singular value"] += int(np.sum(balance > 1e-6 + f.tol))
        i = int(np.argmax(balance))
        if 1 + balance[i] > entry["max sigma_max(W_k) / sigma^{1/m}"]:
            entry["max sigma_max(W_k) / sigma^{1/m}"] = float(1 + balance[i])
            entry["example"] = {"family": f.label, "layer top singular values / sigma^{1/m}":
                                (np.asarray(fp.layer_top_singular_values([W[i:i + 1] for W in f.W]), dtype=float)[0]
                                 / float(f.sigma[i]) ** (1 / f.m)).tolist(),
                                "instance": f.instance(i)}
        if np.isfinite(angle).any():
            entry["max coupling angle (rad)"] = max(entry["max coupling angle (rad)"], float(np.nanmax(angle)))
    return report


@check("Theorem 3", method="float", printed=theorem3_conclusions, backend=True, mutants={
    "sigma^{1/m} in (S96)": lambda f, k: [S96_MUTANTS["sigma^{1/m}"](f, k)],
    "W_k^T instead of W_k in (S97)": lambda f, k: [S97_MUTANTS["W_k^T instead of W_k"](f, k)],
})
def theorem3_and_the_top_singular_value(ctx: Context, formula) -> Measurement:
    """Theorem 3 on every flattest minimum (as the catalog states it: r_k, q_k a singular pair of W_k with
    singular value sigma^{1/m}); details: the stronger reading that sigma^{1/m} is the TOP singular value of
    W_k (balanced layers, coupled top singular vectors), measured on the same minima, which it does not
    always hold on. The conclusions run on the run's array backend; the stronger reading (details) comes from
    NumPy SVDs on the host."""
    m = measure(ctx, formula, K1, FLATTEST)
    return with_details(m, **{"stronger reading: sigma^{1/m} the top singular value of every W_k":
                              top_reading_report(ctx)})

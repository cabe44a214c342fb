"""Section VI of the supplement: Lemma S1 (S67)-(S72), Lemma S2 (S73)-(S78) and Theorem 2 (S79)-(S91).

Every statement is a property of the flattest minima w in Omega_0 (Sigma_x = I), with (u, v) the top
singular pair of T (T v = sigma u, sigma = sigma_max(T)). It is encoded as printed, as a chain of
members and relations (``proofs.flat_claims.Chain``), and evaluated on certified instances
(``proofs.flat_instances``): the canonical solution, rotated and rebalanced flattest minima, two
extremal constructions, minima FOUND by the greedy search of (S105)-(S106) plus a BFGS refinement,
and flattest minima found by maximising an intermediate gain. Membership in Omega_0 is the ground
truth, certified by lambda_max(H_w) = 2m sigma^{2(1-1/m)} from a dense eigensolver (cross-checked
against a finite-difference Hessian of the loss); u, v and sigma come from an SVD of T. The domain:
square and rectangular widths, m = 1..8, full and deficient rank, a repeated sigma_max (with a new
random consistent pair (u, v) per instance, so a pass covers every choice tried).

Each check also evaluates the statement where it is NOT claimed, as evidence in its details: on
random minima (S104) a flat-minimum property fails (the check discriminates); Sigma_x = c I and SPD;
unpaired top singular vectors; T = 0. Inequalities report their slack; (S88)-(S91) also the best
constant found. Steps that hold at every global minimum (S70, S77) or for any weights (S68, S76's
reindexing, S86, S87) are checked on that wider domain.

Readings: products are descending, prod_{i=a}^b W_i = W_b ... W_a (identity when empty), as in
(S75); prod_k Psi_k in (S70) is Psi_m ... Psi_1 (the order that unrolls to (B* T^T)^{m-1} B*).
(S90) as printed compares sigma_max with the vector W_m ... W_{k+1} u (defined only when d_k = d_y):
it cannot be evaluated; the corrected reading is ||(prod_{i>k} W_i)^T u||.
"""

from __future__ import annotations

from dataclasses import replace
from functools import reduce
from typing import Any, Callable, Iterable

import mpmath
import numpy as np
import sympy as sp

from verify.checks import check
from verify.context import Context
from verify.model import Measurement, Variant

from . import flat_properties as fp
from .flat_claims import (ANY, FLATTEST, K0, K1, MINIMUM, ONCE, Chain, T, alignment, chain, dot, families, full,
                          measure, mv, norm, ones, prefix, prod_over, pw, register, register_named, register_search,
                          root, spectral, sqrt_m, stack, suffix, u_gain, unit, v_gain, with_details)
from .flat_instances import Family, extreme_search_families
from .flat_symbolic import K_SYM, SIGMA, family_check, over_depths, symbolic_residual
from .linear_network import kron

# --- vocabulary of the printed formulas of this section ----------------------------------------------


def b_star(f: Family) -> Any:
    """B* = u v^T."""
    return f.u[..., :, None] * f.v[..., None, :]


def psi(f: Family, k: int) -> Any:
    """Psi_k = (prod_{i=k+1}^m W_i)^T B* (prod_{j=1}^{k-1} W_j)^T."""
    return T(suffix(f, k)) @ b_star(f) @ T(prefix(f, k - 1))


def path_product(f: Family, k: int) -> Any:
    """||u^T prod_{i>k} W_i|| ||prod_{j<k} W_j v||: the left side of (S67)."""
    return u_gain(f, k) * v_gain(f, k - 1)


def s74_lhs(f: Family) -> Any:
    return prod_over(f, (path_product(f, j) for j in K1(f.m)))


def smax_before(f: Family, k: int) -> Any:
    """sigma_max(prod_{i<k} W_i)."""
    return spectral(prefix(f, k - 1))


def smax_after(f: Family, k: int) -> Any:
    """sigma_max(prod_{i>k} W_i)."""
    return spectral(suffix(f, k))


def s88_bound(f: Family) -> Any:
    """sqrt(m) sigma^{1-1/m}."""
    return sqrt_m(f) * pw(f, f.sigma, f.m - 1, f.m)


def top_eigenvalue(M: Any) -> Any:
    """lambda_max of symmetric matrices (..., n, n): float64 batched, or mpmath per matrix."""
    if fp.is_exact(M):
        return fp.each_matrix(M, lambda A: max(mpmath.eigsy(A, eigvals_only=True)))
    return fp.xp_of(M).linalg.eigvalsh(M)[..., -1]


def frobenius_max(f: Family, terms: Iterable[tuple[Any, Any]]) -> Any:
    """max over ||B||_F = 1 of sum ||A^T B C^T||_F^2 over (A, C) in ``terms``: the top eigenvalue of
    sum (C^T C) (x) (A A^T), the matrix of that quadratic form in vec(B) (P1)."""
    return top_eigenvalue(sum(kron(T(C) @ C, A @ T(A)) for A, C in terms))


def map_norm(A: Any, C: Any) -> Any:
    """max over ||B||_F = 1 of ||A^T B C^T||_F from the definition: the matrix of the linear map
    B -> A^T B C^T, column by column on the unit matrices E_ij, and its largest singular value."""
    xp = fp.xp_of(A, C)
    d_y, d_x = A.shape[-2], C.shape[-1]
    e_y, e_x = xp.eye(d_y, dtype=xp.float64), xp.eye(d_x, dtype=xp.float64)
    columns = []
    for j in range(d_x):
        for i in range(d_y):
            E = e_y[:, i:i + 1] * e_x[j:j + 1, :]  # the unit matrix E_ij
            columns.append(flat(T(A) @ E @ T(C)))
    return spectral(xp.stack(columns, axis=-1))


def flat(M: Any) -> Any:
    """The entries of each matrix in one vector (row-major; used only where the order does not matter)."""
    return fp.xp_of(M).reshape(M, (*M.shape[:-2], -1))


# --- Lemma S1 -----------------------------------------------------------------------------------------

def s67_printed(f: Family, k: int) -> Chain:
    """(S67) = (S72): ||u^T prod_{i=k+1}^m W_i|| ||prod_{j=1}^{k-1} W_j v|| = sigma^{1-1/m}."""
    return chain(path_product(f, k), pw(f, f.sigma, f.m - 1, f.m))


S67_MUTANTS = {
    "exponent 1 - k/m": lambda f, k: chain(path_product(f, k), pw(f, f.sigma, f.m - k, f.m)),
    "exponent 1": lambda f, k: chain(path_product(f, k), f.sigma),
    "prefix up to k": lambda f, k: chain(u_gain(f, k) * v_gain(f, k), pw(f, f.sigma, f.m - 1, f.m)),
}


def s68_printed(f: Family, k: int) -> Chain:
    """(S68): the same product = ||(prod_{i>k} W_i)^T B* (prod_{j<k} W_j)^T||_2 with B* = u v^T."""
    return chain(path_product(f, k), spectral(psi(f, k)))


def s69_printed(f: Family, k: int) -> Chain:
    """(S69): lambda_max(H_w) = 2 sum_k ||Psi_k||_2^2 = 2m sigma^{2(1-1/m)}."""
    middle = 2 * sum(spectral(psi(f, j)) ** 2 for j in K1(f.m))
    return chain(f.lam, middle, 2 * f.m * pw(f, f.sigma, 2 * (f.m - 1), f.m))


def psi_product(f: Family, order: Iterable[int]) -> Any:
    """Psi_{order[0]} Psi_{order[1]} ... (matrix product in the given order)."""
    first, *rest = order
    return reduce(lambda acc, j: acc @ psi(f, j), rest, psi(f, first))


def s70_members(f: Family, order: Iterable[int]) -> tuple:
    m = f.m
    norms2 = [spectral(psi(f, j)) ** 2 for j in K1(m)]
    return (2 * sum(norms2),
            2 * m * fp.power(prod_over(f, norms2), fp.fraction(1, m, f.sigma)),
            2 * m * fp.power(spectral(psi_product(f, order)) ** 2, fp.fraction(1, m, f.sigma)),
            2 * m * pw(f, f.sigma, 2 * (m - 1), m))


def s70_printed(f: Family, k: int) -> Chain:
    """(S70): 2 sum ||Psi_k||^2 >= 2m [prod ||Psi_k||^2]^{1/m} >= 2m [||Psi_m ... Psi_1||^2]^{1/m}
    = 2m sigma^{2(1-1/m)}."""
    return chain(*s70_members(f, range(f.m, 0, -1)), rel=(">=", ">=", "="))


def s71_printed(f: Family, k: int) -> Chain:
    """(S71): ||(prod_{i>k} W_i)^T B* (prod_{j<k} W_j)^T||_2 = sigma^{1-1/m}."""
    return chain(spectral(psi(f, k)), pw(f, f.sigma, f.m - 1, f.m))


# --- Lemma S2 -----------------------------------------------------------------------------------------

def s73_printed(f: Family, k: int) -> Chain:
    """(S73) = (S78): (prod_{i>k} W_i)^T u / ||.|| = prod_{j<=k} W_j v / ||.||."""
    return alignment(f, k)


S73_MUTANTS = {
    "u -> -u (not a singular pair)": lambda f, k: chain(unit(mv(T(suffix(f, k)), -f.u)), unit(mv(prefix(f, k), f.v))),
    "left side not normalised": lambda f, k: chain(mv(T(suffix(f, k)), f.u), unit(mv(prefix(f, k), f.v))),
    "prefix up to k - 1": lambda f, k: chain(unit(mv(T(suffix(f, k)), f.u)), unit(mv(prefix(f, max(k - 1, 0)), f.v))),
}


def s74_printed(f: Family, k: int) -> Chain:
    """(S74): prod_{k=1}^m ||(prod_{i>k} W_i)^T u|| ||v^T (prod_{j<k} W_j)^T|| = sigma^{m-1}."""
    return chain(s74_lhs(f), pw(f, f.sigma, f.m - 1, 1))


def empty_product_norms(f: Family, empty: Callable[[int], Any]) -> Chain:
    """(S75) with a given value of the empty product: [||v^T (prod_{j=1}^0)^T||, ||(prod_{i=m+1}^m)^T u||]
    = [||v||, ||u||] = [1, 1]."""
    lhs = stack([norm(mv(T(empty(f.v.shape[-1])), f.v)), norm(mv(T(empty(f.u.shape[-1])), f.u))])
    return chain(lhs, stack([norm(f.v), norm(f.u)]), stack([ones(f), ones(f)]))


def s75_printed(f: Family, k: int) -> Chain:
    """(S75), with the empty products of the supplement's convention (prefix(f, 0), suffix(f, m))."""
    return chain(stack([norm(mv(T(prefix(f, 0)), f.v)), norm(mv(suffix(f, f.m), f.u))]),
                 stack([norm(f.v), norm(f.u)]), stack([ones(f), ones(f)]))


def s76_lhs(f: Family) -> Any:
    return prod_over(f, (v_gain(f, j) * u_gain(f, j) for j in range(1, f.m)))


def s76_printed(f: Family, k: int) -> Chain:
    """(S76): prod_{k=1}^{m-1} ||v^T (prod_{j<=k} W_j)^T|| ||(prod_{i>k} W_i)^T u|| = sigma^{m-1}."""
    return chain(s76_lhs(f), pw(f, f.sigma, f.m - 1, 1))


def s76_reindexing(f: Family, k: int) -> Chain:
    """The step (S74) -> (S76) with (S75): the two products of norms are equal for any weights."""
    return chain(s76_lhs(f), s74_lhs(f))


def s77_printed(f: Family, k: int) -> Chain:
    """(S77): prod ||P_k v|| ||A_k^T u|| >= prod v^T P_k^T A_k^T u = prod v^T T^T u = sigma^{m-1}
    (k = 1..m-1, P_k = prod_{j<=k} W_j, A_k = prod_{i>k} W_i)."""
    ks = range(1, f.m)
    inner = prod_over(f, (dot(mv(prefix(f, j), f.v), mv(T(suffix(f, j)), f.u)) for j in ks))
    through_T = prod_over(f, (dot(mv(f.T, f.v), f.u) for _ in ks))
    return chain(s76_lhs(f), inner, through_T, pw(f, f.sigma, f.m - 1, 1), rel=(">=", "=", "="))


# --- Theorem 2 ----------------------------------------------------------------------------------------

def s79_printed(f: Family, k: int) -> Chain:
    """(S79): prod_{j<=k} W_j v / ||.|| = (prod_{i>k} W_i)^T u / ||.||."""
    return chain(unit(mv(prefix(f, k), f.v)), unit(mv(T(suffix(f, k)), f.u)))


def s80_printed(f: Family, k: int) -> Chain:
    """(S80): (prod_{j<=k} W_j)^T prod_{j<=k} W_j v / ||P_k v|| = T^T u / ||(prod_{i>k} W_i)^T u||."""
    P = prefix(f, k)
    return chain(mv(T(P) @ P, f.v) / v_gain(f, k)[..., None], mv(T(f.T), f.u) / u_gain(f, k)[..., None])


def s81_printed(f: Family, k: int) -> Chain:
    """(S81): [(prod_{j<=k} W_j)^T prod_{j<=k} W_j] v = ||P_k v|| / ||A_k^T u|| sigma v."""
    P = prefix(f, k)
    return chain(mv(T(P) @ P, f.v), (v_gain(f, k) / u_gain(f, k) * f.sigma)[..., None] * f.v)


def s82_printed(f: Family, k: int) -> Chain:
    """(S82): ||prod_{j<=k} W_j v|| ||(prod_{i>k} W_i)^T u|| = sigma."""
    return chain(v_gain(f, k) * u_gain(f, k), f.sigma)


def s83_printed(f: Family, k: int) -> Chain:
    """(S83): ||prod_{j<=k} W_j v|| = sigma^{1/m} ||prod_{j<k} W_j v||."""
    return chain(v_gain(f, k), pw(f, f.sigma, 1, f.m) * v_gain(f, k - 1))


def s84_printed(f: Family, k: int) -> Chain:
    """(S84): ||prod_{j<=k} W_j v|| = sigma^{k/m}."""
    return chain(v_gain(f, k), pw(f, f.sigma, k, f.m))


def layer_terms(f: Family) -> list[tuple[Any, Any]]:
    """(prod_{i>l} W_i, prod_{j<l} W_j) for l = 1..m: the terms of (21)/(S56) with Sigma_x = I."""
    return [(suffix(f, l), prefix(f, l - 1)) for l in K1(f.m)]


def s85_printed(f: Family, k: int) -> Chain:
    """(S85): max_{||B||_F=1} sum_l ||(prod_{i>l} W_i)^T B (prod_{j<l} W_j)^T||_F^2 = m sigma^{2(1-1/m)}."""
    return chain(frobenius_max(f, layer_terms(f)), f.m * pw(f, f.sigma, 2 * (f.m - 1), f.m))


def s86_printed(f: Family, k: int) -> Chain:
    """(S86): max of the sum over l >= max of the k-th term alone."""
    return chain(frobenius_max(f, layer_terms(f)), frobenius_max(f, [layer_terms(f)[k - 1]]), rel=">=")


def s87_printed(f: Family, k: int) -> Chain:
    """(S87): max_{||B||_F=1} ||A^T B C^T||_F = sigma_max(C (x) A^T) = sigma_max(C) sigma_max(A),
    A = prod_{i>k} W_i, C = prod_{j<k} W_j (the first member from the map's own matrix)."""
    A, C = suffix(f, k), prefix(f, k - 1)
    return chain(map_norm(A, C), spectral(kron(C, T(A))), spectral(C) * spectral(A))


def s88_printed(f: Family, k: int) -> Chain:
    """(S88): sigma_max(prod_{i<k} W_i) sigma_max(prod_{i>k} W_i) <= sqrt(m) sigma^{1-1/m}."""
    return chain(smax_before(f, k) * smax_after(f, k), s88_bound(f), rel="<=")


def s89_printed(f: Family, k: int) -> Chain:
    """(S89): sigma_max(prod_{i<k} W_i) <= sqrt(m) sigma^{1-1/m} / sigma_max(prod_{i>k} W_i)."""
    return chain(smax_before(f, k), s88_bound(f) / smax_after(f, k), rel="<=")


def s90_printed(f: Family, k: int) -> Chain:
    """(S90) as printed: sigma_max(prod_{i>k} W_i) >= (prod_{i=k+1}^m W_i u) = sigma^{1-k/m}: the middle
    member W_m ... W_{k+1} u is a vector (and defined only when d_k = d_y)."""
    return chain(spectral(suffix(f, k)), mv(suffix(f, k), f.u), pw(f, f.sigma, f.m - k, f.m), rel=(">=", "="))


def s90_corrected(f: Family, k: int) -> Chain:
    """(S90) corrected: sigma_max(prod_{i>k} W_i) >= ||(prod_{i>k} W_i)^T u|| = sigma^{1-k/m}."""
    return chain(spectral(suffix(f, k)), u_gain(f, k), pw(f, f.sigma, f.m - k, f.m), rel=(">=", "="))


def s91_printed(f: Family, k: int) -> Chain:
    """(S91): sigma_max(prod_{i<k} W_i) <= sqrt(m) sigma^{1-1/m} / sigma_max(prod_{i>k} W_i)
    <= sqrt(m) sigma^{(k-1)/m}."""
    return chain(spectral(prefix(f, k - 1)), sqrt_m(f) * pw(f, f.sigma, f.m - 1, f.m) / spectral(suffix(f, k)),
                 sqrt_m(f) * pw(f, f.sigma, k - 1, f.m), rel=("<=", "<="))


# --- registration: one float64 and one mpmath check per printed statement ---------------------------------

register("S67", s67_printed, S67_MUTANTS, K1,
         what="Lemma S1 (S67): the product of the u-gain of prod_{i>k} W_i and the v-gain of prod_{j<k} W_j "
              "against sigma^{1-1/m}, k = 1..m.")
register("S68", s68_printed, {
    "Frobenius -> squared operator norm": lambda f, k: chain(path_product(f, k), spectral(psi(f, k)) ** 2),
    "B* = v u^T": lambda f, k: chain(path_product(f, k),
                                     spectral(T(suffix(f, k)) @ T(b_star(f)) @ T(prefix(f, k - 1)))),
    "prefix up to k": lambda f, k: chain(u_gain(f, k) * v_gain(f, k), spectral(psi(f, k))),
}, K1, ANY, what="(S68): the product of gains against the operator norm of the rank-one Psi_k, for any weights.")
register("S69", s69_printed, {
    "without the factor 2": lambda f, k: chain(f.lam, sum(spectral(psi(f, j)) ** 2 for j in K1(f.m)),
                                               f.m * pw(f, f.sigma, 2 * (f.m - 1), f.m)),
    "exponent 2(1 - 1/m) -> 2": lambda f, k: chain(f.lam, 2 * sum(spectral(psi(f, j)) ** 2 for j in K1(f.m)),
                                                  2 * f.m * pw(f, f.sigma, 2, 1)),
    "norms not squared": lambda f, k: chain(f.lam, 2 * sum(spectral(psi(f, j)) for j in K1(f.m)),
                                            2 * f.m * pw(f, f.sigma, 2 * (f.m - 1), f.m)),
}, ONCE, what="(S69): lambda_max(H_w) (eigensolver), 2 sum ||Psi_k||_2^2 and 2m sigma^{2(1-1/m)}.")
register("S70", s70_printed, {
    "ascending product Psi_1 ... Psi_m": lambda f, k: chain(*s70_members(f, range(1, f.m + 1)), rel=(">=", ">=", "=")),
    "2 instead of 2m in the AM-GM member": lambda f, k: chain(*(x / f.m if i == 1 else x for i, x in
                                                              enumerate(s70_members(f, range(f.m, 0, -1)))),
                                                            rel=(">=", ">=", "=")),
    "first inequality reversed": lambda f, k: chain(*s70_members(f, range(f.m, 0, -1)), rel=("<=", ">=", "=")),
}, ONCE, MINIMUM, what="(S70): the AM-GM and submultiplicativity chain, at every global minimum; slack of "
                       "each inequality (0 at flattest minima).")
register("S71", s71_printed, {
    "exponent 1 - k/m": lambda f, k: chain(spectral(psi(f, k)), pw(f, f.sigma, f.m - k, f.m)),
    "squared norm": lambda f, k: chain(spectral(psi(f, k)) ** 2, pw(f, f.sigma, f.m - 1, f.m)),
}, K1, what="(S71): every ||Psi_k||_2 against sigma^{1-1/m}.")
register("S72", s67_printed, S67_MUTANTS, K1, what="(S72), the conclusion of Lemma S1 (as S67).")
register("S73", s73_printed, S73_MUTANTS, K0,
         what="Lemma S2 (S73): the unit vectors (prod_{i>k} W_i)^T u and prod_{j<=k} W_j v, k = 0..m.")
register("S74", s74_printed, {
    "sigma^m": lambda f, k: chain(s74_lhs(f), pw(f, f.sigma, f.m, 1)),
    "prefix up to k": lambda f, k: chain(prod_over(f, (u_gain(f, j) * v_gain(f, j) for j in K1(f.m))),
                                         pw(f, f.sigma, f.m - 1, 1)),
}, ONCE, what="(S74): the product over k of the Lemma S1 identities against sigma^{m-1}.")
register("S75", s75_printed, {
    "empty product = zero matrix": lambda f, k: empty_product_norms(f, lambda d: full(f, (d, d), 0)),
    "empty product = all-ones matrix": lambda f, k: empty_product_norms(f, lambda d: full(f, (d, d), 1)),
}, ONCE, ANY, what="(S75): the norms through the empty products against ||v|| = ||u|| = 1.")
register("S76", s76_printed, {
    "sigma^m": lambda f, k: chain(s76_lhs(f), pw(f, f.sigma, f.m, 1)),
    "k up to m": lambda f, k: chain(prod_over(f, (v_gain(f, j) * u_gain(f, j) for j in K1(f.m))),
                                    pw(f, f.sigma, f.m - 1, 1)),
}, ONCE, what="(S76): the reindexed product of norms against sigma^{m-1}.")
register("S76", s76_reindexing, {
    "k up to m": lambda f, k: chain(prod_over(f, (v_gain(f, j) * u_gain(f, j) for j in K1(f.m))),
                                    s74_lhs(f)),
    "prefix up to k - 1": lambda f, k: chain(prod_over(f, (v_gain(f, j - 1) * u_gain(f, j) for j in range(1, f.m))),
                                             s74_lhs(f)),
}, ONCE, ANY, what="The step (S74) -> (S76): the reindexed product equals the product of (S74), for any weights.",
         methods=("float",), name="s76_reindexing")
register("S77", s77_printed, {
    "u -> -u (not a singular pair)": lambda f, k: s77_printed(replace(f, u=-f.u), k),
    "first inequality reversed": lambda f, k: chain(*s77_printed(f, k).members, rel=("<=", "=", "=")),
    "sigma^m": lambda f, k: chain(*s77_printed(f, k).members[:3], pw(f, f.sigma, f.m, 1), rel=(">=", "=", "=")),
}, ONCE, MINIMUM, what="(S77): the Cauchy-Schwarz chain, at every global minimum; slack (0 at flattest minima).")
register("S78", s73_printed, S73_MUTANTS, K0, what="(S78), the conclusion of Lemma S2 (as S73).")
register("S79", s79_printed, {
    "u -> -u (not a singular pair)": lambda f, k: chain(unit(mv(prefix(f, k), f.v)), unit(mv(T(suffix(f, k)), -f.u))),
    "right side not normalised": lambda f, k: chain(unit(mv(prefix(f, k), f.v)), mv(T(suffix(f, k)), f.u)),
}, K0, what="(S79): Lemma S2 restated, sides swapped.")
register("S80", s80_printed, {
    "T u instead of T^T u": lambda f, k: chain(mv(T(prefix(f, k)) @ prefix(f, k), f.v) / v_gain(f, k)[..., None],
                                               mv(f.T, f.u) / u_gain(f, k)[..., None]),
    "missing normalisation on the left": lambda f, k: chain(mv(T(prefix(f, k)) @ prefix(f, k), f.v),
                                                            mv(T(f.T), f.u) / u_gain(f, k)[..., None]),
}, K0, what="(S80): both sides of (S79) multiplied by (prod_{j<=k} W_j)^T, as vectors.")
register("S81", s81_printed, {
    "ratio inverted": lambda f, k: chain(mv(T(prefix(f, k)) @ prefix(f, k), f.v),
                                         (u_gain(f, k) / v_gain(f, k) * f.sigma)[..., None] * f.v),
    "without sigma": lambda f, k: chain(mv(T(prefix(f, k)) @ prefix(f, k), f.v),
                                        (v_gain(f, k) / u_gain(f, k))[..., None] * f.v),
}, K0, what="(S81): v as an eigenvector of the prefix Gram matrix with the printed eigenvalue, as vectors.")
register("S82", s82_printed, {
    "sigma^{1-1/m}": lambda f, k: chain(v_gain(f, k) * u_gain(f, k), pw(f, f.sigma, f.m - 1, f.m)),
    "prefix up to k - 1": lambda f, k: chain(v_gain(f, max(k - 1, 0)) * u_gain(f, k), f.sigma),
}, K0, what="(S82): the prefix gain times the suffix gain against sigma, k = 0..m.")
S83_MUTANTS = {
    "sigma^{2/m}": lambda f, k: chain(v_gain(f, k), pw(f, f.sigma, 2, f.m) * v_gain(f, k - 1)),
    "sigma^{(m-1)/m}": lambda f, k: chain(v_gain(f, k), pw(f, f.sigma, f.m - 1, f.m) * v_gain(f, k - 1)),
}
register("S83", s83_printed, S83_MUTANTS, K1, what="(S83): the recursion of the prefix gains, k = 1..m.")
S84_MUTANTS = {
    "sigma^{(k-1)/m}": lambda f, k: chain(v_gain(f, k), pw(f, f.sigma, max(k - 1, 0), f.m)),
    "sigma^{k/(m-1)}": lambda f, k: chain(v_gain(f, k), pw(f, f.sigma, k, max(f.m - 1, 1))),
    "u-side exponent k/m": lambda f, k: chain(u_gain(f, k), pw(f, f.sigma, k, f.m)),
}
register("S84", s84_printed, S84_MUTANTS, K0, what="(S84): the prefix gain ||prod_{j<=k} W_j v|| against sigma^{k/m}.")
register("S85", s85_printed, {
    "2m instead of m": lambda f, k: chain(frobenius_max(f, layer_terms(f)),
                                          2 * f.m * pw(f, f.sigma, 2 * (f.m - 1), f.m)),
    "exponent 2(1 - 1/m) -> 2": lambda f, k: chain(frobenius_max(f, layer_terms(f)), f.m * pw(f, f.sigma, 2, 1)),
}, ONCE, what="(S85): the maximum of the quadratic form (top eigenvalue of its matrix) against m sigma^{2(1-1/m)}.")
register("S86", s86_printed, {
    "reversed": lambda f, k: chain(*s86_printed(f, k).members, rel="<="),
    "sum of the maxima >= m times a term": lambda f, k: chain(
        frobenius_max(f, layer_terms(f)), f.m * frobenius_max(f, [layer_terms(f)[k - 1]]), rel=">="),
}, K1, ANY, what="(S86): the maximum of the sum against the maximum of one term, for any weights; slack.")
register("S87", s87_printed, {
    "sum of the sigma_max": lambda f, k: chain(*s87_printed(f, k).members[:2],
                                               spectral(prefix(f, k - 1)) + spectral(suffix(f, k))),
    "Frobenius norms": lambda f, k: chain(
        *s87_printed(f, k).members[:2], norm(flat(prefix(f, k - 1))) * norm(flat(suffix(f, k)))),
    "squared map norm": lambda f, k: chain(s87_printed(f, k).members[0] ** 2, *s87_printed(f, k).members[1:]),
}, K1, ANY, what="(S87): the map norm of B -> A^T B C^T (its own matrix), sigma_max of C (x) A^T and "
                 "sigma_max(C) sigma_max(A), for any weights.")


def sharpness_families(ctx: Context, exact: bool) -> list[Family]:
    """Flattest minima found by maximising the intermediate gains (float path only)."""
    if exact:
        return []
    return list(extreme_search_families(ctx.seed, int(np.clip(ctx.profile.instances // 500, 1, 6))))


def best_constants(ctx: Context) -> dict:
    """Per depth m, over every flattest minimum of the bank and of the gain search: the largest
    sigma_max(prod_{i<k} W_i) / sigma^{(k-1)/m} (the constant printed as sqrt(m) in S91) and the largest
    sigma_max(prod_{i<k} W_i) sigma_max(prod_{i>k} W_i) / sigma^{1-1/m} (printed sqrt(m) in S88), with
    the family and k where each occurs, next to sqrt(m) and the sharp S91 constant sqrt(m-1)
    (``flat_properties.sqrt_m_minus_1_bound``); and how many instances exceed sqrt(m-1)."""
    fams = families(ctx, False).role("flattest") + sharpness_families(ctx, False)
    per_m: dict[int, dict] = {}
    over_sharp = 0
    for f in fams:
        pre, suf = fp.intermediate_gain_ratios(f.W, f.sigma)
        over_sharp += int(np.sum(pre > fp.sqrt_m_minus_1_bound(f.m) * (1 + f.tol[:, None])))
        entry = per_m.setdefault(f.m, {"sqrt(m)": float(np.sqrt(f.m)), "sqrt(m-1)": float(np.sqrt(f.m - 1)),
                                       "S91 best": 0.0, "S88 best": 0.0})
        for key, ratio in (("S91", pre), ("S88", pre * suf)):
            i, k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
            if ratio[i, k] > entry[f"{key} best"]:
                entry[f"{key} best"] = float(ratio[i, k])
                entry[f"{key} attained by"] = f"{f.label}, k = {int(k) + 1}"
    return {"best constants per depth m": {str(m): per_m[m] for m in sorted(per_m)},
            "instances above the sharp S91 constant sqrt(m-1) (k >= 2)": over_sharp}


register("S88", s88_printed, {
    "sqrt(m - 1) instead of sqrt(m)": lambda f, k: chain(smax_before(f, k) * smax_after(f, k),
                                                         root(f, f.m - 1) * pw(f, f.sigma, f.m - 1, f.m), rel="<="),
    "without sqrt(m)": lambda f, k: chain(smax_before(f, k) * smax_after(f, k), pw(f, f.sigma, f.m - 1, f.m), rel="<="),
}, K1, what="(S88): sigma_max(prod_{i<k} W_i) sigma_max(prod_{i>k} W_i) against sqrt(m) sigma^{1-1/m}; slack "
            "(0 on the extremal construction), best constant per m.", extra=sharpness_families, annotate=best_constants)
register("S89", s89_printed, {
    "without sqrt(m)": lambda f, k: chain(smax_before(f, k), pw(f, f.sigma, f.m - 1, f.m) / smax_after(f, k), rel="<="),
    "times instead of divided": lambda f, k: chain(smax_before(f, k), s88_bound(f) * smax_after(f, k), rel="<="),
}, K1, what="(S89): sigma_max(prod_{i<k} W_i) against sqrt(m) sigma^{1-1/m} / sigma_max(prod_{i>k} W_i).",
         extra=sharpness_families)
register("S90", s90_printed, {
    "exponent k/m": lambda f, k: chain(spectral(suffix(f, k)), u_gain(f, k), pw(f, f.sigma, k, f.m), rel=(">=", "=")),
    "<= instead of >=": lambda f, k: chain(smax_after(f, k), u_gain(f, k), pw(f, f.sigma, f.m - k, f.m),
                                           rel=("<=", "=")),
    "norm without the transpose": lambda f, k: chain(spectral(suffix(f, k)), norm(mv(suffix(f, k), f.u)),
                                                     pw(f, f.sigma, f.m - k, f.m), rel=(">=", "=")),
}, K1, corrected=Variant(s90_corrected, reason=(
    "as printed the middle member (prod_{i=k+1}^m W_i u) is a vector, and the product W_m..W_{k+1} u is "
    "defined only when d_k = d_y: a number cannot be compared with it. The proof needs the gain of u "
    "through the suffix, ||(prod_{i>k} W_i)^T u||, which Theorem 2 gives as sigma^{(m-k)/m}"),
    text=r"\sigma_{\max}\left(\prod_{i=k+1}^m W_i\right) \geq \left\|\left(\prod_{i=k+1}^m W_i\right)^T u\right\| "
         r"= (\sigma_{\max}(T))^{1-\frac{k}{m}}"),
    what="(S90): sigma_max of the suffix, the printed middle member, and sigma^{1-k/m}; slack of the inequality.",
    extra=sharpness_families)
register("S91", s91_printed, {
    "without sqrt(m) at the end": lambda f, k: chain(*s91_printed(f, k).members[:2], pw(f, f.sigma, k - 1, f.m),
                                                     rel=("<=", "<=")),
    "exponent k/m at the end": lambda f, k: chain(*s91_printed(f, k).members[:2], sqrt_m(f) * pw(f, f.sigma, k, f.m),
                                                  rel=("<=", "<=")),
}, K1, what="(S91): sigma_max(prod_{i<k} W_i), the middle bound and sqrt(m) sigma^{(k-1)/m}; slacks of both "
            "inequalities.", extra=sharpness_families)


# --- hypothesis searches for violations and for tightness -----------------------------------------------

register_search("S70", s70_printed, {"first inequality reversed": lambda f, k: chain(*s70_members(f, range(f.m, 0, -1)),
                                                                                    rel=("<=", ">=", "="))},
                ONCE, MINIMUM, "the (S70) chain")
register_search("S77", s77_printed, {"first inequality reversed": lambda f, k: chain(*s77_printed(f, k).members,
                                                                                    rel=("<=", "=", "="))},
                ONCE, MINIMUM, "the (S77) chain")
register_search("S86", s86_printed, {"reversed": lambda f, k: chain(*s86_printed(f, k).members, rel="<=")},
                K1, ANY, "(S86)")
register_search("S91", s91_printed, {"without sqrt(m) at the end": lambda f, k: chain(
    *s91_printed(f, k).members[:2], pw(f, f.sigma, k - 1, f.m), rel=("<=", "<="))}, K1, FLATTEST, "(S91)")


# --- sharpness of the bounds (S88)-(S91) ---------------------------------------------------------------

@check("S91", method="float", printed=s91_printed, backend=True, mutants={
    "without sqrt(m) at the end": lambda f, k: chain(*s91_printed(f, k).members[:2], pw(f, f.sigma, k - 1, f.m),
                                                     rel=("<=", "<=")),
    "constant 0.99 sqrt(m-1) (below the attained sqrt(m-1))":
        lambda f, k: chain(smax_before(f, k), 0.99 * root(f, max(f.m - 1, 1)) * pw(f, f.sigma, k - 1, f.m), rel="<="),
})
def s91_sharpness(ctx: Context, formula) -> Measurement:
    """The S91 chain on every flattest minimum, including those found by maximising the intermediate gain
    with an optimiser on the manifold of flattest minima; details: the best constant found against the
    printed sqrt(m) and the sharp constant sqrt(m-1) (attained by the extremal construction). The chain runs on
    the run's array backend; the best constants (details) come from NumPy SVDs on the host."""
    m = measure(ctx, formula, K1, FLATTEST, extra=sharpness_families(ctx, False))
    return with_details(m, **best_constants(ctx))


# --- symbolic checks: (S83), (S84) as identities in the singular values ----------------------------------

def s83_sym(sigma, m, prev_gain):
    """(S83) right-hand side: sigma^{1/m} ||prod_{j<k} W_j v||."""
    return sigma ** (sp.Integer(1) / m) * prev_gain


def s84_sym(sigma, m, k):
    """(S84) right-hand side: sigma^{k/m}."""
    return sigma ** (sp.sympify(k) / m)


@check("S83", method="sympy", printed=s83_sym, mutants={
    "sigma^{2/m}": lambda s, m, g: s ** (sp.Integer(2) / m) * g,
    "sigma^{(m-1)/m}": lambda s, m, g: s ** ((m - sp.Integer(1)) / m) * g,
})
def s83_follows_from_s82_and_s72(ctx: Context, formula) -> Measurement:
    """From the premises (S82) g_k h_k = sigma and (S72) h_k g_{k-1} = sigma^{1-1/m} (g: prefix gains, h:
    suffix gains), sympy eliminates h_k and compares g_k with the printed sigma^{1/m} g_{k-1}, for
    m = 1..max_depth and symbolic m."""
    g_prev, h = sp.symbols("g_prev h", positive=True)

    def residual(m):
        h_k = sp.solve(sp.Eq(h * g_prev, SIGMA ** (1 - sp.Integer(1) / m)), h)[0]
        return SIGMA / h_k - formula(SIGMA, m, g_prev)

    return over_depths(ctx, residual)


@check("S84", method="sympy", printed=s84_sym, mutants={
    "sigma^{(k-1)/m}": lambda s, m, k: s ** ((sp.sympify(k) - 1) / m),
    "sigma^{k/(m+1)}": lambda s, m, k: s ** (sp.sympify(k) / (m + 1)),
})
def s84_unrolls_the_recursion(ctx: Context, formula) -> Measurement:
    """sympy's rsolve of g(k) = sigma^{1/m} g(k-1), g(0) = 1 (the recursion S83 with the initial
    condition of the text) against the printed sigma^{k/m}, for m = 1..max_depth and symbolic m."""
    g = sp.Function("g")

    def residual(m):
        solution = sp.rsolve(g(K_SYM) - SIGMA ** (sp.Integer(1) / m) * g(K_SYM - 1), g(K_SYM), {g(0): 1})
        return solution - formula(SIGMA, m, K_SYM)

    return over_depths(ctx, residual)


def s83_on_family(formula):
    return lambda fam, m, k: symbolic_residual(fam["pre_norm"][k] - formula(SIGMA, m, fam["pre_norm"][k - 1]))


@check("S83", method="sympy", printed=s83_sym, mutants={
    "sigma^{2/m}": lambda s, m, g: s ** (sp.Integer(2) / m) * g,
    "sigma^{1/(m+1)}": lambda s, m, g: s ** (sp.Integer(1) / (m + 1)) * g,
})
def s83_on_symbolic_flattest_family(ctx: Context, formula) -> Measurement:
    """On the 2x2 flattest minima W_k = O_k^T diag(sigma^{1/m}, t_k) O_{k-1} with symbolic rotations, sigma and
    t_k (exact rational parametrisation of SO(2)), ||P_k v|| from the symbolic product against the printed
    sigma^{1/m} ||P_{k-1} v||, for every k and m = 1..max_depth."""
    return family_check(ctx, s83_on_family(formula))


@check("S84", method="sympy", printed=s84_sym, mutants={
    "sigma^{(k-1)/m}": lambda s, m, k: s ** ((sp.sympify(k) - 1) / m),
    "sigma^{k/(m+1)}": lambda s, m, k: s ** (sp.sympify(k) / (m + 1)),
})
def s84_on_symbolic_flattest_family(ctx: Context, formula) -> Measurement:
    """On the symbolic 2x2 flattest family, ||prod_{j<=k} W_j v|| computed from the symbolic product against the
    printed sigma^{k/m}, for every k and m = 1..max_depth, and the u-side ||(prod_{i>k} W_i)^T u|| against
    sigma^{(m-k)/m} (Theorem 2's left singular vector)."""
    def residual(fam, m, k):
        v_side = symbolic_residual(fam["pre_norm"][k] - formula(SIGMA, m, k))
        u_side = symbolic_residual(fam["suf_norm"][k] - formula(SIGMA, m, m - k))
        return v_side if v_side != 0 else u_side
    return family_check(ctx, residual)


# --- the named results: discrimination, converses, the assumption sigma_max(T) > 0 ---------------------

def lemma_s1(f: Family, k: int) -> Chain:
    return s67_printed(f, k)


def theorem2_conclusions(f: Family, k: int) -> list[Chain]:
    """Theorem 2 at k (1..m): v is a singular vector of prod_{j<=k} W_j (S81: an eigenvector of its Gram
    matrix), the gains ||P_k v|| = sigma^{k/m} and ||(prod_{i>k} W_i)^T u|| = sigma^{(m-k)/m}, and the
    intermediate gains sigma_max(prod_{i<k} W_i) <= sqrt(m) sigma^{(k-1)/m},
    sigma_max(prod_{i>k} W_i) <= sqrt(m) sigma^{(m-k)/m} (S91 and its other direction)."""
    P = prefix(f, k)
    return [chain(mv(T(P) @ P, f.v), (v_gain(f, k) ** 2)[..., None] * f.v),
            chain(v_gain(f, k), pw(f, f.sigma, k, f.m)),
            chain(u_gain(f, k), pw(f, f.sigma, f.m - k, f.m)),
            chain(spectral(prefix(f, k - 1)), sqrt_m(f) * pw(f, f.sigma, k - 1, f.m), rel="<="),
            chain(spectral(suffix(f, k)), sqrt_m(f) * pw(f, f.sigma, f.m - k, f.m), rel="<=")]


def cauchy_schwarz_only(f: Family, k: int) -> Chain:
    """A weaker statement true at EVERY global minimum: ||P_k v|| ||A_k^T u|| >= (P_k v).(A_k^T u) = sigma."""
    return chain(v_gain(f, k) * u_gain(f, k), dot(mv(prefix(f, k), f.v), mv(T(suffix(f, k)), f.u)), rel=">=")


register_named("Lemma S1", lemma_s1, K1,
               weaker=lambda f, k: chain(s74_lhs(f),
                                         pw(f, f.sigma, f.m - 1, 1), rel=">="),
               wrong=S67_MUTANTS["exponent 1 - k/m"], what="Lemma S1 (S67 for every k)")
register_named("Lemma S2", s73_printed, K0, weaker=cauchy_schwarz_only,
               wrong=S73_MUTANTS["left side not normalised"], what="Lemma S2 (S73 for every k)")
register_named("Theorem 2", theorem2_conclusions, K1, weaker=cauchy_schwarz_only,
               wrong=lambda f, k: [chain(v_gain(f, k), pw(f, f.sigma, k - 1, f.m))],
               what="Theorem 2 (v a singular vector of every prefix, both gains, both intermediate-gain bounds)")

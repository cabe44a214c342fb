"""Symbolic flattest minima: 2x2 layers with symbolic rotations, sigma_max(T) and free lower singular
values, for checking statements of Sections VI-VII as identities in the singular values (sympy).

``symbolic_flattest(m)`` builds W_k = O_k^T diag(sigma^{1/m}, t_k) O_{k-1} with O_k the rational
parametrisation of SO(2) (exactly orthogonal for every real parameter), so T = O_m^T diag(sigma,
prod t_k) O_0 has the top pair v = O_0^T e_1, u = O_m^T e_1 (when prod t_k <= sigma); with t_k <=
sigma^{1/m} these are the rotated and rebalanced flattest minima of ``proofs.minima`` (Theorem 4).
The statements checked on it do not need t_k <= sigma^{1/m}: they are identities on the whole family.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import sympy as sp

from verify.context import Context
from verify.model import Measurement

SIGMA = sp.Symbol("sigma", positive=True)
M_SYM = sp.Symbol("m", positive=True, integer=True)
K_SYM = sp.Symbol("k", nonnegative=True, integer=True)


def depths(ctx: Context) -> list[Any]:
    return list(range(1, ctx.profile.max_depth + 1)) + [M_SYM]


def rotation(a: sp.Symbol) -> sp.Matrix:
    """The rational parametrisation of SO(2): exactly orthogonal for every real a."""
    return sp.Matrix([[1 - a**2, -2 * a], [2 * a, 1 - a**2]]) / (1 + a**2)


@lru_cache(maxsize=None)
def symbolic_flattest(m: int) -> dict:
    """The 2x2 flattest minima W_k = O_k^T diag(c, t_k) O_{k-1} (O_k rotations with free parameters,
    c = sigma^{1/m}, t_k free): T = O_m^T diag(c^m, prod t) O_0, v = O_0^T e_1, u = O_m^T e_1.
    Returns the layers, the prefix vectors P_k v and suffix vectors (prod_{i>k} W_i)^T u (cancelled)
    and their norms."""
    a = sp.symbols(f"a0:{m + 1}", real=True)
    t = sp.symbols(f"t1:{m + 1}", positive=True)
    c = SIGMA ** sp.Rational(1, m)
    O = [rotation(x) for x in a]
    W = [(O[k + 1].T * sp.diag(c, t[k]) * O[k]).applyfunc(sp.cancel) for k in range(m)]
    pre = [O[0].T[:, 0]]
    for Wk in W:
        pre.append((Wk * pre[-1]).applyfunc(sp.cancel))
    suf = [O[m].T[:, 0]]
    for Wk in reversed(W):
        suf.append((Wk.T * suf[-1]).applyfunc(sp.cancel))
    suf = suf[::-1]
    return {"W": W, "pre": pre, "suf": suf, "pre_norm": [sym_norm(x) for x in pre],
            "suf_norm": [sym_norm(x) for x in suf]}


def sym_norm(x: sp.Matrix) -> sp.Expr:
    return sp.sqrt(sp.factor(sp.cancel((x.T * x)[0])))


def symbolic_residual(expr: sp.Expr) -> sp.Expr:
    return sp.simplify(sp.powsimp(sp.cancel(expr), force=True))


def exact_measurement(failures: list[dict], cases: list[str], reason: str = "exact symbolic identity") -> Measurement:
    return Measurement(residual=1.0 if failures else 0.0, tolerance=0.0, tolerance_reason=reason,
                       instances=len(cases), shapes=cases, counterexample=failures[0] if failures else None)


def over_depths(ctx: Context, residual_at: Callable[[Any], sp.Expr]) -> Measurement:
    """An identity in sigma checked for m = 1..max_depth and for symbolic m: ``residual_at(m)`` is a
    sympy expression that must simplify to zero."""
    failures, cases = [], []
    for m in depths(ctx):
        diff = symbolic_residual(residual_at(m))
        cases.append(f"m={m}")
        if diff != 0:
            failures.append({"m": str(m), "difference": str(diff)})
    return exact_measurement(failures, cases)


def family_check(ctx: Context, statement: Callable[[dict, int, int], sp.Expr]) -> Measurement:
    """Evaluate a statement's residual (a sympy expression that must vanish) on the symbolic 2x2
    flattest family for m = 1..max_depth and every k."""
    failures, cases = [], []
    for m in range(1, ctx.profile.max_depth + 1):
        fam = symbolic_flattest(m)
        for k in range(1, m + 1):
            diff = statement(fam, m, k)
            if diff != 0:
                failures.append({"m": m, "k": k, "residual": str(diff)})
                break
        cases.append(f"m={m}")
    return exact_measurement(failures, cases, "exact identity in sigma and the free parameters of the family")


@lru_cache(maxsize=None)
def symbolic_grams(m: int) -> list[sp.Matrix]:
    """W_k^T W_k of ``symbolic_flattest(m)``, cancelled."""
    return [(Wk.T * Wk).applyfunc(sp.cancel) for Wk in symbolic_flattest(m)["W"]]

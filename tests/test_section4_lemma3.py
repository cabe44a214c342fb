"""Tests of the machinery of proofs.section4_lemma3 (the checks themselves run in test_audit)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from proofs import linear_network as ln
from proofs import section4_lemma3 as s4
from proofs.instances import SIGMA_KINDS, Spec
from proofs.minima import GENERATORS
from verify.checks import CHECKS
from verify.context import PROFILES, Context
from verify.evaluate import evaluate
from verify.model import Verdict

EXACT_SPEC = Spec((2, 3, 1, 2), 1, "spd", "random (S104)", seed=7)


def test_entrywise_vec_and_kron_agree_with_the_library(rng):
    A, B = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 3, 2))
    assert np.array_equal(s4.index_vec(A)[..., 0], ln.vec(A))
    assert np.array_equal(s4.index_kron(A, B), ln.kron(A, B))


def test_layer_derivative_is_exact_and_in_denominator_layout():
    p = s4.high_precision_point(EXACT_SPEC, s4.GENERIC, "exact", 50)
    sym = s4.sympy_point(p.dims, s4.GENERIC)
    values = dict(zip(sym.symbols, ln.flatten(list(p.W)).tolist()))
    for q, k in ((1, 3), (3, 1), (2, 2)):
        exact = p.d(lambda P: s4.tr(s4.U(P.W, k)), q)              # (N_q, d_x d_y, N_k): dU_k^T/dw_{q,l}, transposed
        symbolic = np.vectorize(lambda e: sp.sympify(e).xreplace(values), otypes=[object])(
            sym.d(lambda P: s4.tr(s4.U(P.W, k)), q))
        assert exact.shape == (p.dims[q] * p.dims[q - 1], 2 * 2, p.dims[k] * p.dims[k - 1])
        assert all(sp.Rational(a) == b for a, b in zip(exact.ravel(), symbolic.ravel()))


def test_exact_formulas_stay_rational():
    p = s4.high_precision_point(EXACT_SPEC, s4.MINIMUM, "exact", 50)
    q = s4.high_precision_point(EXACT_SPEC, s4.SAMPLES, "exact", 50)
    values = (s4.S49.evaluate(s4.S49.printed, p) + s4.S36.evaluate(s4.S36.printed, q)
              + s4.gradient_reference(s4.sample_loss, q))
    assert all(isinstance(v, Fraction) for value in values for v in np.ravel(value))


def test_shape_plan_covers_depths_kinds_and_instances():
    ctx = Context(profile=PROFILES["default"])
    plan, batch = s4.shape_plan(ctx)
    assert {(s.depth, s.sigma) for s in plan} == {(m, k) for m in range(1, 7) for k in SIGMA_KINDS}
    assert {(s.depth, s.minimum) for s in plan} == {(m, k) for m in range(1, 7) for k in GENERATORS}
    assert batch * sum(s.depth >= 2 for s in plan) >= ctx.profile.instances
    assert all(1 <= s.rank <= min(s.dims) and sum(a * b for a, b in zip(s.dims, s.dims[1:])) <= s4.MAX_WEIGHTS
               for s in plan)


def _result(label: str, name: str):
    ctx = Context(seed=0, profile=PROFILES["quick"], xp=np)
    return evaluate(next(c for c in CHECKS[label] if c.name == name), ctx)


@pytest.mark.parametrize("label, name", [("S33", "exact_samples"), ("S45", "range_of_l_exact")])
def test_printed_slips_are_errata(label, name):
    r = _result(label, name)
    assert r.verdict is Verdict.ERRATUM and r.printed.counterexample
    assert all(c.rejected for c in r.controls)


@pytest.mark.parametrize("label, name", [("S49", "exact_global_minimum"), ("S45", "fails_off_minimum_exact"),
                                         ("S42", "sympy_identity_tiny_shapes"), ("P1", "sympy_symbolic_entries")])
def test_checks_pass_and_reject_their_mutants(label, name):
    r = _result(label, name)
    assert r.verdict is Verdict.PASSED, r.message
    assert r.controls and all(c.rejected for c in r.controls)

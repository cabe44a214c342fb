"""Unit tests of the mathematics of proofs.section8_theorem4 (Section VIII, Theorem 4)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from proofs import hessian_reference as hr
from proofs import lemma3
from proofs import linear_network as ln
from proofs import section8_theorem4 as s8
from verify.context import PROFILES, Context
from verify.evaluate import evaluate
from verify.checks import CHECKS
from verify.model import Verdict


def family_batch(family: str, shape: s8.Shape, n: int = 6, seed: int = 3) -> s8.Batch:
    return s8.build_batch(family, shape, n, "identity", seed)


@pytest.mark.parametrize("shape", [s for s in s8.SHAPES if s.m >= 2], ids=lambda s: s.label())
@pytest.mark.parametrize("family", list(s8.FAMILIES))
def test_families_are_global_minima_with_the_right_balance(family, shape):
    if not s8.applies(family, shape):
        pytest.skip("family needs more room")
    b = family_batch(family, shape)
    grad = ln.flatten(ln.gradient(b.weights, b.data))
    assert np.max(np.abs(grad)) < 1e-10 * max(1.0, float(np.max(np.abs(b.T))))
    holds = s8.hypothesis_printed(b.weights, b.T)
    assert holds.all() if family in s8.HYPOTHESIS_FAMILIES else not holds.any()


def test_targets_have_the_requested_rank_and_top_multiplicity(rng):
    target = s8.random_target(rng, 5, s8.Shape((4, 4, 4, 4), 2, top=2))
    s = np.linalg.svd(target.T, compute_uv=False)
    np.testing.assert_allclose(s[:, 0], s[:, 1], rtol=1e-12)
    assert np.all(s[:, 2:] < 1e-12 * s[:, :1])


def test_constructed_families_are_not_rotated_canonical_minima():
    """Non-normal lower blocks change the layers' lower singular values; cancelling directions add
    nonzero singular values beyond rank T in hidden layers."""
    shape = s8.Shape((3, 3, 3, 3), 3)
    b = family_batch("non-normal lower block", shape)
    canonical_layer_values = np.linalg.svd(b.T, compute_uv=False) ** (1 / 3)
    assert np.max(np.abs(np.linalg.svd(b.weights[1], compute_uv=False) - canonical_layer_values)) > 1e-3
    c = family_batch("cancelling extra directions", s8.Shape((3, 5, 4, 2), 1))
    hidden = np.linalg.svd(c.weights[1], compute_uv=False)
    assert np.all(np.sum(hidden > 1e-8, axis=-1) > 1)


def test_quadratic_form_max_is_the_product_of_spectral_norms(rng):
    W = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4)), rng.standard_normal((5, 2))]
    for k in range(1, 4):
        G = s8.quadratic_form(s8.term_printed, W, k)
        value = s8.s100_value_printed(s8.above(W, k), s8.below(W, k))
        assert np.linalg.eigvalsh(G)[-1] == pytest.approx(value, rel=1e-12)


def test_relaxation_middle_is_lemma3_lambda_max():
    b = family_batch("random (S104)", s8.Shape((2, 3, 3, 2), 2))
    middle, upper = s8.relaxation_values(s8.S99_PRINTED, b.weights)
    np.testing.assert_allclose(middle, lemma3.lambda_max(b.weights, b.data), rtol=1e-10)
    assert np.all(upper >= middle * (1 - 1e-12))


def test_second_inequality_is_an_identity_for_two_layers_only():
    two = family_batch("random (S104)", s8.Shape((3, 4, 2), 2))
    middle, upper = s8.relaxation_values(s8.S99_PRINTED, two.weights)
    np.testing.assert_allclose(upper, middle, rtol=1e-10)
    three = family_batch("random (S104)", s8.Shape((2, 3, 3, 2), 2))
    middle, upper = s8.relaxation_values(s8.S99_PRINTED, three.weights)
    assert np.max(upper / middle) > 1.01


def test_relaxation_bound_is_one_when_balanced_and_bounds_lambda():
    assert s8.relaxation_bound(np.ones(4)) == 1
    b = family_batch("random (S104)", s8.Shape((2, 2, 2, 2), 2))
    ratio = b.lam / s8.flattest_value_printed(b.smax, 3)
    assert np.all(ratio <= s8.relaxation_bound(b.rho) * (1 + 1e-8))


def test_s102_symbolic_product():
    s = sp.Symbol("s", positive=True)
    m = sp.Symbol("m", integer=True, positive=True)
    a, b, c = s8.s102_printed(lambda i: s ** (1 / m), s, m, 2, prod=s8.symbolic_product_except)
    assert sp.simplify(a - c) == 0 and sp.simplify(b - c) == 0


def test_converse_counterexample_is_flattest_exactly():
    """Hyper-dual Hessian over the rationals: 6 I - H is positive semidefinite and singular, so lambda_max = 6,
    the flattest value, while sigma_max(W_2) = 4 = 4 sigma_max(T)^{1/3}."""
    W = s8.converse_counterexample()
    T = ln.end_to_end(W)
    data = ln.from_target(T, np.array([[Fraction(1), Fraction(0)], [Fraction(0), Fraction(1)]], dtype=object))
    H = sp.Matrix(hr.hyperdual_hessian(W, data).tolist())
    gap = 6 * sp.eye(H.shape[0]) - H
    assert gap.det() == 0 and gap.is_positive_semidefinite
    assert T[0, 0] == 1 and max(T[0, 0], T[1, 1]) == 1  # sigma_max(T) = 1
    assert W[1][1, 1] == 4


def test_balanced_is_not_flattest_for_spd_sigma():
    found = s8.balanced_is_not_flattest()
    assert found["lambda_max_min_over_Omega"] < found["lambda_max_balanced"] * (1 - 1e-3)
    assert found["printed"] < found["lambda_max_min_over_Omega"]


def test_mp_families_satisfy_the_hypothesis_to_working_precision():
    import mpmath

    ctx = Context(seed=1, profile=PROFILES["quick"], dps=40).for_check("test")
    with mpmath.workdps(40):
        for inst in s8.mp_instances(ctx, ["rotated flattest", "non-normal lower block"]):
            root = mpmath.root(inst.smax, inst.shape.m)
            assert all(abs(s8.mp_smax(W) - root) < mpmath.mpf(10) ** -35 for W in inst.weights)


EXPECTED = {
    "s99_with_general_sigma": Verdict.CONDITIONAL, "s98_with_scaled_sigma": Verdict.CONDITIONAL,
    "s103_with_general_sigma": Verdict.CONDITIONAL, "s103_scalar_networks_any_sigma": Verdict.CONDITIONAL,
    "theorem4_with_general_sigma": Verdict.CONDITIONAL, "s102_every_depth": Verdict.VERIFIED,
}


@pytest.fixture(scope="module")
def quick_results():
    ctx = Context(seed=0, profile=PROFILES["quick"], xp=np)
    return [evaluate(c, ctx) for label in ("S98", "S99", "S100", "S101", "S102", "S103", "Theorem 4")
            for c in CHECKS[label]]


def test_checks_reach_their_verdicts_and_reject_their_mutants(quick_results):
    for r in quick_results:
        assert r.verdict is EXPECTED.get(r.check.name, Verdict.PASSED), (r.check.name, r.message)
        assert all(c.rejected for c in r.controls), r.check.name


def test_conditional_checks_keep_the_smallest_counterexample(quick_results):
    by_name = {r.check.name: r for r in quick_results}
    assert by_name["s103_with_general_sigma"].counterexample["dims"] == [1, 1]
    assert by_name["s103_scalar_networks_any_sigma"].counterexample["m"] == 1
    assert "balanced_is_not_flattest" in by_name["theorem4_with_general_sigma"].counterexample

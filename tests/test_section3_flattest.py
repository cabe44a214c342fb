"""The helper mathematics of proofs/section3_flattest.py (Section III.1, (S8)-(S22))."""

from __future__ import annotations

import array_api_compat.numpy as np_xp
import numpy as np
import pytest
import sympy as sp

from proofs import scalar_network as sn
from proofs import section3_flattest as s3
from verify.checks import CHECKS
from verify.context import PROFILES, Context
from verify.evaluate import evaluate


def test_products_and_composition_agree_on_sympy_and_numpy():
    w = sn.symbols(3)[0]
    x = sp.Symbol("x")
    assert s3.compose(w, x) == s3.prod(w) * x
    assert s3.others(w, 1) == w[0] * w[2]
    assert s3.prod([]) == 1
    cols = [np.array([2.0, -1.0]), np.array([3.0, 0.5])]
    np.testing.assert_array_equal(s3.compose(cols, np.ones(2)), [6.0, -0.5])


def test_central_difference_is_exact_for_quadratics(rng):
    w = [rng.standard_normal(5) * 10 for _ in range(3)]
    d = s3.central_difference(w, 1)
    np.testing.assert_allclose(d(lambda v: 3 * v[1] ** 2 * v[0] + v[2]), 6 * w[1] * w[0], rtol=1e-13)


def test_sums_are_linearized():
    i, n = sp.symbols("i n", integer=True, positive=True)
    x, a = sp.IndexedBase("x"), sp.Symbol("a")
    expr = sp.Sum(a * x[i] ** 2 + x[i], (i, 1, n)) - a * sp.Sum(x[i] ** 2, (i, 1, n)) - sp.Sum(x[i], (i, 1, n))
    assert s3._linear_sums(expr, i) == 0


def test_same_power_sees_the_negative_branch():
    tau = s3.TAU
    assert s3.same_power((tau**2) ** sp.Rational(1, 2), sp.Abs(tau)) is None
    bad = s3.same_power((tau**2) ** sp.Rational(1, 2), tau)  # |tau| vs tau
    assert bad["tau_sign"] == "negative" and bad["printed"][0] < 0


def test_residuals_replay_the_right_instance():
    out = s3.Residuals()
    out.add(1, np.array([0.0, 0.1]), lambda i: {"group": 1, "i": i})
    out.add(2, np.array([0.2, 5.0, 0.3]), lambda i: {"group": 2, "i": i})
    m = out.measurement(1.0, "test")
    assert not m.ok and m.counterexample == {"group": 2, "i": 1} and m.instances == 5


def test_exact_minima_are_global_minima():
    rng = np.random.default_rng(0)
    for m in range(1, 5):
        for tau, w in s3.exact_minima(m, rng):
            assert s3.prod(w) == tau


def test_balanced_points_are_feasible_and_balanced(rng):
    w = sn.random_minima(rng, 4, np.array([-2.0, 0.5, 3.0]))
    tau = np.prod(w, -1)
    b = s3.balanced(w, tau)
    np.testing.assert_allclose(np.prod(b, -1), tau, rtol=1e-14)
    np.testing.assert_allclose(np.abs(b), np.abs(tau)[:, None] ** 0.25 * np.ones((1, 4)), rtol=1e-14)


def test_omega0_samples_are_members_and_perturbations_are_not(rng):
    tau = np.array([-3.0, 0.2, 5.0])
    omega = s3.omega0_sample(s3.s22_printed, 3, tau, rng)
    assert s3.omega0_member(s3.s22_printed, 3, tau, omega, 1e-12).all()
    np.testing.assert_allclose(np.prod(omega, -1), tau, rtol=1e-14)
    assert not s3.omega0_member(s3.s22_printed, 3, tau, omega * [1.01, 1, 1], 1e-6).any()


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_flattest_derivation_holds(m):
    assert s3.outer_product_at_minima(m)
    assert s3.flattest_derivation(m) == ()


def test_minimum_of_s19_for_negative_tau_is_positive():
    """m = 2, tau = -1, sigma_x^2 = 1: the flattest minimum has lambda_max = 4 |tau| = 4, while the
    printed 2 m sigma_x^2 tau^(2(1 - 1/m)) is -4."""
    found = s3.minimize_sharpness(np.random.default_rng(1), 2, 1.0, -1.0)
    assert found.value == pytest.approx(4.0, rel=1e-9)
    assert s3.printed_minimum(2, 1.0, -1.0 + 0j) == pytest.approx(-4.0)
    assert s3.corrected_minimum(2, 1.0, -1.0 + 0j) == pytest.approx(4.0)


def test_s21_residual_rejects_the_printed_bound_for_negative_tau_only():
    w = np.array([[1.0, -1.0], [1.0, 1.0]])
    tau, sx2 = np.array([-1.0, 1.0]), np.ones(2)
    printed, seen = s3.s21_residual(s3.printed_minimum, 2, sx2, tau, w)
    assert printed[0] > 1 and printed[1] < 1e-12
    np.testing.assert_allclose(seen["printed_bound"][:, 0], [-4.0, 4.0])
    np.testing.assert_allclose(seen["lambda_max_balanced"], [4.0, 4.0])
    assert np.all(s3.s21_residual(s3.corrected_minimum, 2, sx2, tau, w)[0] < 1e-12)


def test_descent_reaches_the_least_squares_minimum(rng):
    x, y, sx2, sxy, _ = s3.regression_data(rng, 1, 16)
    w, _ = s3.descend(np.array([1.0, -0.5, 2.0]), x[0], y[0])
    assert np.prod(w) == pytest.approx(sxy[0] / sx2[0], rel=1e-7)


def test_tau_zero_flattest_points_outside_omega0_start_at_depth_three():
    bad, total = s3.s22_zero_tau_violations(s3.s22_printed, range(1, 4))
    assert total == 1 + 5 + 19
    assert [b["m"] for b in bad] == [3] and list(bad[0]["w"]) == [0.0, 0.0, 1.0]


EXPECTED = {"S19": "erratum", "S20": "erratum", "S21": "erratum"}


def test_section_verdicts_under_the_quick_profile():
    """Every check of the module runs, rejects its negative controls, and gives the expected verdict:
    errata for negative tau in (S19)-(S21), tau = 0 caveats for (S15)-(S18) and (S22)."""
    ctx = Context(seed=3, profile=PROFILES["quick"], xp=np_xp)  # the backend checks need a namespace
    for label in [f"S{k}" for k in range(8, 23)]:
        checks = [c for c in CHECKS[label] if c.run.__module__ == s3.__name__]
        assert checks, label
        for c in checks:
            r = evaluate(c, ctx)
            expected = "conditional" if c.without else EXPECTED.get(label, "verified" if c.proves else "passed")
            assert r.verdict.value == expected, (c.id, r.verdict, r.message)

"""Unit tests of the helper mathematics of proofs.section1_stability."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from proofs import scalar_network as sn
from proofs import section1_stability as s1


def psd_batch(rng: np.random.Generator, n: int, N: int) -> np.ndarray:
    lam = s1.random_spectra(rng, n, N, saddles=False)
    return s1.symmetric_with_spectrum(s1.random_orthogonal(rng, n, N), lam)


def test_random_orthogonal_and_spectrum(rng):
    Q = s1.random_orthogonal(rng, 5, 4)
    np.testing.assert_allclose(Q @ np.swapaxes(Q, 1, 2), np.broadcast_to(np.eye(4), (5, 4, 4)), atol=1e-12)
    H = psd_batch(rng, 5, 4)
    np.testing.assert_allclose(s1.lambda_max(H), 1.0, atol=1e-12)


def test_threshold_batch_sits_where_it_says(rng):
    b = s1.threshold_batch(rng, 60, 3, saddles=True)
    eta_lam = b.eta * s1.lambda_max(b.H)
    for side, (lo, hi) in enumerate([(1.79, 1.97), (2 - 1e-12, 2 + 1e-12), (2.03, 2.21)]):
        sel = b.side == side
        assert np.all((eta_lam[sel] >= lo) & (eta_lam[sel] <= hi))
    assert np.array_equal(b.saddle, np.linalg.eigvalsh(b.H)[:, 0] < -1e-12)


def test_s1_step_is_gd_step_on_a_quadratic(rng):
    H = psd_batch(rng, 3, 4)
    w_star, w = rng.standard_normal((3, 4, 1)), rng.standard_normal((3, 4, 2))
    eta = np.array([0.3, 1.0, 1.9])
    gd = w - eta[:, None, None] * (H @ (w - w_star))
    np.testing.assert_allclose(s1.linearized_step(H, w_star, eta)(w), gd, atol=1e-13)
    np.testing.assert_allclose(s1.quadratic_gd_step(H, w_star, eta)(w), gd, atol=1e-12)


def test_printed_definition_is_unbounded_near_the_origin():
    """w_0 = t u -> 0: w_1 -> eta H w* != 0, so ||w_1|| / ||w_0|| ~ 1/t; the deviation ratio stays <= 1."""
    H = np.diag([1.0, 0.5])[None]
    w_star = np.array([[[1.0], [1.0]]])
    eta = np.array([1.5])
    for t in (1e-2, 1e-6):
        w0 = np.array([[[t], [0.0]]])
        w1 = s1.linearized_step(H, w_star, eta)(w0)
        num, den = s1.definition_printed(w1, w0, w_star)
        assert num[0, 0] / den[0, 0] > 0.1 / t
        num, den = s1.definition_corrected(w1, w0, w_star)
        assert num[0, 0] / den[0, 0] <= 1


def test_sup_ratio_separates_stable_from_unstable():
    H = np.diag([1.0, 0.0])[None].repeat(2, axis=0)
    w_star = np.zeros((2, 2, 1))
    eta = np.array([1.9, 2.1])
    w0 = np.array([[[1.0], [1.0]], [[1.0], [1.0]]])
    sup, _ = s1.sup_ratio(s1.linearized_step(H, w_star, eta), s1.definition_corrected, w0, w_star, 200)
    assert list(s1.classify(sup[:, 0])) == [1, 0]


def test_scalar_gradient_matches_finite_differences(rng):
    _, _, sx2, sxy, sy2 = sn.random_data(rng, 4)
    w = rng.standard_normal((4, 3))
    h = 1e-6
    fd = np.stack([(sn.loss(w + h * e, sx2, sxy, sy2) - sn.loss(w - h * e, sx2, sxy, sy2)) / (2 * h)
                   for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(s1.scalar_gradient(w, sx2, sxy), fd, rtol=1e-6, atol=1e-8)


def test_scalar_minima_are_stationary(rng):
    mins = s1.scalar_minima(rng, 5, 3)
    np.testing.assert_allclose(np.prod(mins.w_star, axis=1), mins.sxy / mins.sx2, rtol=1e-12)
    assert np.abs(s1.scalar_gradient(mins.w_star, mins.sx2, mins.sxy)).max() < 1e-10


def test_s3_indexwise_readings():
    """H = diag(2, 0.5), eta = 0.1: the chain fails index-wise; H = diag(1.95, 0.5), eta = 1: the chain holds
    but its first two equalities fail; paired by eigenvector every member agrees."""
    def members(lam, eta):
        H, e = np.diag(lam)[None], np.array([eta])
        A = np.eye(len(lam)) - eta * H
        return (s1.descending_eigenvalues(A @ A)[0], s1.s3_step1_printed(s1.descending_eigenvalues(A))[0],
                s1.s3_chain_printed(s1.descending_eigenvalues(H), e)[0])
    true, step1, chain = members([2.0, 0.5], 0.1)
    assert not np.allclose(true, chain) and np.allclose(true, step1)
    np.testing.assert_allclose(np.sort(true), np.sort(chain))
    true, step1, chain = members([1.95, 0.5], 1.0)
    assert np.allclose(true, chain) and not np.allclose(true, step1)


def test_s3_algebra_and_regimes():
    x = sp.Symbol("x")
    assert sp.expand((1 - x) ** 2 - s1.s3_last_printed(x)) == 0
    assert list(s1.regime(np.array([[0.5, 0.2], [1.5, 1.2], [1.5, 0.2]]))) == [
        "all eta*lambda <= 1", "all eta*lambda >= 1", "straddling 1"]


def test_cayley_orthogonal_is_exactly_orthogonal(rng):
    Q = s1.cayley_orthogonal(rng, 3)
    assert Q * Q.T == sp.eye(3) and all(v.is_Rational for v in Q)


@pytest.mark.parametrize("power, expect_ok", [(2, True), (1, False)])
def test_second_order_defect(power, expect_ok):
    errors = 3.0 * s1.LINEARIZATION_RADII ** power
    ok = s1.second_order_defect(errors[None], np.array([1e-16])) <= 1
    assert bool(ok[0]) is expect_ok


def test_criteria_agree_on_psd_and_differ_on_a_saddle():
    H = np.array([np.diag([1.0, 0.0]), np.diag([1.0, -0.5])])
    eta = np.array([1.9, 1.9])
    assert list(s1.s2_printed(H, eta, 1e-9)) == [True, False]
    assert list(s1.s4_printed(H, eta, 1e-9)) == [True, True]

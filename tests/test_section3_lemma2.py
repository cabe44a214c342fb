"""Unit tests of the helper mathematics of proofs/section3_lemma2.py and the line helpers of
proofs/scalar_network.py."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

from proofs import scalar_network as sn
from proofs import section3_lemma2 as L


def test_line_polynomial_is_the_expanded_product(rng):
    w, d = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    coeffs = np.array(sn.line_polynomial(w, d, 5))
    for k in range(3):
        full = np.array([1.0])
        for wj, dj in zip(w[k], d[k]):
            full = np.polynomial.polynomial.polymul(full, [wj, dj])
        np.testing.assert_allclose(coeffs[:, k], full, rtol=1e-12, atol=1e-12)


def test_loss_along_line_evaluates_to_the_loss_exactly():
    w = np.array([Fraction(2), Fraction(-1, 3), Fraction(5, 7)], dtype=object)
    d = np.array([Fraction(1, 2), Fraction(3), Fraction(-2)], dtype=object)
    sx2, sxy, sy2, t = Fraction(3, 2), Fraction(-1, 5), Fraction(7), Fraction(2, 9)
    coeffs = sn.loss_along_line(w, d, sx2, sxy, sy2, 2 * len(w))
    p = np.prod(w + t * d)
    assert sum(c * t**k for k, c in enumerate(coeffs)) == sx2 * p**2 - 2 * sxy * p + sy2


def test_line_curvature_is_the_hessian_quadratic_form(rng):
    tau, sx2 = np.array([0.7, -1.3, 2.0]), np.array([0.5, 1.0, 2.5])
    w = sn.random_minima(rng, 4, tau) * np.array([[1.0], [1.1], [0.9]])  # on and off the manifold
    d = rng.standard_normal(w.shape)
    quadratic = np.einsum("bi,bij,bj->b", d, sn.hessian(w, sx2, tau * sx2), d)
    np.testing.assert_allclose(sn.line_curvature(w, d, sx2, tau * sx2), quadratic, rtol=1e-10)


def test_rounding_bound_covers_the_float_error(rng):
    pairs = L.make_pairs(rng, 50, 6, exact=True)
    w, d = pairs.w1, pairs.w1 - pairs.w2
    exact = sn.line_curvature(w, d, pairs.sx2, pairs.tau * pairs.sx2)
    wf, df, sx2, sxy = (np.asarray(x, dtype=float) for x in (w, d, pairs.sx2, pairs.tau * pairs.sx2))
    error = np.abs(sn.line_curvature(wf, df, sx2, sxy) - np.asarray(exact, dtype=float))
    assert np.all(error <= sn.line_curvature_rounding_bound(wf, df, sx2, sxy))


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("orthants,tau_sign", [("positive", 1), ("same", -1), ("mixed", 1)])
def test_pairs_are_minima_in_the_requested_orthants(rng, exact, orthants, tau_sign):
    pairs = L.make_pairs(rng, 20, 5, exact=exact, tau_sign=tau_sign, orthants=orthants)
    for w in (pairs.w1, pairs.w2):
        product = np.prod(w, axis=-1)
        assert np.all(product == pairs.tau) if exact else np.allclose(product, pairs.tau, rtol=1e-13)
    if orthants != "mixed":
        assert np.all(np.sign(pairs.w1.astype(float)) == np.sign(pairs.w2.astype(float)))
    if orthants == "positive":
        assert np.all(pairs.w1 > 0)


def test_ties_are_exact_and_near_ties_are_not(rng):
    for mode, equal in (("exact", True), ("near", False)):
        pairs = L.make_pairs(rng, 20, 5, exact=True, ties=mode)
        assert np.all(np.prod(pairs.w2, axis=-1) == pairs.tau)
        lhs, rhs = L.s23_printed(pairs.w1, pairs.w2)
        assert np.all((lhs == rhs) == equal)


def test_three_way_and_exact_root():
    lhs = np.array([Fraction(1), Fraction(2), Fraction(3)], dtype=object)
    assert list(L.three_way(lhs, Fraction(2))) == [-1, 0, 1]
    assert L.exact_root(Fraction(8, 27), 3) == Fraction(2, 3)
    assert isinstance(L.exact_root(Fraction(2), 2), float)


def test_termwise_sums_agree_with_arrays():
    w1 = np.array([2.0, 0.5, 3.0])
    w2 = np.array([1.5, 4.0, 0.25])
    symbolic = L.s26_printed(L.GENERAL_W1, L.GENERAL_W2)[0]
    values = {**{L.W1[i + 1]: sp.nsimplify(x) for i, x in enumerate(w1)},
              **{L.W2[i + 1]: sp.nsimplify(x) for i, x in enumerate(w2)}}
    assert float(symbolic.subs(L.M, 3).doit().subs(values)) == pytest.approx(L.s26_printed(w1, w2)[0])


def test_remainder_order_separates_the_expansion_from_a_misprint(rng):
    w = [mpmath.mpf(x) for x in (0.8, -1.2, 0.6)]
    alpha = [mpmath.mpf(x) for x in (0.6, 0.0, 0.8)]
    args = (w, alpha, mpmath.mpf(1.3), mpmath.mpf(0.4), mpmath.mpf(2))
    with mpmath.workdps(50):
        steps = (mpmath.mpf("1e-6"), mpmath.mpf("1e-7"))
        assert L.remainder_order(L.s24_printed, *args, steps) == pytest.approx(3, abs=1e-3)
        assert L.remainder_order(lambda l0, g, c, eta: l0 + eta * g + eta**2 * c, *args, steps) == pytest.approx(2, abs=1e-3)

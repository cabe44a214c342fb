"""The jet Hessian (independent of Phi) and the batched Lemma 3 / Theorem 2 verifications."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from proofs import arb_lemma3, batched_checks, hessian_reference, jet_hessian, lemma3, minima
from proofs import linear_network as ln


def _minimum(rng, batch, dims):
    T = rng.standard_normal((*batch, dims[-1], dims[0]))
    R = np.eye(dims[0]) + 0.1 * np.ones((dims[0], dims[0]))
    return minima.random_minimum(T, dims, rng), ln.from_target(T, np.broadcast_to(R, (*batch, dims[0], dims[0])).copy())


def test_jet_hessian_is_exact_on_fractions():
    W = [np.array([[Fraction(1, 2), Fraction(3)]]).T, np.array([[Fraction(2), Fraction(-1, 3)]])]  # 2x1, 1x2
    data = ln.from_target(np.array([[Fraction(5, 7)]], dtype=object), np.array([[Fraction(3, 2)]], dtype=object))
    exact = hessian_reference.hyperdual_hessian(W, data)
    assert (jet_hessian.hessian(W, data) == exact).all()  # off a minimum too: the full Hessian of the loss


def test_jet_hessian_matches_finite_differences_off_a_minimum():
    rng = np.random.default_rng(0)
    W, data = _minimum(rng, (3,), (3, 4, 2))
    W = [w + 0.3 * rng.standard_normal(w.shape) for w in W]
    assert np.abs(jet_hessian.hessian(W, data) - hessian_reference.finite_difference_hessian(W, data)).max() < 1e-6


def test_lemma3_batched_equals_looped_and_runs_on_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(1)
    dims = (2, 3, 3, 2)
    W, data = _minimum(rng, (5,), dims)
    V = batched_checks.random_directions(rng, dims, (5,), 3)
    batched = batched_checks.lemma3_residuals(W, data, V)
    looped = [float(batched_checks.lemma3_residuals([w[i] for w in W], ln.Data(*(x[i] for x in (
        data.Sigma_x, data.Sigma_yx, data.T, data.Sigma_x_half, data.y2))), [v[i] for v in V])) for i in range(5)]
    assert batched.shape == (5,) and np.allclose(batched, looped) and batched.max() < 1e-13
    strict = batched_checks.lemma3_residuals([xps.asarray(w) for w in W],
                                             ln.from_target(xps.asarray(data.T), xps.asarray(data.Sigma_x_half)),
                                             [xps.asarray(v) for v in V])
    assert float(xps.max(strict)) < 1e-13
    H = jet_hessian.hessian([xps.asarray(w) for w in W], ln.from_target(xps.asarray(data.T), xps.asarray(data.Sigma_x_half)))
    assert np.abs(np.asarray(H) - lemma3.hessian(W, data)).max() < 1e-12


def test_a_wrong_hessian_is_caught():
    rng = np.random.default_rng(2)
    dims = (3, 3, 3)
    W, data = _minimum(rng, (8,), dims)
    V = batched_checks.random_directions(rng, dims, (8,), 1)

    def transposed_factor(weights, d):  # Phi_k with A_k instead of A_k^T: a misprint of (S47)
        xp = ln.namespace(*weights)
        return [ln.kron(xp.matmul(B, d.Sigma_x_half), A) for A, B in zip(ln.above(weights), ln.below(weights))]

    def half(weights, d):  # H = Phi Phi^T: the factor 2 of (S49) dropped
        return [P / np.sqrt(2) for P in lemma3.phi_blocks(weights, d)]

    assert batched_checks.lemma3_residuals(W, data, V).max() < 1e-13
    assert batched_checks.lemma3_residuals(W, data, V, transposed_factor).min() > 1e-6  # tolerance: 1e-11
    assert batched_checks.lemma3_residuals(W, data, V, half).min() > 1e-6


def test_theorem2_holds_at_flattest_minima_and_not_at_random_ones():
    rng = np.random.default_rng(3)
    T = rng.standard_normal((6, 3, 3))
    flat = minima.rebalanced_flattest(T, (3, 3, 3, 3), rng)
    assert batched_checks.worst(batched_checks.theorem2_residuals(flat)).max() < 1e-12
    assert batched_checks.flattest_premise(flat).max() < 1e-12
    random = minima.random_minimum(T, (3, 3, 3, 3), rng)
    assert batched_checks.flattest_premise(random).min() > 1e-3
    assert batched_checks.worst(batched_checks.theorem2_residuals(random)).min() > 1e-3


def test_arb_hessians_agree_as_balls():
    if not arb_lemma3.available():
        pytest.skip("python-flint is not installed")
    rng = np.random.default_rng(4)
    with arb_lemma3.digits(40):
        W = [arb_lemma3.to_arb(rng.standard_normal(s)) for s in ((3, 2), (2, 3))]
        R = arb_lemma3.to_arb(np.eye(2) + 0.1 * np.ones((2, 2)))
        data = arb_lemma3.data_from_target(arb_lemma3.product(W, 1, 2, 2), R)
        phi, jets = arb_lemma3.hessian_phi(W, data), arb_lemma3.hessian_jets(W, data)
        bound, radius, contains = arb_lemma3.discrepancy(phi, jets)
        assert contains and bound < 1e-35 and radius < 1e-35
        wrong = 2 * phi * (1 + arb_lemma3.to_arb(np.array([[1e-20]]))[0, 0])
        assert not arb_lemma3.discrepancy(wrong, jets)[2]

"""Unit tests of the mathematics behind Sections VI-VII: flat-minimum measurements, the refinement
on the manifold of minima, the certified instance families, the chain evaluator and the symbolic
family."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

from proofs import flat_claims as fc
from proofs import flat_instances as fi
from proofs import flat_properties as fp
from proofs import flat_symbolic as fs
from proofs import flattest_refine as fr
from proofs import lemma3, minima
from proofs import linear_network as ln


def flattest_value(W, R=None):
    T = ln.end_to_end(W)
    R = np.eye(T.shape[-1]) if R is None else R
    return lemma3.lambda_max(W, ln.from_target(T, R)) / lemma3.flattest_value(T, len(W))


def test_gains_alignment_and_balance_on_canonical_and_random(rng):
    T = rng.standard_normal((5, 3, 4))
    flat = minima.canonical(T, (4, 3, 3, 3))
    sigma, u, v = fp.top_singular_triplet(T)
    assert np.allclose(np.einsum("nij,nj->ni", T, v), sigma[:, None] * u)  # a consistent pair
    assert fp.gain_defects(flat, sigma, u, v).max() < 1e-12
    assert fp.alignment_defects(flat, u, v).max() < 1e-12
    assert np.abs(fp.balance_defects(flat, sigma)).max() < 1e-12
    eig, sv = fp.path_pair_defects(flat, sigma, u, v)
    assert max(eig.max(), sv.max()) < 1e-12
    random = minima.random_minimum(T, (4, 3, 3, 3), rng)
    assert fp.gain_defects(random, sigma, u, v).min() > 1e-6


def test_product_keeps_the_batch_shape_for_empty_ranges():
    W = [np.ones((4, 3, 2)), np.ones((4, 2, 3))]
    assert fp.product(W, 1, 0).shape == (4, 2, 2)
    assert fp.intermediate_gain_ratios(W, np.ones(4))[0].shape == (4, 2)


def test_random_top_pair_is_consistent_for_a_repeated_sigma_max(rng):
    T = fi.repeated_top_target(rng, 1, 3, 3, 3)[0]
    sigma, U_top, V_top, r = fp.top_subspace(T)
    assert r == 2
    s, u, v = fp.random_top_pair(T, rng)
    assert np.allclose(T @ v, s * u) and np.allclose(T.T @ u, s * v)


def test_coupling_angles_of_a_diagonal_network():
    W = [np.diag([2.0, 1.0])[None], np.diag([1.0, 3.0])[None]]  # top left of W_1 = e1, top right of W_2 = e2
    angles, ok = fp.coupling_angles(W)
    assert ok.all() and np.isclose(angles[0, 0], np.pi / 2)


def test_high_precision_path_of_the_measurements():
    with mpmath.workdps(40):
        W = [np.array([[[mpmath.mpf(2), 0], [0, mpmath.mpf(1) / 3]]], dtype=object)] * 2
        sigma, u, v = fp.top_singular_triplet(ln.end_to_end(W))
        assert abs(sigma[0] - 4) < mpmath.mpf(10) ** -35
        assert abs(fp.smax(W[0])[0] - 2) < mpmath.mpf(10) ** -35
        assert fp.gain_defects(W, sigma, u, v).max() < 1e-30


def test_lambda_max_gradient_matches_finite_differences(rng):
    W = [rng.standard_normal((3, 2)), rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    R = fi.instances.random_sigma_half(rng, (), 2, "spd")
    _, G = fr.lambda_max_gradient(W, R)
    h = 1e-6
    for j in range(3):
        E = rng.standard_normal(W[j].shape)
        plus = [w + h * E if i == j else w for i, w in enumerate(W)]
        minus = [w - h * E if i == j else w for i, w in enumerate(W)]
        fd = (fr.top_eigenmatrix(plus, R)[0] - fr.top_eigenmatrix(minus, R)[0]) / (2 * h)
        assert np.isclose(fd, np.sum(G[j] * E), rtol=1e-5)


def test_off_path_gain_gradient_and_chart_pullback(rng):
    W = [rng.standard_normal((3, 3)) for _ in range(3)]
    _, u, v = fp.top_singular_triplet(ln.end_to_end(W))
    chart = fr.Chart(W)
    x = 0.05 * rng.standard_normal(chart.size)
    Wx, M_inv = chart.weights(x)
    value, G = fr.off_path_log_gain(Wx, u, v, 2, True)
    grad = chart.pullback(Wx, M_inv, G)
    d = rng.standard_normal(chart.size)
    h = 1e-6
    f = lambda y: fr.off_path_log_gain(chart.weights(y)[0], u, v, 2, True)[0]  # noqa: E731
    assert np.isclose((f(x + h * d) - f(x - h * d)) / (2 * h), grad @ d, rtol=1e-5)
    assert np.allclose(ln.end_to_end(Wx), ln.end_to_end(W))  # the chart stays on the minima


def test_refine_reaches_the_flattest_value(rng):
    T = rng.standard_normal((2, 2))
    W = minima.random_minimum(T, (2, 2, 2, 2), rng)
    assert flattest_value(W) - 1 > 1e-2
    W, record = fr.refine(W, np.eye(2), rounds=4)
    assert record.value < record.start
    assert flattest_value(W) - 1 < 1e-8
    assert np.allclose(ln.end_to_end(W), T)


@pytest.mark.parametrize("m", [2, 3, 5])
def test_extremal_prefix_construction_is_flattest_with_gain_sqrt_m_minus_1(m):
    c = 1.3
    W = [np.diag(row)[None] for row in fi.extremal_prefix_values(m, c, np.sqrt)]
    assert abs(flattest_value(W) - 1) < 1e-12
    assert np.isclose(np.linalg.norm(W[0][0], 2), np.sqrt(m - 1) * c)


def test_extremal_product_construction_attains_s88():
    c = 0.8
    W = [np.diag(row)[None] for row in fi.extremal_product_values(c, np.sqrt)]
    assert abs(flattest_value(W) - 1) < 1e-12
    product = np.linalg.norm(W[0][0], 2) * np.linalg.norm(W[2][0], 2)
    assert np.isclose(product, np.sqrt(3) * c**2)  # sqrt(m) sigma^{1 - 1/m} with sigma = c^3


def test_flattest_minima_need_not_be_balanced():
    """A 3-layer diagonal flattest minimum with sigma_max(W_2) = 4 sigma^{1/3} (the converse of Theorem 4
    fails): T = diag(1, 0.16), W_1 = W_3 = diag(1, 0.2), W_2 = diag(1, 4)."""
    W = [np.diag([1.0, 0.2])[None], np.diag([1.0, 4.0])[None], np.diag([1.0, 0.2])[None]]
    assert abs(flattest_value(W) - 1) < 1e-12
    assert np.isclose(np.linalg.norm(W[1][0], 2), 4.0)


def test_zero_target_minimum_has_zero_hessian(rng):
    fams = fi.zero_target_families(rng)
    assert fams[0].meta["sympy Hessian at (1, 0, 0) is exactly zero"]
    assert all(np.all(f.lam == 0) for f in fams)


def test_cayley_orthogonal_and_mp_network():
    rng = np.random.default_rng(1)
    with mpmath.workdps(50):
        Q = fi.cayley_orthogonal(rng, 3)
        assert max(abs(x) for x in (Q.T @ Q - np.eye(3)).ravel()) < mpmath.mpf(10) ** -45
        W = fi.mp_network([[2, 1], [3, 1]], (2, 2, 2), rng)
        assert abs(fp.smax(ln.end_to_end(W)[None])[0] - 6) < mpmath.mpf(10) ** -45


def test_chain_residuals_slacks_and_not_evaluable():
    a, b = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    res, slack, _ = fc.links(fc.chain(a, b, rel=">="))
    assert np.allclose(res[:, 0], 0) and np.allclose(slack[:, 0], [0.0, 0.5])
    res, _, _ = fc.links(fc.chain(b, a, rel=">="))
    assert np.isclose(res[1, 0], 0.5)  # violated by half of the larger member
    with pytest.raises(fc.NotEvaluable):
        fc.links(fc.chain(np.ones((2, 3)), np.ones(2)))  # a vector compared with numbers (S90 as printed)
    assert fc.json_safe({"x": [float("inf"), 1.0]}) == {"x": ["inf", 1.0]}


def test_symbolic_family_gains():
    fam = fs.symbolic_flattest(3)
    for k in range(4):
        assert sp.simplify(fam["pre_norm"][k] - fs.SIGMA ** sp.Rational(k, 3)) == 0
        assert sp.simplify(fam["suf_norm"][k] - fs.SIGMA ** sp.Rational(3 - k, 3)) == 0
    a = sp.Symbol("a", real=True)
    assert (fs.rotation(a).T * fs.rotation(a)).applyfunc(sp.cancel) == sp.eye(2)


def test_rebalanced_values_for_the_high_precision_bank_stay_under_the_top():
    """minima.rebalanced_values overshoots the shared top value when sigma_1 < 1 and T is rank deficient
    (the log-headroom of the zero singular values is negative); the mpmath bank calls it with sigma_1
    scaled to 1.5 and scales back."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        values = fi.float_values(rng, (3, 3, 3), 2, "rebalanced")
        top = values[0, 0]
        assert np.allclose(values[:, 0], top) and values.max() <= top * (1 + 1e-12)

"""Unit tests of proofs.manifold and of the helper mathematics of proofs.section5_theorem1."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from proofs import lemma3, manifold, minima
from proofs import linear_network as ln
from proofs import section5_theorem1 as s5


def test_conjugation_step_keeps_the_product(rng):
    T = rng.standard_normal((2, 3))
    W = minima.random_minimum(T, (3, 2, 4, 2), rng)
    x = 0.1 * rng.standard_normal(2 * 2 + 4 * 4)
    np.testing.assert_allclose(ln.end_to_end(manifold.conjugation_step(W, x)), T, atol=1e-12)


def test_soft_lambda_max_brackets_lambda_max(rng):
    values = np.sort(rng.uniform(0, 5, size=7))
    for beta in (0.1, 10.0, 1e4):
        soft = manifold.soft_lambda_max(values, beta)
        assert values[-1] <= soft <= values[-1] + np.log(values.size) / beta + 1e-12
    assert manifold.soft_lambda_max(None, 1.0) == np.inf


@pytest.mark.parametrize("c", [1.0, 0.3, 4.0])
def test_estimate_reaches_c_times_the_flattest_value(rng, c):
    """Sigma_x = c I: rescaling W_k -> c^{1/(2m)} W_k gives min lambda_max = c 2m sigma_max^{2(1-1/m)}."""
    T = rng.standard_normal((2, 2))
    estimate = manifold.estimate_min_lambda_max(T, (2, 2, 2), np.sqrt(c) * np.eye(2), rng, starts=2)
    expected = c * float(lemma3.flattest_value(T, 2))
    assert estimate.value >= expected * (1 - 1e-12)
    assert estimate.value == pytest.approx(expected, rel=1e-9)
    assert len(estimate.record()["starts"]) == 2
    data = ln.from_target(T, np.sqrt(c) * np.eye(2))
    assert float(lemma3.lambda_max(estimate.weights, data)) == pytest.approx(estimate.value, rel=1e-12)


def test_lemma4_bound(rng):
    T = rng.standard_normal((3, 2))
    assert manifold.lemma4_bound(T, np.eye(2), 3, rng) == pytest.approx(float(lemma3.flattest_value(T, 3)), rel=1e-10)
    R = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert manifold.lemma4_bound(T, R, 1, rng) == pytest.approx(2 * np.linalg.eigvalsh(R @ R)[-1], rel=1e-10)


def test_gram_by_polarisation_recovers_a_symmetric_matrix(rng):
    G = rng.standard_normal((4, 4))
    G = G + G.T
    X, _ = s5.basis_pairs(4)
    np.testing.assert_allclose(s5.gram_by_polarisation(np.einsum("ki,ij,kj->k", X, G, X), 4), G, atol=1e-12)


def test_exact_minimum_multiplies_to_its_target(rng):
    roots = [Fraction(3, 2), Fraction(1, 3)]
    for family in ("canonical", "rotated flattest", s5.RANDOM):
        W, U, V = s5.hp_minimum(rng, (2, 3, 2), roots, family, lambda x: x)
        assert (ln.end_to_end(W) == s5.target_from_svd(U, [r**2 for r in roots], V)).all()


def test_real_power_conventions():
    assert s5.real_power(np.array([0.0, 4.0]), Fraction(0))[0] == 1.0
    assert s5.real_power(np.array([0.0, 4.0]), Fraction(1, 2))[1] == 2.0


def test_corrected_s59_equals_the_canonical_sum(rng):
    cell = s5.Cell((3, 3, 2))
    T = s5.random_targets(rng, 5, cell)
    U, s, Vt = s5.clean_svd(T)
    Bt = rng.standard_normal(T.shape)
    truth = s5.canonical_sum(s5.s_roots(s, cell.dims), Bt, cell.dims)
    np.testing.assert_allclose(s5.s59_corrected(s5.s_power(s, 2, 3), Bt, 2), truth, rtol=1e-12)
    assert not np.allclose(s5.s59_printed(s5.s_power(s, 2, 3), Bt, 2), truth)  # rectangular: columns dropped


def test_tight_chains_attain_every_step(rng):
    psis = s5.random_chains(rng, 6, (2, 3, 4, 2), "tight")
    np.testing.assert_allclose(s5.chain_slacks(s5.s50_printed(s5.chain_norms(psis))), 0.0, atol=1e-12)


def test_paired_top_vectors_with_repeated_singular_values(rng):
    batch = s5.realize(rng, s5.Cell((3, 3, 3), repeated=True), "canonical", 4)
    u, v = s5.paired_top_vectors(rng, batch)
    np.testing.assert_allclose((batch.T @ v[..., None])[..., 0], batch.s[:, :1] * u, atol=1e-10)


def test_unbalanced_aligned_minima_keep_the_top_vector_but_are_not_flattest(rng):
    ev = s5.gather(s5.unbalanced_aligned(rng, s5.Cell((2, 2, 2, 2)), 5))
    found = s5.top_vector_findings(s5.s66_printed, ev, ev.minima.u, ev.minima.v)
    assert np.all(np.abs(found.deficit) < 1e-10)
    assert np.all(ev.lam > s5.s64_printed(ev.minima.s[:, 0], 3) * (1 + 1e-6))

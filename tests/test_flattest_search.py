"""The greedy search of (S105)-(S106): it stays on the manifold of minima and descends."""

from __future__ import annotations

import numpy as np

from proofs import flattest_search as fs
from proofs import lemma3
from proofs import linear_network as ln


def test_start_and_steps_keep_the_product(rng):
    T = rng.standard_normal((3, 3))
    W = fs.start_s105(T, (3, 3, 3, 3), rng)
    np.testing.assert_allclose(ln.end_to_end(W), T, atol=1e-10)
    W2 = fs.step_s106(W, 0.3, rng)
    np.testing.assert_allclose(ln.end_to_end(W2), T, atol=1e-10)


def test_search_reaches_the_flattest_value_and_records_progress(rng):
    T = rng.standard_normal((3, 3))
    W, record = fs.search(T, (3, 3, 3, 3), np.eye(3), rng, rtol=1e-3)
    assert record.converged and 0 <= record.gap <= 1e-3
    assert record.history == sorted(record.history, reverse=True)  # accepted steps only descend
    assert record.accepted + record.rejected == record.iterations
    value = lemma3.lambda_max(W, ln.from_target(T, np.eye(3)))
    assert np.isclose(value, record.history[-1])


def test_rectangular_widths_start_from_a_random_minimum(rng):
    T = rng.standard_normal((2, 3))
    W = fs.start_s105(T, (3, 4, 2), rng)
    assert ln.widths(W) == (3, 4, 2)
    np.testing.assert_allclose(ln.end_to_end(W), T, atol=1e-10)


def test_progress_bar_gives_the_same_search(rng):
    T = rng.standard_normal((2, 2))
    seen = []
    _, quiet = fs.search(T, (2, 2, 2), np.eye(2), np.random.default_rng(5), rtol=1e-3)
    _, shown = fs.search(T, (2, 2, 2), np.eye(2), np.random.default_rng(5), rtol=1e-3, progress=True,
                         on_step=lambda record: seen.append(record.iterations))
    assert shown.history == quiet.history and seen[-1] == shown.iterations

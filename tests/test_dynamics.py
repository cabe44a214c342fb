"""Unit tests of proofs.dynamics (gradient flow and descent on deep linear networks), of the mathematics
of proofs.section2_lemma1 (Section II, Lemma 1) and of the figure verify/figures/fig_dynamics.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm, fractional_matrix_power

from proofs import dynamics as dy
from proofs import instances, lemma3
from proofs import linear_network as ln
from proofs import section2_lemma1 as s2

SHAPES = [(2, 2, 2), (3, 4, 2), (2, 3, 3, 1), (1, 2, 3, 2, 1)]


def random_problem(rng: np.random.Generator, dims, sigma: str = "spd", batch=(3,)) -> ln.Data:
    T = dy.random_target(rng, batch, dims[-1], dims[0])
    return ln.from_target(T, instances.random_sigma_half(rng, batch, dims[0], sigma))


@pytest.mark.parametrize("dims", SHAPES)
def test_numpy_gradient_is_the_library_gradient(dims, rng):
    data = random_problem(rng, dims)
    W = dy.random_init(dims, rng, (3,))
    for mine, ref in zip(dy.numpy_gradient(W, data.Sigma_x, data.Sigma_yx), ln.gradient(W, data)):
        np.testing.assert_allclose(mine, ref, rtol=1e-13, atol=1e-14)


def test_gradient_flow_of_one_layer_is_the_matrix_exponential(rng):
    """m = 1: W' = -2 (W Sigma_x - Sigma_yx), so W(t) = T + (W(0) - T) expm(-2 Sigma_x t)."""
    data = random_problem(rng, (3, 2), batch=())
    W0 = rng.standard_normal((2, 3))
    times = [0.0, 0.3, 1.0, 2.5]
    run = dy.gradient_flow([W0], data, times)
    for j, time in enumerate(times):
        exact = data.T + (W0 - data.T) @ expm(-2 * data.Sigma_x * time)
        np.testing.assert_allclose(run.weights[0][j], exact, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dims", SHAPES)
def test_gradient_flow_conserves_the_gram_differences_from_any_start(dims, rng):
    data = random_problem(rng, dims)
    W0 = dy.initialize("unbalanced random", dims, rng, (3,))
    run = dy.gradient_flow(W0, data, [0.0, 1.0, 3.0])
    for j in range(1, 3):
        for now, start in zip(dy.gram_gaps(run.at(j)), dy.gram_gaps(W0)):
            np.testing.assert_allclose(now, start, rtol=0, atol=1e-8)


def test_gradient_descent_changes_the_gram_differences_by_eta_squared(rng):
    """One GD step: D_i <- D_i + eta^2 (G_{i+1}^T G_{i+1} - G_i G_i^T), the source of the O(eta) drift."""
    dims, eta = (3, 4, 2), 0.05
    data = random_problem(rng, dims)
    W0 = dy.initialize("balanced", dims, rng, (3,))
    run = dy.gradient_descent(W0, data, eta, [0.0, eta])
    G = dy.numpy_gradient(W0, data.Sigma_x, data.Sigma_yx)
    t = lambda M: np.swapaxes(M, -1, -2)
    for i, (after, before) in enumerate(zip(dy.gram_gaps(run.at(1)), dy.gram_gaps(W0))):
        np.testing.assert_allclose(after - before, eta**2 * (t(G[i + 1]) @ G[i + 1] - G[i] @ t(G[i])), atol=1e-14)


def test_gradient_descent_records_after_whole_steps_and_stops_on_small_gradients(rng):
    data = random_problem(rng, (2, 2, 2), sigma="identity")
    run = dy.gradient_descent(dy.initialize("balanced", (2, 2, 2), rng, (3,)), data, 0.01, [0.0, 0.5, 1.0, 500.0],
                              stop_gradient=1e-9)
    np.testing.assert_allclose(run.times[:3], [0.0, 0.5, 1.0])
    assert run.times[-1] < 500.0 and np.all(dy.gradient_norm(run.final, data) < 1e-9)
    assert run.weights[0].shape == (run.times.size, 3, 2, 2)


def test_gradient_flow_stops_once_every_gradient_is_small(rng):
    data = random_problem(rng, (2, 2, 2), sigma="identity")
    run = dy.gradient_flow(dy.initialize("identity", (2, 2, 2), rng, (3,)), data, [0.0, 1.0, 1000.0], stop_gradient=1e-9)
    assert 1.0 < run.times[-1] < 1000.0
    assert np.all(dy.gradient_norm(run.final, data) <= 1.01e-9)


@pytest.mark.parametrize("dims", SHAPES)
def test_balanced_start_is_balanced_and_orientation_keeps_it(dims, rng):
    W = dy.initialize("balanced", dims, rng, (4,))
    assert np.max(dy.balancedness(W)) < 1e-13
    T = dy.random_target(rng, (4,), dims[-1], dims[0])
    oriented = dy.orient(W, T)
    assert np.max(np.abs(dy.balancedness(oriented) - dy.balancedness(W))) < 1e-13
    if dims[0] == dims[-1] == min(dims):
        assert np.all(np.sign(np.linalg.det(ln.end_to_end(oriented))) == np.sign(np.linalg.det(T)))


def test_unbalanced_and_small_starts_are_not_balanced(rng):
    assert np.min(dy.balancedness(dy.initialize("unbalanced random", (2, 3, 2), rng, (5,)))) > 1e-2
    small = dy.balancedness(dy.initialize("small random", (2, 3, 2), rng, (5,)))
    assert np.all((small > 0) & (small < 0.2))
    with pytest.raises(ValueError):
        dy.initialize("identity", (2, 3, 2), rng)


def test_targets_have_the_requested_structure(rng):
    spd = dy.random_target(rng, (5,), 3, 3, "spd")
    assert np.allclose(spd, np.swapaxes(spd, -1, -2)) and np.all(np.linalg.eigvalsh(spd) > 0)
    indefinite = dy.random_target(rng, (5,), 3, 3, "symmetric indefinite")
    assert np.all(np.sum(np.linalg.eigvalsh(indefinite) < 0, axis=-1) == 1)
    nn = dy.random_target(rng, (5,), 3, 3, "non-normal positive")
    lam = np.linalg.eigvals(nn)
    assert np.all(np.abs(lam.imag) < 1e-12) and np.all(lam.real > 0)
    t = lambda M: np.swapaxes(M, -1, -2)
    assert np.min(np.linalg.norm(nn @ t(nn) - t(nn) @ nn, axis=(-2, -1))) > 1e-3
    assert np.linalg.matrix_rank(dy.random_target(rng, (), 2, 4)) == 2


def test_resnet_start_reaches_the_matrix_root(rng):
    """Lemma 1 (ii) on one instance, as a regression test of the integrator."""
    T = dy.random_target(rng, (), 3, 3, "spd")
    run = dy.gradient_flow(dy.identity_init((3, 3, 3, 3)), ln.from_target(T, np.eye(3)), [0.0, 60.0])
    for W in run.final:
        np.testing.assert_allclose(W, fractional_matrix_power(T, 1 / 3).real, atol=1e-8)


# ------------------------------------------------------------------------------------------------------
# Section II helpers
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["spd", "non-normal positive"])
def test_matrix_power_agrees_with_scipy(kind, rng):
    T = dy.random_target(rng, (), 3, 3, kind)
    for p in (1 / 2, 1 / 3, 2 / 3):
        np.testing.assert_allclose(s2.matrix_power(T, p), fractional_matrix_power(T, p).real, atol=1e-12)


def test_clusters_group_equal_singular_values():
    groups = s2.clusters(np.array([2.0, 2.0, 1.0, 0.5, 0.5]))
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3, 4]]


@pytest.mark.parametrize("dims", SHAPES)
def test_balanced_networks_satisfy_s6_and_s7_with_aligned_svds(dims, rng):
    W = dy.balanced_init(dims, rng)
    assert s2.s6_residual(s2.s6_printed, W) < 1e-12
    assert s2.s7_residual(s2.s7_printed, W) < 1e-12
    svds = s2.aligned_svds(W)
    for Wi, s in zip(W, svds):
        np.testing.assert_allclose(s.U @ np.diag(s.s) @ s.V.T, Wi, atol=1e-12)


def test_s6_comparison_is_gauge_free_and_sees_unbalanced_layers(rng):
    W = dy.balanced_init((3, 3, 3), rng)
    left, right = s2.svd_nonzero(W[0]), s2.svd_nonzero(W[1])
    flipped = s2.SVD(-right.U, right.s, -right.V)  # the same SVD up to the sign gauge
    assert s2.correspondence_residual(s2.s6_printed(left, flipped)) < 1e-12
    W[1] = W[1] @ np.diag([1.0, 2.0, 1.0])
    assert s2.s6_residual(s2.s6_printed, W) > 0.1


def test_identity_start_with_repeated_singular_values_is_one_cluster():
    W = dy.identity_init((3, 3, 3))
    assert s2.s6_residual(s2.s6_printed, W) == 0.0
    assert s2.s7_residual(s2.s7_printed, W) < 1e-15


def test_predicted_rate_matches_a_scalar_flow():
    """w' = -2 w (w^2 - l) from w = 1 approaches sqrt(l) at the rate 2 m l^{2-2/m} = 4 l for m = 2."""
    l = 0.7
    run = dy.gradient_flow(dy.identity_init((1, 1, 1)), ln.from_target(np.array([[l]]), np.eye(1)), [0.0, 2.0, 3.0])
    err = np.abs(run.weights[0][1:, 0, 0] - np.sqrt(l))
    assert abs(np.log(err[0] / err[1]) / 1.0 - s2.predicted_rate(np.array([[l]]), 2)) < 0.02 * 4 * l


def test_flattest_value_at_a_balanced_limit_with_identity_sigma(rng):
    T = dy.random_target(rng, (), 2, 3)
    data = ln.from_target(T, np.eye(3))
    W0 = dy.orient(dy.balanced_init((3, 4, 2), rng), T)
    limit = dy.gradient_flow(W0, data, [0.0, 200.0], stop_gradient=1e-11).final
    assert abs(dy.hessian_lambda_max(limit, data) / lemma3.flattest_value(T, 2) - 1) < 1e-7


# ------------------------------------------------------------------------------------------------------
# The figure
# ------------------------------------------------------------------------------------------------------


def test_dynamics_figure_renders(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    from verify.context import PROFILES, Context
    from verify.figures import load

    fig = load()["gradient_flow.png"]
    path = tmp_path / fig.name
    summary = fig.render(Context(seed=0, profile=PROFILES["quick"]), path, {})
    assert path.exists() and path.stat().st_size > 0
    assert mpimg.imread(path).shape[:2] == (800, 1200)
    assert "Lemma 1" in fig.claims and summary.startswith("lambda_max")

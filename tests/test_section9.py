"""Unit tests of Section IX: (S104)-(S106), the greedy search, the Table S1 analogue and the figures."""

from __future__ import annotations

import numpy as np
import pytest

from proofs import flattest_search, minima
from proofs import section9_experiments as s9
from verify.checks import CHECKS
from verify.context import PROFILES, Context
from verify.evaluate import evaluate
from verify.model import Verdict

pytestmark = pytest.mark.section_IX

QUICK = Context(seed=0, profile=PROFILES["quick"], xp=np)


@pytest.mark.parametrize("dims", [(3, 3, 3), (2, 4, 3), (3, 5, 4, 2), (3, 1, 3)])
def test_library_random_minimum_is_the_printed_s104(dims):
    T = np.random.default_rng(1).standard_normal((dims[-1], dims[0]))
    if min(dims) < min(T.shape):
        T = np.outer(T[:, 0], T[0])  # rank one, so that a width-1 layer can carry it
    library = minima.random_minimum(T, dims, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    A = [rng.standard_normal((d, d)) for d in dims[1:-1]]
    printed = s9.s104_printed(*np.linalg.svd(T), A, dims)
    for W_lib, W_printed in zip(library, printed):
        np.testing.assert_allclose(W_lib, W_printed, rtol=1e-12, atol=1e-12)


def test_global_minimum_residual_separates_minima_from_other_points(rng):
    T = rng.standard_normal((2, 3))
    W = minima.random_minimum(T, (3, 4, 2), rng)
    R = minima.random_orthogonal(rng, (), 3) * 1.5
    assert s9.global_minimum_residual(W, T, R) < 1e-14
    W[0] = W[0] + 1e-3 * rng.standard_normal(W[0].shape)
    assert s9.global_minimum_residual(W, T, R) > 1e-6


def test_printed_s105_is_the_library_start(rng):
    T = rng.standard_normal((3, 3))
    library = flattest_search.start_s105(T, (3, 3, 3, 3), np.random.default_rng(4))
    again = np.random.default_rng(4)
    A = [again.standard_normal((3, 3)) for _ in range(3)]
    j = int(again.integers(0, 3)) + 1
    for W_lib, W_printed in zip(library, s9.s105_printed(A, T, j)):
        np.testing.assert_allclose(W_lib, W_printed, rtol=1e-10, atol=1e-12)


def test_printed_s106_is_the_library_step(rng):
    W = [rng.standard_normal(s) for s in ((4, 3), (5, 4), (2, 5))]
    library = flattest_search.step_s106(W, 0.3, np.random.default_rng(9))
    again = np.random.default_rng(9)
    A = [again.standard_normal((d, d)) for d in (4, 5)]
    for W_lib, W_printed in zip(library, s9.s106_printed(W, 0.3, A)):
        np.testing.assert_allclose(W_lib, W_printed, rtol=1e-12, atol=1e-12)


def test_greedy_search_makes_the_moves_of_the_library_search(rng):
    T = rng.standard_normal((2, 3))
    W, record, accepted_at = s9.greedy_search(T, (3, 4, 2), s9.PRINTED_RULE, np.random.default_rng(3))
    W_lib, record_lib = flattest_search.search(T, (3, 4, 2), np.eye(3), np.random.default_rng(3), rtol=s9.SEARCH_RTOL)
    assert (record.iterations, record.accepted, record.rejected) == (record_lib.iterations, record_lib.accepted,
                                                                    record_lib.rejected)
    np.testing.assert_allclose(record.history, record_lib.history, rtol=1e-12)
    assert len(accepted_at) == len(record.history) and accepted_at == sorted(accepted_at)


def test_a_search_that_accepts_increases_does_not_converge(rng):
    T = rng.standard_normal((2, 2))
    always = s9.SearchRule(s9.s106_printed, accept=lambda proposal, current: True)
    _, record, _ = s9.greedy_search(T, (2, 2, 2), always, np.random.default_rng(0), max_iterations=300)
    assert not record.converged


def test_s105_through_a_bottleneck_is_singular_even_when_square(rng):
    """(S105) with j = 1 on widths 4-4-2-4 inverts A_3 A_2, a 4 x 4 matrix of rank 2."""
    A = [rng.standard_normal((4, 4)), rng.standard_normal((2, 4)), rng.standard_normal((4, 2))]
    with pytest.raises(np.linalg.LinAlgError):
        s9.s105_printed(A, rng.standard_normal((4, 4)), 1)


def test_lemma2_lines_show_a_deceptive_minimum():
    from verify.figures import fig_experiments as fe

    data = fe.lemma2_lines(np.linspace(0, 1, 5))
    lam, loyal, deceptive = data["lambda_max"], data["lines"]["w2"], data["lines"]["w3"]
    assert loyal["curvature at w2"] > loyal["curvature at w1"] and lam["w2"] > lam["w1"]  # loyal
    assert deceptive["curvature at w3"] < deceptive["curvature at w1"] and lam["w3"] > lam["w1"]  # deceptive
    assert np.allclose(deceptive["loss"][[0, -1]], 0.0, atol=1e-14)  # both ends are global minima


@pytest.fixture(scope="module")
def quick_results():
    return {c.name: evaluate(c, QUICK) for label in ("S104", "S105", "S106") for c in CHECKS[label]}


def test_checks_reach_their_verdicts_and_reject_their_mutants(quick_results):
    for name, result in quick_results.items():
        expected = Verdict.CONDITIONAL if name == "s105_rectangular_widths" else Verdict.PASSED
        assert result.verdict is expected, (name, result.message)
        assert all(c.rejected for c in result.controls), name


def test_rectangular_s105_keeps_its_counterexample(quick_results):
    result = quick_results["s105_rectangular_widths"]
    assert result.counterexample["dims"] == [3, 4, 2]
    assert "undefined" in result.counterexample["outcome"]


# --- Table S1 (PyTorch) ------------------------------------------------------------------------------


@pytest.fixture
def table_s1():
    pytest.importorskip("torch")
    from proofs import table_s1

    return table_s1


def test_hvp_matches_the_dense_hessian(table_s1):
    check = table_s1.hvp_validation(0)
    assert check["hvp_relative_error"] < 1e-12 and check["lambda_max_relative_error"] < 1e-12


def test_gauss_newton_product_is_rejected_away_from_a_minimum(table_s1):
    assert table_s1.hvp_validation(0, table_s1.gauss_newton_operator)["hvp_relative_error"] > 1e-2


def test_batched_training_is_independent_training(table_s1):
    """The summed loss separates over runs and both optimisers act elementwise, so training runs as
    one batch equals training each run alone on the same mini-batches."""
    import torch

    setup = table_s1.Setup(n_train=300, n_val=10)
    data = table_s1.teacher_data(setup, 0)
    init = table_s1.init_params(setup.student_widths, table_s1.generator(1), runs=2)
    idx = torch.randint(0, 300, (5, 2, 100), generator=table_s1.generator(2))
    for method in table_s1.METHODS.values():
        both = [p.clone().requires_grad_(True) for p in init]
        alone = [p[:1].clone().requires_grad_(True) for p in init]
        for params, runs in ((both, slice(0, 2)), (alone, slice(0, 1))):
            opt = method.optimizer(params)
            for step in range(5):
                opt.zero_grad()
                batch = idx[step, runs]
                table_s1.loss_per_run(params, data.x_train[batch], data.y_train[batch]).sum().backward()
                opt.step()
        for p, q in zip(both, alone):
            torch.testing.assert_close(p[:1], q, rtol=1e-12, atol=1e-14)


def test_layer_properties_of_balanced_coupled_layers(table_s1):
    u = np.array([0.6, 0.8])
    W1 = 2 * np.outer(u, [1.0, 0, 0])
    W2 = 2 * np.outer([0.0, 1.0], u)
    props = table_s1.layer_properties([W1, W2])
    np.testing.assert_allclose(props["balance"], [1.0, 1.0])
    np.testing.assert_allclose(props["coupling_angle_deg"], [0.0], atol=1e-6)


@pytest.fixture
def tiny_experiment(table_s1, monkeypatch):
    monkeypatch.setitem(table_s1.SETUPS, "quick", table_s1.Setup(hidden=8, n_train=400, n_val=100, steps=60, seeds=2))
    experiment = table_s1.experiment  # the cached function, whatever a test patches in later
    experiment.cache_clear()
    yield experiment(11, "quick")
    experiment.cache_clear()


def test_experiment_measures_every_run(tiny_experiment):
    assert [r.method for r in tiny_experiment.runs] == ["SGD", "SGD", "Adam", "Adam"]
    for r in tiny_experiment.runs:
        assert r.lanczos_converged and np.isfinite([r.train_loss, r.val_loss, r.lambda_max]).all()
        assert len(r.layers["balance"]) == 3 and len(r.layers["coupling_angle_deg"]) == 2
    summary = tiny_experiment.summary()
    assert summary["SGD"]["2/eta"] == 4.0 and summary["Adam"]["lambda_max"]["printed (mean, std)"] == [12.9, 2.2]


# --- figures -----------------------------------------------------------------------------------------


def _render(name: str, tmp_path) -> str:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    from verify.figures import FIGURES, load

    load()
    path = tmp_path / name
    try:
        summary = FIGURES[name].render(QUICK, path, {})
    finally:
        plt.close("all")
    assert path.exists() and path.stat().st_size > 10_000
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (800, 1200) and image.std() > 0
    return summary


@pytest.mark.parametrize("name", ["s104_random_vs_flattest.png", "s106_search_convergence.png",
                                  "lemma2_connecting_lines.png"])
def test_figures_are_drawn(name, tmp_path):
    assert _render(name, tmp_path)


def test_table_s1_figure_is_drawn(tiny_experiment, tmp_path, monkeypatch):
    from proofs import table_s1

    monkeypatch.setattr(table_s1, "experiment", lambda seed, profile: tiny_experiment)
    assert "SGD" in _render("table_s1_analogue.png", tmp_path)

"""Unit tests of the deep-linear-network library (proofs.linear_network, lemma3,
hessian_reference, minima), on NumPy and on the strict Array-API namespace."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

from proofs import hessian_reference as hr
from proofs import lemma3
from proofs import linear_network as ln
from proofs import minima
from proofs.instances import Spec, realize

xs = pytest.importorskip("array_api_strict")

BACKENDS = {"numpy": np.asarray, "array_api_strict": xs.asarray}


@pytest.fixture(params=sorted(BACKENDS))
def to_xp(request):
    """Converts NumPy float arrays to the namespace under test."""
    return BACKENDS[request.param]


def np_(a) -> np.ndarray:
    return np.asarray(a)


def to_fraction(a: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(a)


def exact_minimum(spec: Spec) -> tuple[list, ln.Data]:
    """A global minimum in rationals: T := W_m...W_1 exactly, Sigma_x = R^2 with R symmetric."""
    W, data = realize(spec)
    Wf = [to_fraction(M) for M in W]
    R = to_fraction(data.Sigma_x_half)
    R = (R + R.T) / 2
    return Wf, ln.from_target(ln.end_to_end(Wf), R)


def random_weights(rng: np.random.Generator, dims, batch=()) -> list[np.ndarray]:
    return [rng.standard_normal((*batch, dims[k], dims[k - 1])) for k in range(1, len(dims))]


# --- products, vec, kron -------------------------------------------------------------------


def test_widths_and_shape_errors(to_xp, rng):
    W = [to_xp(M) for M in random_weights(rng, (2, 3, 4))]
    assert ln.widths(W) == (2, 3, 4)
    with pytest.raises(ln.ShapeError):
        ln.widths([W[1], W[0]])
    with pytest.raises(ln.ShapeError):
        ln.widths([])


def test_products_below_above(to_xp, rng):
    dims = (2, 3, 1, 4)
    Wn = random_weights(rng, dims, (5,))
    W = [to_xp(M) for M in Wn]
    assert np.allclose(np_(ln.end_to_end(W)), Wn[2] @ Wn[1] @ Wn[0])
    assert np.allclose(np_(ln.product(W, 2, 3)), Wn[2] @ Wn[1])
    assert np_(ln.product(W, 1, 0)).shape == (2, 2) and np.allclose(np_(ln.product(W, 4, 3)), np.eye(4))
    for k, (A, B) in enumerate(zip(ln.above(W), ln.below(W)), start=1):
        assert np.allclose(np_(A), np_(ln.product(W, k + 1, 3)))
        assert np.allclose(np_(B), np_(ln.product(W, 1, k - 1)))
        assert np.allclose(np_(A) @ Wn[k - 1] @ np_(B), Wn[2] @ Wn[1] @ Wn[0])


def test_vec_is_column_major_and_unvec_inverts_it(to_xp, rng):
    M = rng.standard_normal((3, 2, 4))
    v = np_(ln.vec(to_xp(M)))
    assert np.array_equal(v, np.stack([m.ravel(order="F") for m in M]))
    assert np.array_equal(np_(ln.unvec(to_xp(v), 2, 4)), M)


def test_kron_matches_numpy_and_the_vec_identity(to_xp, rng):
    A, B, C = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    assert np.array_equal(np_(ln.kron(to_xp(A), to_xp(B))), np.kron(A, B))
    batched = np_(ln.kron(to_xp(np.stack([A, 2 * A])), to_xp(B)))
    assert np.allclose(batched[1], 2 * np.kron(A, B))
    lhs = np_(ln.vec(to_xp(A @ B @ C)))                             # (P1)
    rhs = np.kron(C.T, A) @ B.ravel(order="F")
    assert np.allclose(lhs, rhs)


def test_flatten_unflatten_roundtrip(to_xp, rng):
    dims = (3, 1, 2)
    W = [to_xp(M) for M in random_weights(rng, dims, (4,))]
    w = ln.flatten(W)
    assert w.shape == (4, 3 + 2)
    assert all(np.array_equal(np_(a), np_(b)) for a, b in zip(ln.unflatten(w, dims), W))


# --- data, loss, gradient -----------------------------------------------------------------


def test_loss_from_samples_is_the_mean_squared_error(to_xp, rng):
    dims = (3, 2, 2)
    Wn = random_weights(rng, dims)
    X, Y = rng.standard_normal((3, 50)), rng.standard_normal((2, 50))
    data = ln.from_samples(to_xp(X), to_xp(Y))
    mse = np.mean(np.sum((Y - Wn[1] @ Wn[0] @ X) ** 2, axis=0))
    assert np.isclose(float(np_(ln.loss([to_xp(M) for M in Wn], data))), mse)
    assert np.allclose(np_(data.T) @ (X @ X.T), Y @ X.T)
    assert np.allclose(np_(data.Sigma_x_half) @ np_(data.Sigma_x_half), X @ X.T / 50)


def test_gradient_matches_central_differences_of_the_loss(to_xp, rng):
    dims = (2, 3, 2, 2)
    W = [to_xp(M) for M in random_weights(rng, dims, (3,))]
    data = ln.from_target(to_xp(rng.standard_normal((3, 2, 2))), to_xp(np.broadcast_to(np.eye(2), (3, 2, 2)).copy()))
    g = np_(ln.flatten(ln.gradient(W, data)))
    w = np_(ln.flatten(W))
    h = 1e-3  # the loss is quadratic in each single weight: central differences are exact up to rounding
    fd = np.stack([(np_(ln.loss(ln.unflatten(to_xp(w + h * e), dims), data))
                    - np_(ln.loss(ln.unflatten(to_xp(w - h * e), dims), data))) / (2 * h) for e in np.eye(w.shape[-1])],
                  axis=-1)
    assert np.allclose(g, fd, rtol=1e-8, atol=1e-8)


def test_minimum_has_zero_loss_and_gradient_exactly():
    W, data = exact_minimum(Spec((2, 3, 2), 2, "spd", "random (S104)", seed=4))
    assert ln.loss(W, data) == 0
    assert all(np.all(G == 0) for G in ln.gradient(W, data))


def test_spd_sqrt(rng):
    A = rng.standard_normal((4, 3, 3))
    S = A @ np.swapaxes(A, -1, -2) + np.eye(3)
    R = ln.spd_sqrt(S)
    assert np.allclose(R @ R, S) and np.allclose(R, np.swapaxes(R, -1, -2))
    with pytest.raises(ValueError):
        ln.spd_sqrt(-S)


# --- generators of global minima -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(minima.GENERATORS))
@pytest.mark.parametrize("dims, rank", [((3, 3, 3, 3), 3), ((2, 4, 3), 2), ((4, 2, 5, 3), 1), ((3, 1, 2), 1),
                                        ((2, 2), 2)])
def test_generators_multiply_to_T(kind, dims, rank, rng):
    T = rng.standard_normal((6, dims[-1], rank)) @ rng.standard_normal((6, rank, dims[0]))
    W = minima.GENERATORS[kind](T, dims, rng)
    assert ln.widths(W) == dims
    assert np.allclose(ln.end_to_end(W), T, atol=1e-9 * np.abs(T).max())


@pytest.mark.parametrize("kind", ["rotated flattest", "rebalanced flattest"])
def test_flattest_generators_share_the_top_singular_value(kind, rng):
    T = rng.standard_normal((5, 3, 3))
    W = minima.GENERATORS[kind](T, (3, 4, 3, 3), rng)
    top = np.linalg.norm(T, ord=2, axis=(-2, -1)) ** (1 / 3)
    for M in W:
        assert np.allclose(np.linalg.norm(M, ord=2, axis=(-2, -1)), top)


def test_width_error_when_a_hidden_layer_is_narrower_than_rank_T(rng):
    T = rng.standard_normal((3, 3))
    for kind, make in minima.GENERATORS.items():
        with pytest.raises(minima.WidthError):
            make(T, (3, 2, 3), rng)
    with pytest.raises(minima.WidthError):
        minima.canonical(T, (2, 3, 3))  # d_0 != d_x


# --- the closed form of Lemma 3 vs independent Hessians ------------------------------------


def test_closed_form_equals_sympy_hessian_exactly():
    for spec in (Spec((1, 2, 1), 1, "scaled", "random (S104)", seed=1), Spec((2, 1, 2), 1, "spd", "canonical", seed=2)):
        W, data = exact_minimum(spec)
        H = hr.sympy_hessian(W, data)
        assert H.tolist() == lemma3.hessian(W, data).tolist()


@pytest.mark.parametrize("dims, rank", [((2, 3, 2), 2), ((2, 2, 3), 2), ((3, 1, 2, 3), 1)])
def test_closed_form_equals_hyperdual_hessian_exactly(dims, rank):
    # d_y = 3 exercises the trace of 3 x 3 hyper-dual matrices (0-d object arrays in _trace)
    W, data = exact_minimum(Spec(dims, rank, "spd", "rotated flattest", seed=3))
    H = hr.hyperdual_hessian(W, data)
    assert all(isinstance(h, Fraction) for h in H.ravel())
    assert np.array_equal(H, lemma3.hessian(W, data))


def test_hyperdual_hessian_in_mpmath_agrees_to_many_digits():
    W, data = realize(Spec((2, 3, 2, 2), 2, "ill-conditioned", "random (S104)", seed=5))
    with mpmath.workdps(50):
        to = np.vectorize(mpmath.mpf, otypes=[object])
        Wm = [to(M) for M in W]
        R = to(data.Sigma_x_half)
        dm = ln.from_target(ln.end_to_end(Wm), (R + R.T) / 2)
        closed = lemma3.hessian(Wm, dm)
        diff = hr.hyperdual_hessian(Wm, dm) - closed
        assert max(abs(x) for x in diff.ravel()) < mpmath.mpf(10) ** -40 * max(abs(x) for x in closed.ravel())


def test_independent_hessians_agree_off_the_minimum_and_the_closed_form_does_not(rng):
    W, data = exact_minimum(Spec((1, 2, 1), 1, "identity", "canonical", seed=6))
    moved = [M + to_fraction(np.round(rng.standard_normal(M.shape), 2)) for M in W]
    H = hr.hyperdual_hessian(moved, data)
    assert H.tolist() == hr.sympy_hessian(moved, data).tolist()
    assert not np.array_equal(H, lemma3.hessian(moved, data))


def test_closed_form_matches_finite_differences(to_xp):
    for spec in (Spec((3, 2, 4, 2), 2, "ill-conditioned", "rebalanced flattest", seed=7),
                 Spec((2, 2), 1, "scaled", "canonical", seed=8)):
        W, data = realize(spec, batch=4)
        Wx = [to_xp(M) for M in W]
        dx = ln.from_target(to_xp(ln.end_to_end(W)), to_xp(data.Sigma_x_half))
        H, Hc = np_(hr.finite_difference_hessian(Wx, dx)), np_(lemma3.hessian(Wx, dx))
        assert np.max(np.abs(H - Hc)) <= 1e-7 * np.max(np.abs(H))


def test_hyperdual_division_by_a_scalar_and_zero_dim_arrays():
    x = hr.HyperDual(Fraction(3), Fraction(1), Fraction(2), Fraction(3)) / 3
    assert (x.a, x.b, x.c, x.d) == (1, Fraction(1, 3), Fraction(2, 3), 1)
    y = hr.HyperDual(Fraction(1)) + np.array(hr.HyperDual(Fraction(2), 1), dtype=object)
    assert isinstance(y.a, Fraction) and y.b == 1


# --- the small operator 2 Phi^T Phi --------------------------------------------------------


def test_small_operator_has_the_nonzero_spectrum_of_H(to_xp):
    W, data = realize(Spec((3, 4, 2, 2), 2, "spd", "random (S104)", seed=9), batch=3)
    Wx = [to_xp(M) for M in W]
    dx = ln.from_target(to_xp(ln.end_to_end(W)), to_xp(data.Sigma_x_half))
    big = np.linalg.eigvalsh(np_(lemma3.hessian(Wx, dx)))
    small = np_(xs_or_np_eigvalsh(lemma3.small_operator(Wx, dx)))
    assert np.allclose(big[:, -small.shape[-1]:], small, atol=1e-9 * big.max())
    assert np.allclose(big[:, :-small.shape[-1]], 0, atol=1e-9 * big.max())


def xs_or_np_eigvalsh(A):
    return ln.namespace(A).linalg.eigvalsh(A)


def test_matrix_free_operator_matches_the_dense_small_operator(to_xp, rng):
    W, data = realize(Spec((3, 2, 4), 2, "ill-conditioned", "rotated flattest", seed=10))
    op = lemma3.small_linear_operator(W, data)
    dense = lemma3.small_operator(W, data)
    B = rng.standard_normal((12, 5))
    assert np.allclose(op.matmat(B), dense @ B)
    P, Q = lemma3.small_factors([to_xp(M) for M in W],
                                ln.from_target(to_xp(data.T), to_xp(data.Sigma_x_half)))
    assert np.allclose(np_(lemma3.apply_small(P, Q, to_xp(B.T))), (dense @ B).T)


def test_top_eigenpair_is_an_eigenpair_of_H(to_xp):
    W, data = realize(Spec((2, 3, 3, 2), 2, "spd", "canonical", seed=11), batch=3)
    Wx = [to_xp(M) for M in W]
    dx = ln.from_target(to_xp(ln.end_to_end(W)), to_xp(data.Sigma_x_half))
    lam, h = (np_(a) for a in lemma3.top_eigenpair(Wx, dx))
    H = np_(lemma3.hessian(Wx, dx))
    assert np.allclose(np.einsum("bij,bj->bi", H, h), lam[:, None] * h, atol=1e-9 * lam.max())
    assert np.allclose(lam, np.linalg.eigvalsh(H)[:, -1])
    assert np.allclose(np_(lemma3.lambda_max(Wx, dx)), lam)


def test_rebalanced_flattest_keeps_every_top_singular_value_for_small_rank_deficient_targets():
    rng = np.random.default_rng(7)
    for _ in range(200):
        T = 0.1 * rng.standard_normal((3, 2)) @ rng.standard_normal((2, 3))  # rank 2, sigma_max < 1
        W = minima.rebalanced_flattest(T, (3, 4, 3, 3), rng)
        top = np.linalg.norm(T, 2) ** (1 / 3)
        assert all(abs(np.linalg.norm(w, 2) / top - 1) < 1e-9 for w in W)
        np.testing.assert_allclose(ln.end_to_end(W), T, atol=1e-12)

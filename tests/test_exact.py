from fractions import Fraction

import mpmath
import numpy as np
import pytest

from proofs import exact


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_inverse_is_exact_over_fractions(rng):
    M = np.vectorize(Fraction, otypes=[object])(rng.standard_normal((3, 3)))
    assert np.array_equal(M @ exact.inverse(M), np.eye(3, dtype=object))


def test_inverse_over_mpf_is_accurate_to_the_working_precision(rng):
    with mpmath.workdps(50):
        M = np.vectorize(mpmath.mpf, otypes=[object])(rng.standard_normal((4, 4)))
        residual = M @ exact.inverse(M) - np.eye(4, dtype=int)
        assert max(abs(x) for x in residual.flat) < mpmath.mpf(10) ** -45


def test_inverse_refuses_a_singular_matrix():
    with pytest.raises(ValueError, match="singular"):
        exact.inverse(exact.fractions([[1, 2], [2, 4]]))


def test_rational_orthogonal_is_exact(rng):
    Q = exact.rational_orthogonal(rng, 3)
    assert all(isinstance(x, Fraction) for x in Q.flat)
    assert (Q @ Q.T == exact.identity(3)).all()

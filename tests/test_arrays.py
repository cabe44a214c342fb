import array_api_strict as xs
import numpy as np
import pytest

from verify import arrays


def test_round_trip_through_strict_namespace():
    a = np.arange(6.0).reshape(2, 3)
    b = arrays.to_backend(xs, [a, None][0])
    assert not isinstance(b, np.ndarray)
    assert np.array_equal(arrays.to_numpy(b), a)
    assert arrays.to_backend(xs, None) is None
    pair = arrays.to_backend(xs, (a, a))
    assert isinstance(pair, tuple) and len(pair) == 2


def test_chunks_cover_total_and_respect_limit():
    sizes = list(arrays.chunk_sizes(1001, per_instance_numbers=10, limit=100))
    assert sum(sizes) == 1001 and max(sizes) == 10
    assert len(sizes) == arrays.n_chunks(1001, 10, limit=100)
    assert list(arrays.chunk_sizes(5, per_instance_numbers=10**9, limit=100)) == [1] * 5
    assert list(arrays.chunk_sizes(0, 3)) == []


def test_chunks_reject_nonsense():
    with pytest.raises(ValueError):
        list(arrays.chunk_sizes(-1, 3))

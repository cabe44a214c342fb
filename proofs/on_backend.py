"""Run a batched float computation on the check's array backend, chunk by chunk.

Instances are drawn on the host with NumPy (a seed means the same instances on every backend);
:func:`map_chunks` cuts them along the leading batch axis into chunks of bounded size
(``verify.arrays.chunk_sizes``), sends each chunk to ``ctx.xp``, applies the computation there
and brings the per-instance results back as NumPy arrays.

>>> import numpy as np
>>> import array_api_strict
>>> from verify.context import Context
>>> ctx = Context(xp=array_api_strict)
>>> map_chunks(ctx, lambda a, b: a * b, (np.arange(3.0), np.full(3, 2.0)))
array([0., 2., 4.])
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from verify.arrays import chunk_sizes, to_backend, to_numpy
from verify.context import Context

#: Working arrays a typical computation holds per input number (products, eigenvectors, copies).
EXPANSION = 8


def _host(result: Any, size: int) -> np.ndarray:
    """A per-instance result on the host; a number or 0-d array (a quantity that does not depend on
    the instance, e.g. an empty product) is repeated for each of the ``size`` instances."""
    if isinstance(result, (int, float, np.generic)):
        return np.full(size, result, dtype=float)
    host = to_numpy(result)
    return np.full(size, host[()]) if host.ndim == 0 else host


def map_chunks(ctx: Context, fn: Callable[..., Any], arrays: Sequence[np.ndarray], expansion: int = EXPANSION) -> Any:
    """``fn(*chunk)`` on ``ctx.xp`` for consecutive chunks of ``arrays`` (equal leading batch axis),
    the results (an array or a tuple of arrays, leading batch axis) concatenated on the host.

    Without a backend namespace (``ctx.xp`` None, e.g. a check called directly) it runs on NumPy."""
    total = arrays[0].shape[0]
    if any(a.shape[0] != total for a in arrays):
        raise ValueError("map_chunks needs arrays with the same leading batch size")
    per_instance = max(1, expansion * sum(int(np.prod(a.shape[1:], dtype=int)) for a in arrays))
    pieces: list[Any] = []
    start = 0
    for size in chunk_sizes(total, per_instance):
        chunk = [to_backend(ctx.xp, a[start:start + size]) for a in arrays]
        out = fn(*chunk)
        pieces.append(tuple(_host(o, size) for o in out) if isinstance(out, tuple) else _host(out, size))
        start += size
    if not pieces:
        raise ValueError("map_chunks needs at least one instance")
    if isinstance(pieces[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*pieces))
    return np.concatenate(pieces)

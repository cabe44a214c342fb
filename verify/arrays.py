"""Moving float64 batches between NumPy and the selected array backend, in bounded chunks.

Instances are drawn on the host with NumPy generators (so a seed means the same instances on
every backend), sent to the backend namespace ``ctx.xp`` for the heavy algebra, and only the
per-instance residuals come back.  Large batches are cut into chunks so that memory stays
bounded however many instances a profile asks for.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

#: float64 numbers one chunk may hold across all of its arrays (~256 MiB).
CHUNK_NUMBERS = 32 * 2**20


def to_backend(xp: Any, a: Any) -> Any:
    """``a`` (NumPy array, list/tuple of arrays, or None) as arrays of namespace ``xp``."""
    if a is None or xp is None:
        return a
    if isinstance(a, (list, tuple)):
        return type(a)(to_backend(xp, x) for x in a)
    return xp.asarray(a)


def to_numpy(a: Any) -> np.ndarray:
    """A backend array as a NumPy array on the host (CuPy copies from the device)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if callable(get):  # cupy.ndarray
        return get()
    return np.from_dlpack(a)


def chunk_sizes(total: int, per_instance_numbers: int, limit: int = CHUNK_NUMBERS) -> Iterator[int]:
    """Batch sizes summing to ``total``, each holding at most ``limit`` float64 numbers
    (at least one instance per chunk)."""
    if total < 0 or per_instance_numbers <= 0:
        raise ValueError("chunk_sizes needs total >= 0 and a positive size per instance")
    size = max(1, limit // per_instance_numbers)
    for start in range(0, total, size):
        yield min(size, total - start)


def n_chunks(total: int, per_instance_numbers: int, limit: int = CHUNK_NUMBERS) -> int:
    return math.ceil(total / max(1, limit // per_instance_numbers)) if total else 0

"""Helpers that turn compared numbers into a :class:`Measurement`."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .model import Measurement

FLOAT64_REASON = "float64 rounding: a few hundred ulps of relative error after O(m) products"


def relative_residuals(value: Any, reference: Any, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """|value - reference| / max(|reference|, tiny), reduced by max over ``axis``
    (all but the leading batch axis by default)."""
    v = np.asarray(value, dtype=float)
    r = np.asarray(reference, dtype=float)
    err = np.abs(v - r)
    scale = np.maximum(np.abs(r), np.finfo(float).tiny)
    if v.ndim <= 1:
        return err / np.maximum(scale, 1e-300)
    axes = axis if axis is not None else tuple(range(1, v.ndim))
    return np.max(err, axis=axes) / np.maximum(np.max(scale, axis=axes), 1e-300)


def batch_measurement(
    residuals: np.ndarray,
    tolerance: float,
    tolerance_reason: str,
    shapes: Sequence[str],
    instance: Callable[[int], Mapping[str, Any]],
    **details: Any,
) -> Measurement:
    """The worst of a batch of per-instance residuals; ``instance(i)`` gives the
    replayable data of instance ``i``, kept as the counterexample when it fails."""
    residuals = np.asarray(residuals, dtype=float)
    bad = ~np.isfinite(residuals)
    worst = int(np.argmax(np.where(bad, np.inf, residuals)))
    residual = float("inf") if bad.any() else float(residuals[worst])
    failing = bad.any() or residual > tolerance
    return Measurement(
        residual=residual,
        tolerance=tolerance,
        tolerance_reason=tolerance_reason,
        instances=int(residuals.size),
        shapes=list(shapes),
        counterexample=dict(instance(worst)) if failing else None,
        details=details,
    )


def to_jsonable(x: Any) -> Any:
    """Numbers and arrays as plain JSON values, exactly enough to replay them;
    JSON has no inf or nan, so those become the strings "inf", "-inf", "nan"."""
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        return to_jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (int, float, str, bool)) or x is None:
        return x
    return str(x)

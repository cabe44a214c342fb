"""Timing with repetitions: the median of several runs of the same computation."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

#: a run at least this long is not repeated (its noise is small next to its length)
REPEAT_BELOW_S = 10.0


@dataclass
class Timed:
    seconds: float  # median over the runs
    runs: int
    value: Any  # what the last run returned


def timed(fn: Callable[[], Any], repeats: int = 3) -> Timed:
    """Run ``fn`` once, then again up to ``repeats`` runs in all while a run takes under
    REPEAT_BELOW_S; report the median time."""
    times = []
    value = None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
        if times[0] >= REPEAT_BELOW_S:
            break
    return Timed(statistics.median(times), len(times), value)

"""Property-based search for counterexamples with hypothesis.

``search(ctx, strategy, residual, tolerance, reason)`` draws examples from
``strategy``, evaluates ``residual(example)`` and reports the worst one; when
some example exceeds ``tolerance`` hypothesis shrinks it and the minimal one
is kept as the counterexample. The search is seeded from (seed, check).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .context import Context
from .measure import to_jsonable
from .model import Measurement

settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=False)
settings.register_profile("thorough", max_examples=2000, deadline=None, database=None, print_blob=False)


def check_settings(ctx: Context) -> settings:
    return settings(
        max_examples=ctx.profile.examples,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=False,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


@contextmanager
def _without_local_constants() -> Iterator[None]:
    """Hypothesis seeds its draws with numeric literals collected from every "local" module that
    happens to be imported (any file outside site-packages). That makes the examples of a seeded
    search depend on what else is loaded -- the test modules under pytest, an editable versus a
    regular install, a worker process versus the main one. Searches here use only hypothesis's
    global constants, so a seed gives the same examples everywhere."""
    try:
        from hypothesis.internal.conjecture import providers  # noqa: PLC0415
    except ImportError:  # a hypothesis without the mechanism has nothing to neutralise
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if original is None or cache is None or not hasattr(providers, "Constants"):
        yield
        return
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    cache.clear()  # pools cached before may hold local constants
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.clear()


class _Violation(AssertionError):
    pass


def search(
    ctx: Context,
    strategy: st.SearchStrategy,
    residual: Callable[[Any], float],
    tolerance: float,
    tolerance_reason: str,
    shape: Callable[[Any], str] = lambda ex: "",
) -> Measurement:
    worst = {"residual": 0.0, "example": None}
    shapes: set[str] = set()
    count = 0
    failing: dict[str, Any] = {}

    @seed(ctx.check_seed)
    @check_settings(ctx)
    @given(strategy)
    def probe(example: Any) -> None:
        nonlocal count
        count += 1
        r = float(residual(example))
        s = shape(example)
        if s:
            shapes.add(s)
        if not r <= tolerance:  # NaN counts as a violation
            failing["example"], failing["residual"] = example, r
            raise _Violation
        if r > worst["residual"]:
            worst["residual"], worst["example"] = r, example

    try:
        with _without_local_constants():
            probe()
    except _Violation:
        pass
    if failing:
        return Measurement(
            residual=failing["residual"],
            tolerance=tolerance,
            tolerance_reason=tolerance_reason,
            instances=count,
            shapes=sorted(shapes),
            counterexample={"example": to_jsonable(failing["example"])},
        )
    return Measurement(
        residual=worst["residual"],
        tolerance=tolerance,
        tolerance_reason=tolerance_reason,
        instances=count,
        shapes=sorted(shapes),
        details={"worst_example": to_jsonable(worst["example"])},
    )

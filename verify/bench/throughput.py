"""Instances verified per second: one batched call against a Python loop of the same verification.

Two verifications from ``proofs.batched_checks``, at small shapes (depth m = 2..4, square width
d = 2..4):

- Lemma 3 at random S104 minima with an SPD Sigma_x: v^T H v of the loss (truncated matrix
  polynomials, independent of Phi) against 2 ||Phi^T v||^2 for random directions v;
- Theorem 2 at flattest minima (rebalanced and rotated, Sigma_x = I): the gains sigma^{k/m}, v a
  singular vector of W_k...W_1 and the coupling (S73). That the instances are flattest (the
  premise, lambda_max(H) = 2m sigma^{2(1-1/m)}) is checked on the whole batch, untimed.

Instances are drawn once (not timed); the batched call verifies all of them, the loop calls the
same function on one instance at a time for the first ``loop`` of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from proofs import batched_checks, instances, minima
from proofs import linear_network as ln

from .render import Section, number
from .timing import timed

SHAPES = tuple((m, d) for m in (2, 3, 4) for d in (2, 3, 4))
TOLERANCE = 1e-11
TOLERANCE_REASON = "float64 at widths <= 4: about 5e4 ulps of margin over the rounding seen"
TARGET = 50.0


@dataclass
class Problem:
    """Everything one verification call needs; ``args`` are batched along axis 0. ``premise``:
    per-instance residuals of what the instances must satisfy for the claim to apply (or None)."""

    verify: Callable[..., Any]
    args: tuple
    premise: Any = None

    def one(self, i: int) -> tuple:
        return tuple(_take(a, i) for a in self.args)


def _take(a: Any, i: int) -> Any:
    if isinstance(a, ln.Data):
        return ln.Data(*(_take(getattr(a, f), i) for f in ("Sigma_x", "Sigma_yx", "T", "Sigma_x_half", "y2")))
    if isinstance(a, list):
        return [x[i] for x in a]
    return a[i]


def _lemma3(rng: np.random.Generator, m: int, d: int, n: int, directions: int) -> Problem:
    dims = (d,) * (m + 1)
    T = rng.standard_normal((n, d, d))
    weights = minima.random_minimum(T, dims, rng)
    data = ln.from_target(T, instances.random_sigma_half(rng, (n,), d, "spd"))
    V = batched_checks.random_directions(rng, dims, (n,), directions)
    return Problem(batched_checks.lemma3_residuals, (weights, data, V))


def _theorem2(rng: np.random.Generator, m: int, d: int, n: int, directions: int) -> Problem:
    T = rng.standard_normal((n, d, d))
    weights = minima.rebalanced_flattest(T, (d,) * (m + 1), rng)
    return Problem(lambda W: batched_checks.worst(batched_checks.theorem2_residuals(W)), (weights,),
                   batched_checks.flattest_premise(weights))


CLAIMS: dict[str, Callable[[np.random.Generator, int, int, int, int], Problem]] = {
    "Lemma 3": _lemma3,
    "Theorem 2": _theorem2,
}


@dataclass
class Row:
    claim: str
    m: int
    d: int
    batch: int
    looped: int
    batched_per_s: float
    looped_per_s: float
    speedup: float
    max_residual: float
    verified: int  # instances whose residual (and premise residual) is within TOLERANCE
    premise_residual: float | None


def measure_one(claim: str, m: int, d: int, batch: int, loop: int, directions: int, repeats: int, seed: int) -> Row:
    problem = CLAIMS[claim](np.random.default_rng([seed, m, d, list(CLAIMS).index(claim)]), m, d, batch, directions)
    fast = timed(lambda: problem.verify(*problem.args), repeats)
    count = min(loop, batch)
    slow = timed(lambda: [problem.verify(*problem.one(i)) for i in range(count)], repeats)
    residuals = np.asarray(fast.value)
    looped_residuals = np.asarray([float(r) for r in slow.value])
    if not np.allclose(looped_residuals, residuals[:count], rtol=1e-6, atol=1e-15):
        raise RuntimeError(f"{claim} m={m} d={d}: the loop and the batch give different residuals")
    batched_rate, looped_rate = batch / fast.seconds, count / slow.seconds
    premise = np.zeros_like(residuals) if problem.premise is None else np.asarray(problem.premise)
    verified = int(np.sum((residuals <= TOLERANCE) & (premise <= TOLERANCE)))
    return Row(claim, m, d, batch, count, batched_rate, looped_rate, batched_rate / looped_rate,
               float(residuals.max()), verified, None if problem.premise is None else float(premise.max()))


def run(batch: int = 4096, loop: int = 256, directions: int = 2, repeats: int = 3, seed: int = 0,
        shapes: Sequence[tuple[int, int]] = SHAPES, progress: Callable[[str], None] = lambda s: None) -> Section:
    rows = []
    for claim in CLAIMS:
        for m, d in shapes:
            progress(f"{claim} m={m} d={d}")
            rows.append(measure_one(claim, m, d, batch, loop, directions, repeats, seed))
    worst = min(rows, key=lambda r: r.speedup)
    met = all(r.speedup >= TARGET for r in rows)
    below = [f"{r.claim} m={r.m} d={r.d} ({r.speedup:.0f}x)" for r in rows if r.speedup < TARGET]
    notes = [f"target {'met' if met else 'NOT met'}: batched >= {TARGET:.0f}x the looped rate (lowest "
             f"{worst.speedup:.0f}x at {worst.claim} m={worst.m} d={worst.d}"
             + (f"; below it: {', '.join(below)}" if below else "") + ")",
             f"all instances verified: {all(r.verified == r.batch for r in rows)} (residual <= {TOLERANCE:.0e}: "
             f"{TOLERANCE_REASON}); Lemma 3 uses {directions} random directions per instance; Theorem 2's "
             f"premise (flattest: lambda_max = 2m sigma^(2(1-1/m))) holds to "
             f"{max(r.premise_residual for r in rows if r.premise_residual is not None):.1e}, checked untimed.",
             "rates: instances / median seconds of repeated runs; instance generation is not timed; the loop "
             "calls the same function on unbatched arrays."]
    cells = [[r.claim, str(r.m), str(r.d), str(r.batch), number(r.batched_per_s, ",.0f"), number(r.looped_per_s, ",.0f"),
              f"{r.speedup:.0f}", number(r.max_residual, ".1e"), f"{r.verified}/{r.batch}"] for r in rows]
    return Section("throughput", "Throughput: instances verified per second, batched against a Python loop",
                   ["claim", "m", "d", "batch", "batched /s", "looped /s", "speed-up", "max residual", "verified"],
                   cells, notes, {"rows": [asdict(r) for r in rows], "target": TARGET, "met": met,
                                  "tolerance": TOLERANCE, "directions": directions},
                   frozenset({"m", "d", "batch", "batched /s", "looped /s", "speed-up", "max residual"}))

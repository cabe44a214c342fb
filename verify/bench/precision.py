"""High precision: seconds per instance to verify Lemma 3 at many digits, mpmath against python-flint.

The same instance for both libraries: float64 weights W_1..W_m and a symmetric Sigma_x^{1/2} = R
(their binary values taken exactly), T = W_m ... W_1 and Sigma_yx = T Sigma_x computed at the
working precision, so w is a global minimum up to that precision. Each library computes the
Hessian twice, by Lemma 3 (2 Phi Phi^T) and independently of it, and compares:

- mpmath (NumPy object arrays of mpf): ``lemma3.hessian`` and the hyper-dual Hessian of the loss
  (``proofs.hessian_reference.hyperdual_hessian``);
- python-flint ``arb_mat`` (``proofs.arb_lemma3``): 2 Phi Phi^T and the jet bilinear form of the
  loss, as balls; the residual is an upper bound and every entry of the difference must contain 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import mpmath
import numpy as np

from proofs import arb_lemma3, hessian_reference, lemma3
from proofs import linear_network as ln

from .render import Section, number, seconds
from .timing import timed

MPMATH, FLINT = "mpmath (object arrays)", "python-flint (arb_mat)"


@dataclass
class Row:
    digits: int
    library: str
    instances: int
    phi_seconds: float | None = None  # per instance, median
    reference_seconds: float | None = None
    total_seconds: float | None = None
    ratio: float | None = None  # total over python-flint's total
    residual: float | None = None  # max |H_phi - H_ref| / max |H_ref| over the instances
    note: str = ""


def instance(rng: np.random.Generator, m: int, d: int) -> tuple[list[np.ndarray], np.ndarray]:
    weights = [rng.standard_normal((d, d)) for _ in range(m)]
    G = rng.standard_normal((d, d))
    return weights, np.eye(d) + 0.1 * (G + G.T)  # symmetric, diagonally dominant enough to be SPD


def _mpmath_route(weights: Sequence[np.ndarray], R: np.ndarray, dps: int) -> tuple[Callable, Callable, Callable]:
    mpf = np.vectorize(mpmath.mpf, otypes=[object])
    with mpmath.workdps(dps):
        W = [mpf(w) for w in weights]
        data = ln.from_target(ln.end_to_end(W), mpf(R))

    def residual(a: np.ndarray, b: np.ndarray) -> tuple[float, dict[str, Any]]:
        with mpmath.workdps(dps):
            return float(max(abs(x) for x in (a - b).ravel()) / max(abs(x) for x in b.ravel())), {}

    return (lambda: lemma3.hessian(W, data)), (lambda: hessian_reference.hyperdual_hessian(W, data)), residual


def _flint_route(weights: Sequence[np.ndarray], R: np.ndarray, dps: int) -> tuple[Callable, Callable, Callable]:
    with arb_lemma3.digits(dps):
        W = [arb_lemma3.to_arb(w) for w in weights]
        data = arb_lemma3.data_from_target(arb_lemma3.product(W, 1, len(W), R.shape[0]), arb_lemma3.to_arb(R))

    def residual(a: Any, b: Any) -> tuple[float, dict[str, Any]]:
        bound, radius, contains = arb_lemma3.discrepancy(a, b)
        return bound, {"contains": contains, "radius": radius}

    return (lambda: arb_lemma3.hessian_phi(W, data)), (lambda: arb_lemma3.hessian_jets(W, data)), residual


ROUTES = {MPMATH: (_mpmath_route, mpmath.workdps, lambda: True),
          FLINT: (_flint_route, arb_lemma3.digits, arb_lemma3.available)}


def _ball_note(balls: Sequence[dict[str, Any]]) -> str:
    """For ball arithmetic, over all instances: does every entry of every difference contain 0, and
    the largest radius."""
    if not balls or not all(balls):
        return ""
    contains = all(b["contains"] for b in balls)
    return f"0 in every entry of every difference: {contains}; largest radius {max(b['radius'] for b in balls):.1e}"


def measure(m: int, d: int, digits: Sequence[int], count: int, repeats: int, seed: int,
            progress: Callable[[str], None]) -> list[Row]:
    rows = []
    for dps in digits:
        group = []
        for name, (route, precision, available) in ROUTES.items():
            row = Row(dps, name, count)
            if not available():
                row.note = "skipped: python-flint is not installed"
                group.append(row)
                continue
            phi_t, ref_t, residuals, notes = [], [], [], []
            for i in range(count):
                progress(f"{dps} digits, {name}, instance {i + 1}/{count}")
                weights, R = instance(np.random.default_rng([seed, m, d, i]), m, d)
                phi, reference, compare = route(weights, R, dps)
                with precision(dps):
                    a, b = timed(phi, repeats), timed(reference, repeats)
                    residual, note = compare(a.value, b.value)
                phi_t.append(a.seconds)
                ref_t.append(b.seconds)
                residuals.append(residual)
                notes.append(note)
            row.phi_seconds, row.reference_seconds = float(np.median(phi_t)), float(np.median(ref_t))
            row.total_seconds = row.phi_seconds + row.reference_seconds
            row.residual = max(residuals)
            row.note = _ball_note(notes)
            group.append(row)
        fastest = next((r for r in group if r.library == FLINT and r.total_seconds), None)
        for r in group:
            if fastest is not None and r.total_seconds is not None:
                r.ratio = r.total_seconds / fastest.total_seconds
        rows += group
    return rows


def run(m: int = 3, d: int = 4, digits: Sequence[int] = (50, 100), count: int = 2, repeats: int = 3, seed: int = 0,
        progress: Callable[[str], None] = lambda s: None) -> Section:
    rows = measure(m, d, digits, count, repeats, seed, progress)
    cells = [[str(r.digits), r.library, seconds(r.phi_seconds), seconds(r.reference_seconds), seconds(r.total_seconds),
              number(r.ratio, ".3g"), number(r.residual, ".1e"), r.note] for r in rows]
    notes = [f"Lemma 3 at m = {m}, d = {d} (N = {m * d * d} weights, SPD Sigma_x), {rows[0].instances if rows else 0} "
             "instance(s); seconds per instance (median of repeated runs, a run of 10 s or more not repeated); "
             "x flint: total over python-flint's total.",
             "residual: max |H_Lemma3 - H_reference| / max |H_reference|; for arb an upper bound from the balls."]
    return Section("precision", f"High precision: Lemma 3 at m = {m}, d = {d}, mpmath against python-flint",
                   ["digits", "library", "2 Phi Phi^T s", "reference s", "total s", "x flint", "residual", "note"],
                   cells, notes, {"m": m, "d": d, "rows": [asdict(r) for r in rows]},
                   frozenset({"digits", "2 Phi Phi^T s", "reference s", "total s", "x flint", "residual"}))


"""``verify bench``: lambda_max of the Hessian at global minima, method against method.

For each depth m, square width d and kind of minimum (canonical flattest, random
S104), on the same instance, the routes to lambda_max(H) are timed side by side:

- full Hessian, dense: eigvalsh of H = 2 Phi Phi^T (N x N, N = m d^2);
- small operator, dense: eigvalsh of 2 Phi^T Phi = 2 sum_k Q_k (x) P_k (d^2 x d^2);
- small operator, matrix-free, scipy ``eigsh`` (ARPACK, random start);
- small operator, matrix-free Lanczos with full reorthogonalisation from a
  rank-one start, stopped on a residual bound (``proofs.lemma3.lambda_max_matrix_free``).

Relative error is against the closed form 2m sigma_max(T)^{2(1-1/m)} at canonical
minima (Sigma_x = I), and against the residual-bounded Lanczos value elsewhere.
A method is skipped, and says so, when its predicted time or memory exceeds the limits.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.sparse.linalg import eigsh

from proofs import lemma3, minima
from proofs import linear_network as ln

GIB = 2**30


@dataclass
class Row:
    m: int
    d: int
    minimum: str
    method: str
    seconds: float | None = None
    value: float | None = None
    rel_error: float | None = None
    ratio: float | None = None
    note: str = ""


@dataclass
class Limits:
    seconds: float = 60.0
    bytes: float = 8 * GIB
    eig_rate: float = field(default=0.0)  # seconds per (1000^3) for dense eigvalsh, measured

    def calibrate(self) -> None:
        a = np.random.default_rng(0).standard_normal((800, 800))
        t = time.perf_counter()
        np.linalg.eigvalsh(a + a.T)
        self.eig_rate = (time.perf_counter() - t) / 0.8**3


def _dense_full(weights, data):
    return float(np.linalg.eigvalsh(lemma3.hessian(weights, data))[-1]), ""


def _dense_small(weights, data):
    P, Q = lemma3.small_factors(weights, data)
    return float(np.linalg.eigvalsh(lemma3.small_operator_from_factors(P, Q))[-1]), ""


def _eigsh(weights, data):
    op = lemma3.small_linear_operator(weights, data)
    v0 = np.random.default_rng(0).standard_normal(op.shape[0])
    return float(eigsh(op, k=1, which="LA", v0=v0, return_eigenvectors=False)[0]), "ARPACK, tol=0"


def _lanczos(weights, data):
    r = lemma3.lambda_max_matrix_free(weights, data, rtol=1e-13)
    return r.value, f"{r.matvecs} matvecs; rel. residual {r.residual / r.value:.0e}, bound {r.bound / r.value:.0e}"


METHODS: dict[str, tuple[Callable, Callable[[int, int, Limits], tuple[float, float]]]] = {
    # name: (run, predict(m, d) -> (seconds, bytes))
    "full Hessian, dense": (_dense_full, lambda m, d, L: (L.eig_rate * (m * d * d / 1000) ** 3, 3 * 8.0 * (m * d * d) ** 2)),
    "small operator, dense": (_dense_small, lambda m, d, L: (L.eig_rate * (d * d / 1000) ** 3, 3 * 8.0 * d**4)),
    "small operator, eigsh": (_eigsh, lambda m, d, L: (0.0, 40 * 8.0 * d * d)),
    "small operator, Lanczos": (_lanczos, lambda m, d, L: (0.0, 310 * 8.0 * d * d)),
}
FASTEST = "small operator, Lanczos"


def instance(m: int, d: int, kind: str, seed: int) -> tuple[list[np.ndarray], ln.Data, float | None]:
    rng = np.random.default_rng([seed, m, d])
    T = rng.standard_normal((d, d))
    weights = minima.GENERATORS[kind](T, (d,) * (m + 1), rng)
    data = ln.from_target(T, np.eye(d))
    exact = float(lemma3.flattest_value(T, m)) if kind == "canonical" else None
    return weights, data, exact


def run(depths: Sequence[int], sizes: Sequence[int], kinds: Sequence[str], limits: Limits, seed: int = 0,
        progress: Callable[[str], None] = lambda s: None) -> list[Row]:
    if not limits.eig_rate:
        limits.calibrate()
    rows: list[Row] = []
    for m in depths:
        for kind in kinds:
            observed: dict[str, tuple[int, float]] = {}  # method -> (d, seconds) of the last run
            for d in sizes:
                weights, data, exact = instance(m, d, kind, seed)
                group = []
                for name, (fn, predict) in METHODS.items():
                    progress(f"m={m} d={d} {kind}: {name}")
                    row = Row(m, d, kind, name)
                    t_pred, mem = predict(m, d, limits)
                    if name in observed:  # extrapolate from the last size with the method's cost d^6 / d^3
                        d0, t0 = observed[name]
                        t_pred = max(t_pred, t0 * (d / d0) ** (6 if "dense" in name else 3))
                    if mem > limits.bytes or t_pred > limits.seconds:
                        row.note = f"skipped: predicted {t_pred:.0f} s, {mem / GIB:.1f} GiB (limits {limits.seconds:.0f} s, {limits.bytes / GIB:.0f} GiB)"
                    else:
                        t = time.perf_counter()
                        row.value, row.note = fn(weights, data)
                        row.seconds = time.perf_counter() - t
                        observed[name] = (d, row.seconds)
                    group.append(row)
                reference = exact if exact is not None else next(r.value for r in group if r.method == FASTEST)
                timed = [r.seconds for r in group if r.seconds is not None]
                for r in group:
                    if r.value is not None and reference is not None:
                        r.rel_error = abs(r.value - reference) / abs(reference)
                        r.ratio = r.seconds / min(timed)
                rows.extend(group)
    return rows


def render_markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = ["# verify bench: lambda_max(H) at global minima", "",
             f"Machine: {meta['machine']}; seed {meta['seed']}; limits {meta['limits']}.",
             "Relative error against the closed form (canonical, Sigma_x = I) or the residual-bounded Lanczos value (S104).", "",
             "| m | d | minimum | method | seconds | x fastest | relative error | note |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sec = f"{r.seconds:.3f}" if r.seconds is not None else "—"
        ratio = f"{r.ratio:.1f}" if r.ratio is not None else "—"
        err = f"{r.rel_error:.1e}" if r.rel_error is not None else "—"
        lines.append(f"| {r.m} | {r.d} | {r.minimum} | {r.method} | {sec} | {ratio} | {err} | {r.note} |")
    return "\n".join(lines) + "\n"


def to_json(rows: list[Row], meta: dict[str, Any]) -> str:
    return json.dumps({"schema": 1, "meta": meta, "rows": [asdict(r) for r in rows]}, indent=1) + "\n"


def write(rows: list[Row], meta: dict[str, Any], folder: Path) -> dict[str, Path]:
    from .report import write_files  # noqa: PLC0415

    return write_files({"bench.json": to_json(rows, meta), "bench.md": render_markdown(rows, meta)}, folder)

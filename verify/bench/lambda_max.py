"""lambda_max of the Hessian at global minima: route against route on the same instances.

For each shape (square widths d at depth m, and a few rectangular chains) and kind of minimum
(canonical flattest, random S104), the routes to lambda_max(H) are timed side by side:

- full Hessian, dense: eigvalsh of H = 2 Phi Phi^T (N x N, N = number of weights);
- small operator, dense: eigvalsh of 2 Phi^T Phi = 2 sum_k Q_k (x) P_k (d_x d_y square);
- small operator, matrix-free, scipy ``eigsh`` (ARPACK, random start);
- the library's route: Lanczos with full reorthogonalisation from a rank-one start, stopped on a
  residual bound (``proofs.lemma3.lambda_max_matrix_free``);
- PyTorch Hessian-vector products with PyHessian's power iteration (``torch_power``), at its
  default tolerance 1e-3 and at 1e-10 (optional: skipped without PyTorch).

Relative error is against the closed form 2m sigma_max(T)^{2(1-1/m)} at canonical minima
(Sigma_x = I), elsewhere against a separate Lanczos run from a random start to 1e-14 whose
Kato-Temple bound is recorded. Times are medians of repeated runs; ratios are against the
library's route. A route predicted to exceed the time or memory limit is skipped and says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.sparse.linalg import eigsh

from proofs import lemma3, minima
from proofs import linear_network as ln
from proofs.eigen import lanczos_top

from . import torch_power
from .render import Section, number, seconds
from .timing import timed

GIB = 2**30
LIBRARY = "small operator, Lanczos (library)"
TORCH_DEFAULT = "torch HVP power, tol 1e-3 (PyHessian default)"
TORCH_TIGHT = "torch HVP power, tol 1e-10"
TIGHT_TOL = 1e-10
TIGHT_MAX_ITER = 100_000
FLOOR = float(np.finfo(float).eps)  # errors below one ulp count as one ulp in accuracy ratios
RECTANGULAR = ((16, 8, 32, 4), (64, 32, 128, 16), (256, 128, 512, 64), (96, 48, 192, 64, 256, 32))


@dataclass(frozen=True)
class Shape:
    widths: tuple[int, ...]

    @property
    def m(self) -> int:
        return len(self.widths) - 1

    @property
    def square(self) -> bool:
        return len(set(self.widths)) == 1

    @property
    def label(self) -> str:
        return str(self.widths[0]) if self.square else "-".join(map(str, self.widths))

    @property
    def weights(self) -> int:  # N
        return sum(a * b for a, b in zip(self.widths, self.widths[1:]))

    @property
    def small(self) -> int:  # d_x d_y
        return self.widths[0] * self.widths[-1]


def shapes(depths: Sequence[int], sizes: Sequence[int], max_d: int | None = None,
           rectangular: Sequence[tuple[int, ...]] = RECTANGULAR) -> list[Shape]:
    """Square shapes for every depth and size, then the rectangular ones; none wider than max_d."""
    out = [Shape((d,) * (m + 1)) for m in depths for d in sizes] + [Shape(tuple(w)) for w in rectangular]
    return [s for s in out if max_d is None or max(s.widths) <= max_d]


@dataclass
class Limits:
    seconds: float = 60.0
    bytes: float = 8 * GIB
    eig_rate: float = 0.0  # seconds per (1000^3) for dense eigvalsh, measured

    def calibrate(self) -> None:
        a = np.random.default_rng(0).standard_normal((800, 800))
        t = time.perf_counter()
        np.linalg.eigvalsh(a + a.T)
        self.eig_rate = (time.perf_counter() - t) / 0.8**3


@dataclass
class Instance:
    shape: Shape
    kind: str
    weights: list[np.ndarray]
    data: ln.Data
    reference: float
    reference_kind: str  # "closed form" or "Lanczos 1e-14"
    reference_bound: float  # bound on |reference - lambda_max| (0 for the closed form)


def instance(shape: Shape, kind: str, seed: int) -> Instance:
    rng = np.random.default_rng([seed, *shape.widths])
    T = rng.standard_normal((shape.widths[-1], shape.widths[0]))
    weights = minima.GENERATORS[kind](T, shape.widths, rng)
    data = ln.from_target(T, np.eye(shape.widths[0]))
    if kind == "canonical":
        return Instance(shape, kind, weights, data, float(lemma3.flattest_value(T, shape.m)), "closed form", 0.0)
    P, Q = lemma3.small_factors(weights, data)
    start = np.random.default_rng([seed, 1, *shape.widths]).standard_normal(shape.small)
    ref = lanczos_top(lambda b: lemma3.apply_small(P, Q, b), start, rtol=1e-14, max_iter=min(shape.small, 1000))
    return Instance(shape, kind, weights, data, ref.value, "Lanczos 1e-14", ref.bound)


@dataclass
class Row:
    m: int
    widths: str
    minimum: str
    route: str
    seconds: float | None = None
    runs: int = 0
    matvec_seconds: float | None = None
    value: float | None = None
    rel_error: float | None = None
    ratio: float | None = None  # seconds / the library route's seconds
    converged: bool | None = None
    note: str = ""


@dataclass
class Context:
    limits: Limits
    repeats: int
    seed: int


# --- the routes: run(instance, ctx) -> (value, note, converged) -----------------------------------

def _dense_full(inst: Instance, ctx: Context) -> tuple[float, str, bool | None]:
    return float(np.linalg.eigvalsh(lemma3.hessian(inst.weights, inst.data))[-1]), "", None


def _dense_small(inst: Instance, ctx: Context) -> tuple[float, str, bool | None]:
    P, Q = lemma3.small_factors(inst.weights, inst.data)
    return float(np.linalg.eigvalsh(lemma3.small_operator_from_factors(P, Q))[-1]), "", None


def _eigsh(inst: Instance, ctx: Context) -> tuple[float, str, bool | None]:
    op = lemma3.small_linear_operator(inst.weights, inst.data)
    v0 = np.random.default_rng(ctx.seed).standard_normal(op.shape[0])
    if op.shape[0] < 3:  # ARPACK needs k < n - 1
        return _dense_small(inst, ctx)[0], "n < 3: dense", None
    return float(eigsh(op, k=1, which="LA", v0=v0, return_eigenvectors=False)[0]), "ARPACK, tol=0", None


def _lanczos(inst: Instance, ctx: Context) -> tuple[float, str, bool | None]:
    r = lemma3.lambda_max_matrix_free(inst.weights, inst.data, rtol=1e-13)
    return r.value, f"{r.matvecs} matvecs; bound {r.bound / r.value:.0e}", r.converged


def _torch(tol: float, max_iter: int, offset: float) -> Callable[[Instance, Context], tuple[float, str, bool | None]]:
    def run(inst: Instance, ctx: Context) -> tuple[float, str, bool | None]:
        r = torch_power.lambda_max(inst.weights, inst.data, tol, max_iter, offset, ctx.limits.seconds, ctx.seed)
        if r.timed_out:
            return r.value, f"not converged after {ctx.limits.seconds:.0f} s ({r.iterations} HVPs)", False
        return r.value, f"{r.iterations} HVPs" + ("" if r.converged else f", stopped at maxIter {max_iter}"), r.converged

    return run


@dataclass(frozen=True)
class Route:
    run: Callable[[Instance, Context], tuple[float, str, bool | None]]
    work: Callable[[Shape], float]  # grows like the route's cost, to extrapolate from a smaller shape
    predict: Callable[[Shape, Limits], tuple[float, float]]  # (seconds, bytes) before any measurement
    needs_torch: bool = False


def _matrix_free_work(s: Shape) -> float:
    return s.m * s.small * (s.widths[0] + s.widths[-1])


ROUTES: dict[str, Route] = {
    "full Hessian, dense": Route(_dense_full, lambda s: float(s.weights) ** 3,
                                 lambda s, L: (L.eig_rate * (s.weights / 1000) ** 3, 3 * 8.0 * s.weights**2)),
    "small operator, dense": Route(_dense_small, lambda s: float(s.small) ** 3,
                                   lambda s, L: (L.eig_rate * (s.small / 1000) ** 3, 3 * 8.0 * s.small**2)),
    "small operator, eigsh": Route(_eigsh, _matrix_free_work, lambda s, L: (0.0, 40 * 8.0 * s.small)),
    LIBRARY: Route(_lanczos, _matrix_free_work, lambda s, L: (0.0, 310 * 8.0 * s.small)),
    TORCH_DEFAULT: Route(_torch(torch_power.PYHESSIAN_TOL, torch_power.PYHESSIAN_MAX_ITER, torch_power.PYHESSIAN_OFFSET),
                         lambda s: 0.0, lambda s, L: (0.0, 12 * 8.0 * s.weights), needs_torch=True),
    TORCH_TIGHT: Route(_torch(TIGHT_TOL, TIGHT_MAX_ITER, 0.0), lambda s: 0.0,
                       lambda s, L: (0.0, 12 * 8.0 * s.weights), needs_torch=True),
}


def _skip_reason(name: str, shape: Shape, ctx: Context, observed: dict[str, tuple[float, float]]) -> str:
    route = ROUTES[name]
    if route.needs_torch and not torch_power.available():
        return "skipped: PyTorch is not installed (pip install -e \".[torch]\")"
    t_pred, mem = route.predict(shape, ctx.limits)
    if name in observed and route.work(shape) > 0:
        w0, t0 = observed[name]
        t_pred = max(t_pred, t0 * route.work(shape) / w0)
    if mem > ctx.limits.bytes or t_pred > ctx.limits.seconds:
        return (f"skipped: predicted {t_pred:.0f} s, {mem / GIB:.1f} GiB "
                f"(limits {ctx.limits.seconds:.0f} s, {ctx.limits.bytes / GIB:.0f} GiB)")
    return ""


def matvec_times(inst: Instance, repeats: int, with_torch: bool) -> tuple[float, float | None]:
    """Seconds of one small-operator matvec (the library's) and of one torch HVP."""
    P, Q = lemma3.small_factors(inst.weights, inst.data)
    b = np.random.default_rng(0).standard_normal(inst.shape.small)
    small = timed(lambda: lemma3.apply_small(P, Q, b), max(repeats, 5)).seconds
    if not with_torch:
        return small, None
    hvp = torch_power.HessianVectorProduct(inst.weights, inst.data)
    v = [hvp.torch.ones_like(p) for p in hvp.params]
    return small, timed(lambda: hvp(v), max(repeats, 5)).seconds


def measure_instance(inst: Instance, ctx: Context, observed: dict[str, tuple[float, float]],
                     progress: Callable[[str], None]) -> list[Row]:
    group = []
    for name, route in ROUTES.items():
        progress(f"m={inst.shape.m} {inst.shape.label} {inst.kind}: {name}")
        row = Row(inst.shape.m, inst.shape.label, inst.kind, name)
        row.note = _skip_reason(name, inst.shape, ctx, observed)
        if not row.note:
            t = timed(lambda: route.run(inst, ctx), ctx.repeats)
            row.seconds, row.runs = t.seconds, t.runs
            row.value, row.note, row.converged = t.value
            row.rel_error = abs(row.value - inst.reference) / abs(inst.reference)
            observed[name] = (route.work(inst.shape), row.seconds)
        group.append(row)
    ran_torch = any(r.seconds is not None and ROUTES[r.route].needs_torch for r in group)
    small, hvp = matvec_times(inst, ctx.repeats, ran_torch)
    library = next(r for r in group if r.route == LIBRARY)
    for r in group:
        if r.route in ("small operator, eigsh", LIBRARY) and r.seconds is not None:
            r.matvec_seconds = small
        elif ROUTES[r.route].needs_torch and r.seconds is not None:
            r.matvec_seconds = hvp
        if r.seconds is not None and library.seconds:
            r.ratio = r.seconds / library.seconds
    return group


# --- targets -----------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    met: bool | None  # None: not measured in this sweep
    detail: str


def _by_instance(rows: list[Row]) -> dict[tuple, dict[str, Row]]:
    out: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        out.setdefault((r.m, r.widths, r.minimum), {})[r.route] = r
    return out


def _err(r: Row) -> float:
    return max(r.rel_error, FLOOR)


def targets(rows: list[Row]) -> list[Target]:
    groups = _by_instance(rows)
    out = []
    big = [g[LIBRARY] for (m, w, _), g in groups.items() if m == 8 and w == "512" and g[LIBRARY].seconds is not None]
    if big:
        met = all(r.seconds <= 5 and r.rel_error <= 1e-12 for r in big)
        out.append(Target("m = 8, d = 512 to 1e-12 relative in <= 5 s", met, "; ".join(
            f"{r.minimum}: {r.seconds:.2f} s, error {r.rel_error:.1e}" for r in big)))
    else:
        out.append(Target("m = 8, d = 512 to 1e-12 relative in <= 5 s", None, "m = 8, d = 512 not in this sweep"))

    def compare(name: str, route: str, score: Callable[[Row, Row], tuple[float, str]], bound: float, what: str) -> None:
        """score -> (value, why the comparison does not apply or ''); met where value >= bound everywhere."""
        pairs = [(g[LIBRARY], g[route]) for g in groups.values()
                 if g[LIBRARY].seconds is not None and g[route].seconds is not None]
        if not pairs:
            out.append(Target(name, None, f"{route} did not run"))
            return
        scored = [(score(lib, other), lib) for lib, other in pairs]
        values = [value for (value, _), _ in scored]
        failing = [f"m={lib.m} {lib.widths} {lib.minimum}: {why or f'{what} {value:.3g}'}"
                   for (value, why), lib in scored if why or value < bound]
        detail = f"{what} {min(values):.3g} to {max(values):.3g}; {len(pairs) - len(failing)}/{len(pairs)} instances meet it"
        out.append(Target(name, not failing, detail + ("; not at " + "; ".join(failing[:3]) if failing else "")))

    def faster(lib: Row, t: Row) -> tuple[float, str]:
        worse = _err(lib) > _err(t)
        return t.seconds / lib.seconds, f"library less accurate ({lib.rel_error:.1e} vs {t.rel_error:.1e})" if worse else ""

    def more_accurate(lib: Row, t: Row) -> tuple[float, str]:
        slower = lib.seconds > t.seconds
        return _err(t) / _err(lib), f"library slower ({lib.seconds:.2g} s vs {t.seconds:.2g} s)" if slower else ""

    compare(">= 10x faster than the tight torch run at equal accuracy", TORCH_TIGHT, faster, 10, "speed-up")
    compare(">= 1000x more accurate in the time PyHessian's default takes", TORCH_DEFAULT, more_accurate, 1000,
            "accuracy ratio")
    return out


# --- the table -----------------------------------------------------------------------------------

def measure(shape_list: Sequence[Shape], kinds: Sequence[str], limits: Limits, repeats: int = 3, seed: int = 0,
            progress: Callable[[str], None] = lambda s: None) -> tuple[list[Row], list[dict[str, Any]]]:
    """Rows for every shape, kind and route, and what each instance was measured against."""
    if not limits.eig_rate:
        limits.calibrate()
    ctx = Context(limits, repeats, seed)
    rows: list[Row] = []
    references = []
    observed: dict[tuple, dict[str, tuple[float, float]]] = {}
    for shape in shape_list:
        for kind in kinds:
            progress(f"m={shape.m} {shape.label} {kind}: instance and reference")
            inst = instance(shape, kind, seed)
            references.append({"m": shape.m, "widths": list(shape.widths), "minimum": kind, "reference": inst.reference,
                               "reference_kind": inst.reference_kind, "reference_bound": inst.reference_bound})
            rows += measure_instance(inst, ctx, observed.setdefault((shape.m, shape.square, kind), {}), progress)
    return rows, references


def section(rows: list[Row], references: list[dict[str, Any]], found: list[Target]) -> Section:
    cells = [[str(r.m), r.widths, r.minimum, r.route, seconds(r.seconds), str(r.runs or "—"), number(r.ratio, ".3g"),
              number(r.matvec_seconds, ".2g"), number(r.rel_error, ".1e"), r.note] for r in rows]
    notes = [f"target {'met' if t.met else 'NOT met' if t.met is False else 'not measured'}: {t.name} ({t.detail})"
             for t in found]
    notes += ["seconds: median of the runs (a run of 10 s or more is not repeated); x library: seconds over the "
              "library route's; matvec s: one small-operator matvec (eigsh, library) or one torch HVP.",
              "relative error: against 2m sigma_max(T)^{2(1-1/m)} at canonical minima (Sigma_x = I), elsewhere "
              "against a Lanczos run from a random start to 1e-14 (its bound is in bench.json); accuracy ratios "
              f"count errors below {FLOOR:.1e} as {FLOOR:.1e}.",
              "torch tol 1e-10 runs without PyHessian's 1e-6 normalisation offset (which would cap its accuracy near "
              "1e-8), up to 100000 HVPs, cut at the time limit."]
    return Section("lambda_max", "lambda_max(H) at global minima: time, matvec and relative error per route",
                   ["m", "widths", "minimum", "route", "seconds", "runs", "x library", "matvec s", "rel. error", "note"],
                   cells, notes,
                   {"rows": [asdict(r) for r in rows], "references": references,
                    "targets": [asdict(t) for t in found]},
                   frozenset({"m", "seconds", "runs", "x library", "matvec s", "rel. error"}))


def run(shape_list: Sequence[Shape], kinds: Sequence[str], limits: Limits, repeats: int = 3, seed: int = 0,
        progress: Callable[[str], None] = lambda s: None) -> Section:
    rows, references = measure(shape_list, kinds, limits, repeats, seed, progress)
    return section(rows, references, targets(rows))

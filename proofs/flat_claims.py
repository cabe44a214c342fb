"""Evaluating printed statements about flattest minima on the certified instances of ``flat_instances``.

A statement is a function ``formula(family, k) -> Chain``: the members of the printed (in)equality
chain, evaluated on every instance of a family, and the printed relations between consecutive
members ("=", ">=", "<="). :func:`measure` evaluates it on the families of a *domain* (the roles
where the statement must hold) and, as evidence, on the roles outside it: random minima (S104), on
which a flat-minimum property must FAIL if the check discriminates, Sigma_x = c I and SPD, unpaired
top singular vectors, minima of T = 0. Inequalities report their slack (relative margin): the
smallest slack in the domain and the instance where it occurs, so a reader sees whether the bound
is tight. A member that cannot be evaluated (shapes that do not chain, a vector where a number is
meant) makes the statement fail with the reason as counterexample.

Residuals are relative: |a - b| / max(|a|, |b|) for numbers, ||a - b|| / max(||a||, ||b||) for
vectors, and a violated inequality's negative slack. Each instance is compared with its family's
tolerance; the Measurement's residual is the worst ratio residual / tolerance (tolerance 1).

Where the arrays live: the families are built on the host (NumPy, seeded), and a float64 check moves
them to the run's array backend ``ctx.xp`` in bounded chunks of instances; the members and the
per-instance residuals and slacks are computed there, and only those (one number per instance and
link) come back to the host, where the tolerances, worst cases and summaries are taken. The mpmath
path and the hypothesis search stay on NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import reduce
from operator import mul
from typing import Any, Callable, Iterable, Sequence

import mpmath
import numpy as np

from verify.arrays import chunk_sizes, to_numpy
from verify.checks import check
from verify.context import Context
from verify.measure import to_jsonable
from verify.model import Measurement, Variant

from . import flat_properties as fp
from .flat_instances import Bank, Family, float_bank, mp_bank

RELATIONS = ("=", ">=", "<=")
TINY = 1e-300


class NotEvaluable(ValueError):
    """A printed expression that has no value (e.g. a vector compared with a number)."""


@dataclass(frozen=True)
class Chain:
    """Members a_0, ..., a_r (arrays (n,) or (n, d)) and relations a_0 R_1 a_1 R_2 ... a_r."""

    members: tuple
    relations: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.relations) != len(self.members) - 1 or any(r not in RELATIONS for r in self.relations):
            raise ValueError(f"bad chain relations {self.relations}")


def chain(*members: Any, rel: str | Sequence[str] = "=") -> Chain:
    """chain(a, b, c, rel=(">=", "=")); a single relation string applies to every link."""
    rels = (rel,) * (len(members) - 1) if isinstance(rel, str) else tuple(rel)
    return Chain(tuple(members), rels)


def _host(x: Any) -> np.ndarray:
    """Per-instance numbers as NumPy float64 on the host (mpf entries rounded, backend arrays copied)."""
    on_host = fp.is_exact(x) or isinstance(x, (np.ndarray, np.generic))
    return np.asarray(x if on_host else to_numpy(x), dtype=float)


def _norm(x: Any) -> np.ndarray:
    """|x| per instance (n,), for numbers (n,) and vectors (n, d), as host float64."""
    return _host(fp.vnorm(x) if x.ndim == 2 else abs(x))


def _link(a: Any, b: Any, relation: str) -> tuple[np.ndarray, np.ndarray]:
    """(residual, slack) per instance for a R b: slack is the relative margin (nan for '=')."""
    a, b = (x if hasattr(x, "shape") else np.asarray(x) for x in (a, b))
    if a.shape != b.shape:
        raise NotEvaluable(f"members of shapes {a.shape[1:]} and {b.shape[1:]} cannot be compared")
    scale = np.maximum(np.maximum(_norm(a), _norm(b)), TINY)
    if relation == "=":
        residual = _norm(a - b) / scale
        return np.where(np.isnan(residual), np.inf, residual), np.full(residual.shape, np.nan)
    if a.ndim != 1:
        raise NotEvaluable(f"an inequality between vectors of shape {a.shape[1:]}")
    diff = _host(a - b if relation == ">=" else b - a)
    slack = diff / scale
    return np.where(np.isnan(slack), np.inf, np.maximum(0.0, -slack)), slack


def links(chains: Chain | Sequence[Chain]) -> tuple[np.ndarray, np.ndarray, list[tuple[Chain, int]]]:
    """Residuals and slacks of every link of one chain or several, shape (n, links), and for each
    link its chain and position."""
    chains = [chains] if isinstance(chains, Chain) else list(chains)
    res, slack, where = [], [], []
    for c in chains:
        for i, (a, b, r) in enumerate(zip(c.members[:-1], c.members[1:], c.relations)):
            x, s = _link(a, b, r)
            res.append(x)
            slack.append(s)
            where.append((c, i))
    return np.stack(res, axis=-1), np.stack(slack, axis=-1), where


# --- domains ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Domain:
    """Roles of families where a statement must hold, and roles evaluated only as evidence."""

    name: str
    main: tuple[str, ...]
    evidence: tuple[str, ...]


FLATTEST = Domain("flattest minima, Sigma_x = I", ("flattest",),
                  ("random", "converse", "scaled", "spd", "unpaired", "zero target"))
MINIMUM = Domain("every global minimum", ("flattest", "random", "converse", "scaled", "spd"),
                 ("unpaired", "zero target"))
ANY = Domain("any weights",
             ("flattest", "random", "converse", "scaled", "spd", "unpaired", "weights", "zero target"), ())
ZERO = Domain("flattest minima including T = 0", ("flattest", "zero target"), ())

EVIDENCE_MEANING = {
    "random": "random global minima (S104), not flattest: a flat-minimum property should FAIL here",
    "converse": "non-flattest minima with a balanced, aligned u-v path (converse candidates)",
    "scaled": "Sigma_x = c I (flattest minima for that Sigma_x)",
    "spd": "general SPD Sigma_x (local minimisers of lambda_max found by search + refine)",
    "unpaired": "repeated sigma_max, u and v drawn independently (not a singular pair)",
    "zero target": "T = 0 (flattest minima have lambda_max = 0)",
}


def families(ctx: Context, exact: bool) -> Bank:
    if exact:
        return mp_bank(ctx.seed, ctx.dps)
    return float_bank(ctx.seed, ctx.profile.instances)


Formula = Callable[[Family, int], Chain]


@dataclass
class Evaluation:
    """A statement on one family: per instance the worst residual / tolerance over k and links, the
    smallest slack of each link over k (n, links; inf for equalities), the worst case, the link names."""

    ratio: np.ndarray
    slack: np.ndarray
    worst: dict
    links: list[str]
    max_slack: np.ndarray | None = None  # the largest finite slack of each link over instances and k


def _link_names(where: list[tuple[Chain, int]]) -> list[str]:
    chain_index: dict[int, int] = {}
    indices = [chain_index.setdefault(id(c), len(chain_index)) for c, _ in where]
    several = len(chain_index) > 1
    return [f"{c.relations[pos]} between members {pos + 1} and {pos + 2}" + (f" of chain {i + 1}" if several else "")
            for (c, pos), i in zip(where, indices)]


def _evaluate(formula: Formula, family: Family, ks: Iterable[int], xp: Any = None) -> Evaluation:
    """The statement on a family: on the host as it is (``xp`` None: NumPy or mpmath), or moved to the
    namespace ``xp`` in chunks of instances that bound the memory of the largest intermediate."""
    ks = list(ks)
    if xp is None:
        return _evaluate_part(formula, family, ks)
    parts, start = [], 0
    for size in chunk_sizes(family.n, family.numbers_per_instance()):
        parts.append((start, _evaluate_part(formula, family.rows(start, start + size).on(xp), ks)))
        start += size
    return _merge(parts, family.n)


def _merge(parts: list[tuple[int, Evaluation]], n: int) -> Evaluation:
    """One Evaluation from those of consecutive chunks (``parts``: (first instance, evaluation))."""
    if len(parts) == 1:
        return parts[0][1]
    for start, e in parts:
        if "not evaluable" in e.worst:
            return Evaluation(np.full(n, np.inf), np.full((n, 1), np.inf), {**e.worst, "instance": start}, [])
    start, top = max(parts, key=lambda p: float(np.max(p[1].ratio)))
    worst = {**top.worst, "instance": top.worst["instance"] + start} if top.worst else {}
    tops = [e.max_slack for _, e in parts if e.max_slack is not None]
    return Evaluation(np.concatenate([e.ratio for _, e in parts]), np.concatenate([e.slack for _, e in parts]),
                      worst, parts[0][1].links, np.max(np.stack(tops), axis=0) if tops else None)


def _evaluate_part(formula: Formula, family: Family, ks: Iterable[int]) -> Evaluation:
    worst_ratio = np.zeros(family.n)
    min_slack: np.ndarray | None = None
    max_slack: np.ndarray | None = None
    worst: dict = {}
    names: list[str] = []
    for k in ks:
        try:
            residual, slack, where = links(formula(family, k))
        except (NotEvaluable, ValueError) as exc:
            failure = {"k": k, "instance": 0, "not evaluable": str(exc)}
            return Evaluation(np.full(family.n, np.inf), np.full((family.n, 1), np.inf), failure, [])
        names = _link_names(where)
        ratio = residual / family.tol[:, None]
        per_instance = ratio.max(axis=-1)
        slack = np.where(np.isnan(slack), np.inf, slack)
        top = np.max(np.where(np.isfinite(slack), slack, -np.inf), axis=0)
        if min_slack is None or min_slack.shape != slack.shape:
            min_slack, max_slack = slack, top
        else:
            min_slack, max_slack = np.minimum(min_slack, slack), np.maximum(max_slack, top)
        i = int(np.argmax(per_instance))
        if per_instance[i] >= worst_ratio.max() and per_instance[i] > 0:
            link = int(np.argmax(ratio[i]))
            c = where[link][0]
            worst = {"k": k, "instance": i, "link": names[link], "residual": float(residual[i, link]),
                     "tolerance": float(family.tol[i]), "members": [to_jsonable(_plain(x)[i]) for x in c.members]}
        worst_ratio = np.maximum(worst_ratio, per_instance)
    if min_slack is None:
        min_slack = np.full((family.n, 1), np.inf)
    return Evaluation(worst_ratio, min_slack, worst, names, max_slack)


def _plain(x: Any) -> np.ndarray:
    return _host(x)


def _summaries(rows: list[tuple[Family, np.ndarray, np.ndarray]]) -> dict:
    """Per family name (over shapes): instances, worst residual ratio, fraction failing, min slack."""
    out: dict[str, dict] = {}
    for f, ratio, slack in rows:
        s = out.setdefault(f.name, {"instances": 0, "failing": 0, "worst residual/tolerance": 0.0,
                                    "min slack": np.inf})
        s["instances"] += f.n
        s["failing"] += int(np.sum(ratio > 1))
        s["worst residual/tolerance"] = max(s["worst residual/tolerance"], float(np.max(ratio)))
        s["min slack"] = min(s["min slack"], float(np.min(slack)) if slack.size else np.inf)
    for s in out.values():
        s["fraction failing"] = s.pop("failing") / max(1, s["instances"])
        if not np.isfinite(s["min slack"]):
            del s["min slack"]
    return out


def _slack_report(rows: list[tuple[Family, np.ndarray, np.ndarray]], names: list[str],
                  max_slacks: list[np.ndarray]) -> dict:
    """For each inequality (link with a finite slack somewhere): its smallest slack over the domain and
    where that occurs, and its largest slack over every instance and k."""
    largest = [m for m in max_slacks if m.shape == (len(names),)]
    report = {}
    for j, name in enumerate(names):
        finite = [(f, s[:, j]) for f, _, s in rows if s.shape[-1] == len(names) and np.isfinite(s[:, j]).any()]
        if not finite:
            continue
        f_min, s_min = min(finite, key=lambda p: float(np.min(p[1])))
        report[name] = {"min": float(np.min(s_min)), "at": f_min.label, "m": f_min.m,
                        "max": max(float(m[j]) for m in largest) if largest else None}
        deep = [(f, s) for f, s in finite if f.m >= 2]  # m = 1 makes several bounds trivially tight
        if deep and f_min.m == 1:
            f_deep, s_deep = min(deep, key=lambda p: float(np.min(p[1])))
            report[name].update({"min for m >= 2": float(np.min(s_deep)), "at (m >= 2)": f_deep.label})
    return report


def measure(ctx: Context, formula: Formula, ks: Callable[[int], Iterable[int]], domain: Domain = FLATTEST,
            exact: bool = False, extra: Sequence[Family] = ()) -> Measurement:
    """Evaluate ``formula`` for every k in ks(m) on the bank's families of ``domain`` (plus ``extra``),
    and on the evidence roles (details only)."""
    bank = families(ctx, exact)
    xp = None if exact else ctx.xp
    with mpmath.workdps(ctx.dps), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        main = [f for f in bank.role(*domain.main)] + list(extra)
        rows, failing, link_names, max_slacks = [], [], [], []
        for f in main:
            e = _evaluate(formula, f, ks(f.m), xp)
            rows.append((f, e.ratio, e.slack))
            if e.max_slack is not None:
                max_slacks.append(e.max_slack)
            link_names = e.links or link_names
            if float(np.max(e.ratio)) > 1:
                failing.append((f, float(np.max(e.ratio)), e.worst))
        evidence = {}
        for role in domain.evidence:
            evaluated = [(f, _evaluate(formula, f, ks(f.m), xp)) for f in bank.role(role)]
            if evaluated:
                evidence[role] = _summaries([(f, e.ratio, e.slack) for f, e in evaluated])
    details = {"domain": domain.name, "families": _summaries(rows),
               "evidence": {EVIDENCE_MEANING[r]: v for r, v in evidence.items()}}
    slacks = _slack_report(rows, link_names, max_slacks)
    if slacks:
        details["slack of each inequality (relative margin; 0 = tight)"] = slacks
    counterexample = None
    if failing:  # the smallest failing network (fewest weights), at its worst instance
        f, _, where = min(failing, key=lambda x: (sum(a * b for a, b in zip(x[0].dims, x[0].dims[1:])), -x[1]))
        counterexample = {"family": f.label, **where, "instance data": f.instance(where["instance"])}
    worst_ratio = max((float(np.max(r)) for _, r, _ in rows), default=0.0)
    reasons = sorted({f.tol_reason for f in main})
    return Measurement(
        residual=worst_ratio,
        tolerance=1.0,
        tolerance_reason="residual / tolerance of its family; " + "; ".join(reasons),
        instances=sum(f.n for f in main),
        shapes=sorted({f.label for f in main}),
        counterexample=json_safe(counterexample),
        details=json_safe(details),
    )


def json_safe(x: Any) -> Any:
    """to_jsonable, with inf and nan written as strings (JSON has neither)."""
    x = to_jsonable(x)
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x


def with_details(m: Measurement, **more: Any) -> Measurement:
    return replace(m, details=json_safe({**m.details, **more}))


# --- prefix / suffix shorthands used by the printed formulas --------------------------------------------

def prefix(f: Family, k: int) -> Any:
    """prod_{j=1}^{k} W_j = W_k ... W_1 (identity for k = 0)."""
    return fp.product(f.W, 1, k)


def suffix(f: Family, k: int) -> Any:
    """prod_{i=k+1}^{m} W_i = W_m ... W_{k+1} (identity for k = m)."""
    return fp.product(f.W, k + 1, f.m)


def T(M: Any) -> Any:
    return fp.transpose(M)


def mv(M: Any, x: Any) -> Any:
    return fp.matvec(M, x)


def norm(x: Any) -> Any:
    return fp.vnorm(x)


def spectral(M: Any) -> Any:
    return fp.smax(M)


def pw(f: Family, x: Any, p: int, q: int) -> Any:
    """x^(p/q) in the family's arithmetic (exact rational exponent on the mpmath path)."""
    return fp.power(x, fp.fraction(p, q, f.sigma))


# --- property-based search --------------------------------------------------------------------------------

HYPOTHESIS_SHAPES = ((2, 2, 2), (3, 3, 3, 3), (2, 3, 4), (4, 2, 3), (3, 2, 2, 2, 3), (2, 2, 2, 2, 2, 2), (3, 3))
HYPOTHESIS_KINDS = {
    FLATTEST.name: ("canonical", "rotated flattest", "rebalanced flattest", "extremal"),
    MINIMUM.name: ("canonical", "rotated flattest", "rebalanced flattest", "extremal", "random (S104)"),
    ANY.name: ("canonical", "rotated flattest", "rebalanced flattest", "extremal", "random (S104)", "Gaussian weights"),
}


def example_family(dims: tuple[int, ...], kind: str, rank: int, seed: int) -> Family:
    """One instance of the given kind, replayable from (dims, kind, rank, seed)."""
    from . import flat_instances as fi
    from . import instances, minima

    rng = np.random.default_rng(seed)
    if kind == "extremal":
        m = len(dims) - 1
        values = np.array([fi.extremal_prefix_values(m, rng.uniform(0.5, 2.0), np.sqrt)])
        W = fi.rotate(fi.diagonal_network(values), rng)
    elif kind == "Gaussian weights":
        W = [rng.standard_normal((1, b, a)) for a, b in zip(dims[:-1], dims[1:])]
    else:
        T = instances.random_target(rng, (1,), dims[-1], dims[0], min(rank, *dims))
        W = minima.GENERATORS[kind](T, dims, rng)
    return fi.make_family(kind, "example", W, fi.identity_half(1, W[0].shape[-1]), rng)


def hypothesis_measure(ctx: Context, formula: Formula, ks: Callable[[int], Iterable[int]],
                       domain: Domain) -> Measurement:
    """Hypothesis draws (widths, kind of minimum in ``domain``, rank, seed) and looks for an instance
    violating the printed chain (residual / float64 tolerance > 1); it also records the instance of
    smallest slack, to show how close the inequality comes to equality."""
    from hypothesis import strategies as st

    from verify.search import search

    strategy = st.tuples(st.sampled_from(HYPOTHESIS_SHAPES), st.sampled_from(HYPOTHESIS_KINDS[domain.name]),
                         st.integers(1, 4), st.integers(0, 2**32 - 1))
    tight = {"slack": np.inf, "example": None}

    def residual(example: tuple) -> float:
        dims, kind, rank, seed = example
        if kind == "extremal":
            dims = (2,) * len(dims)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            e = _evaluate(formula, example_family(dims, kind, rank, seed), ks(len(dims) - 1))
        if float(np.min(e.slack)) < tight["slack"]:
            tight["slack"], tight["example"] = float(np.min(e.slack)), example
        return float(np.max(e.ratio))

    m = search(ctx, strategy, residual, 1.0, "residual / float64 tolerance 1e-9",
               shape=lambda ex: f"{'x'.join(map(str, ex[0]))} {ex[1]}")
    if np.isfinite(tight["slack"]):
        m = with_details(m, **{"min slack": tight["slack"],
                               "tightest example (dims, kind, rank, seed)": to_jsonable(tight["example"])})
    return m


# --- vocabulary shared by the printed formulas of Sections VI and VII ------------------------------------

K1: Callable[[int], Iterable[int]] = lambda m: range(1, m + 1)  # noqa: E731 - k = 1..m
K0: Callable[[int], Iterable[int]] = lambda m: range(0, m + 1)  # noqa: E731 - k = 0..m
ONCE: Callable[[int], Iterable[int]] = lambda m: (0,)  # noqa: E731 - statements without k


def full(f: Family, shape: tuple[int, ...], value: int) -> Any:
    """An array of ``value`` in the family's arithmetic and namespace."""
    if f.exact:
        return np.full(shape, mpmath.mpf(value), dtype=object)
    return fp.xp_of(f.T).full(shape, float(value), dtype=f.T.dtype)


def ones(f: Family) -> Any:
    return full(f, (f.n,), 1)


def stack(arrays: Sequence[Any]) -> Any:
    """Per-instance numbers side by side, (n,) each -> (n, len(arrays))."""
    return fp.xp_of(*arrays).stack(arrays, axis=-1)


def root(f: Family, x: int) -> Any:
    """sqrt(x) in the family's arithmetic."""
    return mpmath.sqrt(x) if f.exact else math.sqrt(x)


def sqrt_m(f: Family) -> Any:
    return root(f, f.m)


def prod_over(f: Family, terms: Iterable[Any]) -> Any:
    return reduce(mul, terms, ones(f))


def dot(a: Any, b: Any) -> Any:
    return fp.xp_of(a, b).sum(a * b, axis=-1)


def unit(x: Any) -> Any:
    return x / norm(x)[..., None]


def u_gain(f: Family, k: int) -> Any:
    """||u^T prod_{i=k+1}^m W_i|| = ||(prod_{i=k+1}^m W_i)^T u||."""
    return norm(mv(T(suffix(f, k)), f.u))


def v_gain(f: Family, k: int) -> Any:
    """||prod_{j=1}^k W_j v||."""
    return norm(mv(prefix(f, k), f.v))


def alignment(f: Family, k: int) -> Chain:
    """Lemma S2 at k: (prod_{i>k} W_i)^T u / ||.|| = prod_{j<=k} W_j v / ||.||."""
    return chain(unit(mv(T(suffix(f, k)), f.u)), unit(mv(prefix(f, k), f.v)))


# --- registration: one float64 and one mpmath check per printed statement ---------------------------------

def register(label: str, printed: Callable, mutants: dict, ks: Callable[[int], Iterable[int]],
             domain: Domain = FLATTEST, what: str = "", corrected: Variant | None = None,
             extra: Callable[[Context, bool], list[Family]] | None = None,
             methods: tuple[str, ...] = ("float", "mpmath"), name: str = "",
             annotate: Callable[[Context], dict] | None = None) -> None:
    """Register ``printed`` for ``label`` as a float64 check (batched, every family) and an mpmath check
    (ctx.dps digits on instances constructed flattest to that precision). ``extra`` adds families to the
    domain, ``annotate`` adds details to the float64 check."""
    for method in methods:
        exact = method == "mpmath"

        def run(ctx: Context, formula, exact: bool = exact) -> Measurement:
            more = extra(ctx, exact) if extra else []
            m = measure(ctx, formula, ks, domain, exact=exact, extra=more)
            return with_details(m, **annotate(ctx)) if annotate and not exact else m

        where = ("mpmath at ctx.dps digits on canonical, rotated, rebalanced and extremal flattest minima "
                 "built to that precision" if exact else
                 "float64 on the run's array backend, every family (constructed, extremal, found by search + "
                 "refine) batched in bounded chunks; instances drawn on the host")
        run.__doc__ = (f"{what or printed.__doc__.splitlines()[0]} Members compared, {where}, on "
                       f"{domain.name}; evidence outside that domain in the details.")
        run.__name__ = f"{name or label.lower().replace(' ', '_')}_{'mpmath' if exact else 'float64'}"
        check(label, method=method, printed=printed, mutants=mutants, corrected=corrected, backend=not exact)(run)


def register_search(label: str, printed: Callable, mutants: dict, ks: Callable[[int], Iterable[int]], domain: Domain,
                    what: str) -> None:
    def run(ctx: Context, formula) -> Measurement:
        return hypothesis_measure(ctx, formula, ks, domain)

    run.__doc__ = (f"Hypothesis search over widths, ranks, seeds and kinds of minimum ({domain.name}) for a "
                   f"violation of {what}; records the tightest instance (smallest slack).")
    run.__name__ = f"{label.lower()}_hypothesis"
    check(label, method="hypothesis", printed=printed, mutants=mutants)(run)


# --- named results: discrimination, converse, the assumption sigma_max(T) > 0 ----------------------------

DISCRIMINATION = 0.9  # at least this fraction of random (S104) minima must violate the statement


def discrimination(ctx: Context, formula, ks: Callable[[int], Iterable[int]]) -> Measurement:
    """Holds when the statement holds on every flattest minimum AND fails on at least 90 % of the random
    (S104) minima; the converse candidates (non-flattest, balanced u-v path) are reported."""
    m = measure(ctx, formula, ks, FLATTEST)
    evidence = m.details["evidence"]
    random = next(v for key, v in evidence.items() if key.startswith("random"))
    fails = [s["fraction failing"] for s in random.values()]
    fraction = float(np.average(fails, weights=[s["instances"] for s in random.values()]))
    converse = next(v for key, v in evidence.items() if key.startswith("non-flattest"))
    holds_on_converse = {name: 1 - s["fraction failing"] for name, s in converse.items()}
    return with_details(
        Measurement(m.residual, m.tolerance, m.tolerance_reason, m.instances, m.shapes, m.counterexample,
                    holds=m.ok and fraction >= DISCRIMINATION, details=m.details),
        **{"instance bank": families(ctx, False).meta},
        **{"fraction of random (S104) minima violating the statement": fraction,
           "converse: fraction of certified NON-flattest minima satisfying the statement": holds_on_converse})


def register_named(label: str, formula: Callable, ks: Callable[[int], Iterable[int]], weaker: Callable, wrong: Callable,
                   what: str) -> None:
    def run(ctx: Context, formula) -> Measurement:
        return discrimination(ctx, formula, ks)

    run.__doc__ = (f"{what} on every flattest minimum against its failure on random minima (S104): the statement "
                   f"must hold on the first and fail on >= 90 % of the second. Details: the converse (non-flattest "
                   f"minima that satisfy it), Sigma_x = c I and SPD, unpaired u, v. Float64 on the run's array "
                   f"backend; instances drawn on the host.")
    run.__name__ = f"{label.lower().replace(' ', '_')}_discriminates"
    check(label, method="float", printed=formula, backend=True,
          mutants={"a weaker statement true at every minimum": weaker, "a wrong exponent": wrong})(run)

    def wider(ctx: Context, formula) -> Measurement:
        return measure(ctx, formula, ks, ZERO)

    wider.__doc__ = (f"{what} on flattest minima including those of T = 0 (lambda_max = 0, e.g. the scalar "
                     f"m = 3 minimum w = (1, 0, 0), whose sympy Hessian is zero): the proof divides by gains that "
                     f"vanish there, so the statement is run without sigma_max(T) > 0. Float64 on the run's array "
                     f"backend.")
    wider.__name__ = f"{label.lower().replace(' ', '_')}_at_zero_target"
    check(label, method="float", printed=formula, without="sigma_max(T) > 0 (T != 0)", backend=True,
          mutants={"a wrong exponent": wrong})(wider)

"""Mutation score: how discriminating the suite is.

Two kinds of mutants:

- **negative controls** (per check, run by every audit): misprints of the formula that
  the check must reject. :func:`score` reads them back from a ``report.json`` and
  counts, per claim and overall, how many ran, how many were rejected, and which
  checks let one survive (those checks are not evidence);
- **library mutants** (:data:`LIBRARY_MUTANTS`): plausible bugs in the shared
  deep-linear-network library (``proofs``), each a context manager that
  monkeypatches one function (or one idea spread over two functions) everywhere
  it is bound. :func:`run_library_mutants` audits a few claims under each patch
  and lists the claims that *turned red* (failed or error under the mutant, not in
  a clean run of the same claims). A library mutant that turns nothing red is a
  blind spot of the suite.

>>> s = score({"claims": [{"id": "S1", "checks": [{"name": "c", "negative_controls": [
...     {"name": "m1", "rejected": True}, {"name": "m2", "rejected": False}]}]}]})
>>> s["overall"]["run"], s["overall"]["rejected"], s["overall"]["score"]
(2, 1, 0.5)
>>> s["non_discriminating"]
[{'claim': 'S1', 'check': 'c', 'surviving': ['m2']}]
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import proofs

from .context import Context
from .engine import Audit, load_checks, select
from .model import BAD, Check, Verdict

# --- the mutation score of the negative controls -----------------------------------------------


def _ratio(rejected: int, run: int) -> float | None:
    return round(rejected / run, 4) if run else None


def score(report: Mapping[str, Any]) -> dict[str, Any]:
    """Per claim and overall: negative controls run, rejected, score (rejected/run), and the
    checks that let a mutant survive (non-discriminating). Checks that ran no control (a
    crashed or skipped check, or one without mutants) are listed as ``unscored``."""
    claims = []
    non_discriminating = []
    total_run = total_rejected = total_checks = 0
    for claim in report.get("claims", []):
        run = rejected = 0
        surviving_checks = []
        unscored = []
        for check in claim.get("checks", []):
            controls = check.get("negative_controls") or []
            if not controls:
                unscored.append({"check": check.get("name", ""), "verdict": check.get("verdict", "")})
            run += len(controls)
            rejected += sum(1 for k in controls if k.get("rejected"))
            surviving = [k.get("name", "") for k in controls if not k.get("rejected")]
            if surviving:
                entry = {"claim": claim["id"], "check": check.get("name", ""), "surviving": surviving}
                surviving_checks.append({"check": entry["check"], "surviving": surviving})
                non_discriminating.append(entry)
        checks = len(claim.get("checks", []))
        total_checks += checks
        total_run += run
        total_rejected += rejected
        claims.append({
            "claim": claim["id"],
            "section": claim.get("section", ""),
            "verdict": claim.get("verdict", ""),
            "checks": checks,
            "run": run,
            "rejected": rejected,
            "score": _ratio(rejected, run),
            "non_discriminating": surviving_checks,
            "unscored": unscored,
        })
    return {
        "overall": {
            "claims": len(claims),
            "checks": total_checks,
            "run": total_run,
            "rejected": total_rejected,
            "score": _ratio(total_rejected, total_run),
            "non_discriminating": len(non_discriminating),
            "unscored": sum(len(c["unscored"]) for c in claims),
        },
        "claims": claims,
        "non_discriminating": non_discriminating,
    }


# --- patching the library ----------------------------------------------------------------------

PATCHED_PACKAGES = ("proofs",)


def import_all_proofs() -> None:
    """Import every ``proofs`` module, so that every ``from proofs.x import f`` binding exists
    before a patch is applied (a module imported *under* a patch would keep the mutant)."""
    load_checks()
    for info in pkgutil.iter_modules(proofs.__path__):
        importlib.import_module(f"proofs.{info.name}")


def _modules() -> list[Any]:
    return [m for name, m in list(sys.modules.items())
            if m is not None and any(name == p or name.startswith(p + ".") for p in PATCHED_PACKAGES)]


def clear_caches() -> int:
    """Clear every memo in the ``proofs`` modules (``lru_cache`` functions, module-level
    ``*CACHE*`` dicts): results computed with (or without) a mutant must not leak across."""
    cleared = 0
    for module in _modules():
        for name, value in list(vars(module).items()):
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == module.__name__:
                value.cache_clear()
                cleared += 1
            elif isinstance(value, dict) and "CACHE" in name.upper():
                value.clear()
                cleared += 1
    return cleared


def bindings(original: Any) -> list[tuple[Any, Any]]:
    """Every place in the ``proofs`` modules where ``original`` is bound: module attributes
    (``from proofs.lemma3 import phi_blocks``) and values of module-level dicts and lists
    (e.g. ``minima.GENERATORS``). Each as (container, key)."""
    found = []
    for module in _modules():
        for name, value in list(vars(module).items()):
            if value is original:
                found.append((module, name))
            elif isinstance(value, dict):
                found.extend((value, k) for k, v in list(value.items()) if v is original)
            elif isinstance(value, list):
                found.extend((value, i) for i, v in enumerate(value) if v is original)
    return found


def _get(container: Any, key: Any) -> Any:
    return container[key] if isinstance(container, (dict, list)) else getattr(container, key)


def _set(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, (dict, list)):
        container[key] = value
    else:
        setattr(container, key, value)


@contextmanager
def patched(replacements: Mapping[str, Callable[[Callable], Callable]]) -> Iterator[list[str]]:
    """Replace each ``"module.function"`` by ``make(original)`` wherever the original is bound
    in the ``proofs`` modules; undo on exit (also on an exception). Memos are cleared on entry
    and on exit. Yields the patched bindings as text."""
    import_all_proofs()
    done: list[tuple[Any, Any, Any]] = []
    where: list[str] = []
    try:
        for target, make in replacements.items():
            module_name, attr = target.rsplit(".", 1)
            original = getattr(importlib.import_module(module_name), attr)
            mutant = make(original)
            seen: set[tuple[int, Any]] = set()
            for container, key in bindings(original):
                if (id(container), key) in seen:  # one dict reached through several modules
                    continue
                seen.add((id(container), key))
                done.append((container, key, _get(container, key)))
                _set(container, key, mutant)
                label = container.__name__ if hasattr(container, "__name__") else type(container).__name__
                where.append(f"{label}[{key!r}]" if isinstance(container, (dict, list)) else f"{label}.{key}")
        clear_caches()
        yield where
    finally:
        for container, key, original in reversed(done):
            _set(container, key, original)
        clear_caches()


# --- the library mutants -----------------------------------------------------------------------


def _phi_blocks_transposed(original: Callable) -> Callable:
    """Phi_k with the transpose on the wrong Kronecker factor: (B_k S)^T (x) A_k instead of
    (B_k S) (x) A_k^T, i.e. Phi_k^T. Same shape only when all widths agree (otherwise the
    blocks no longer stack and the check crashes, which also counts as red)."""
    from proofs import linear_network as ln  # noqa: PLC0415

    def phi_blocks(weights, data):
        xp = ln.namespace(*weights)
        t = xp.matrix_transpose
        return [ln.kron(t(xp.matmul(B, data.Sigma_x_half)), A) for A, B in zip(ln.above(weights), ln.below(weights))]

    return phi_blocks


def _phi_blocks_factor_order(original: Callable) -> Callable:
    """Phi_k with its Kronecker factors in the wrong order: A_k^T (x) (B_k S) (same shape)."""
    from proofs import linear_network as ln  # noqa: PLC0415

    def phi_blocks(weights, data):
        xp = ln.namespace(*weights)
        return [ln.kron(xp.matrix_transpose(A), xp.matmul(B, data.Sigma_x_half))
                for A, B in zip(ln.above(weights), ln.below(weights))]

    return phi_blocks


def _phi_blocks_without_sigma(original: Callable) -> Callable:
    from proofs import linear_network as ln  # noqa: PLC0415

    def phi_blocks(weights, data):
        xp = ln.namespace(*weights)
        return [ln.kron(B, xp.matrix_transpose(A)) for A, B in zip(ln.above(weights), ln.below(weights))]

    return phi_blocks


def _small_factors_without_sigma(original: Callable) -> Callable:
    from proofs import linear_network as ln  # noqa: PLC0415

    def small_factors(weights, data):
        xp = ln.namespace(*weights)
        t = xp.matrix_transpose
        return [xp.matmul(A, t(A)) for A in ln.above(weights)], [xp.matmul(t(B), B) for B in ln.below(weights)]

    return small_factors


def _flattest_value_exponent(original: Callable) -> Callable:
    from proofs import linear_network as ln  # noqa: PLC0415

    def flattest_value(T, m):
        xp = ln.namespace(T)
        smax = xp.linalg.matrix_norm(T, ord=2)
        return 2 * m * smax ** (2 * (1 - 1 / (m + 1)))

    return flattest_value


def _gradient_sign(original: Callable) -> Callable:
    def gradient(weights, data):
        return [-g for g in original(weights, data)]

    return gradient


def _random_minimum_without_inverse(original: Callable) -> Callable:
    from proofs import minima  # noqa: PLC0415

    def random_minimum(T, dims, rng):
        minima.check_widths(T, dims)
        batch = T.shape[:-2]
        M = [rng.standard_normal((*batch, d, d)) for d in dims[1:-1]]
        return minima.conjugate(minima.canonical_factors(T, dims), M, M)

    return random_minimum


@dataclass(frozen=True)
class LibraryMutant:
    """One plausible bug in the shared library: ``replacements`` maps ``"module.function"`` to a
    function of the original that builds the mutant; ``labels`` is the default selection
    (labels, sections or ranges) audited under it."""

    name: str
    description: str
    replacements: Mapping[str, Callable[[Callable], Callable]]
    labels: tuple[str, ...]

    def patch(self) -> Any:
        """A context manager that applies the mutant (and undoes it)."""
        return patched(self.replacements)

    __call__ = patch


LIBRARY_MUTANTS: dict[str, LibraryMutant] = {m.name: m for m in (
    LibraryMutant(
        "phi-transposed-kron",
        "proofs.lemma3.phi_blocks: transpose on the wrong Kronecker factor, (B_k S)^T (x) A_k (= Phi_k^T)",
        {"proofs.lemma3.phi_blocks": _phi_blocks_transposed},
        ("S54", "S57", "S59", "S64"),
    ),
    LibraryMutant(
        "phi-kron-order",
        "proofs.lemma3.phi_blocks: Kronecker factors swapped, A_k^T (x) (B_k S) (shape-preserving)",
        {"proofs.lemma3.phi_blocks": _phi_blocks_factor_order},
        ("S55", "S64", "S66"),  # spectra are blind to it (a perfect shuffle): S64 survives, S55/S66 do not
    ),
    LibraryMutant(
        "flattest-exponent",
        "proofs.lemma3.flattest_value: 2m sigma^{2(1-1/(m+1))} instead of 2m sigma^{2(1-1/m)}",
        {"proofs.lemma3.flattest_value": _flattest_value_exponent},
        ("S64", "S65", "S66", "S98"),
    ),
    LibraryMutant(
        "dropped-sigma-half",
        "proofs.lemma3.phi_blocks and small_factors: Sigma_x^{1/2} dropped (identity in its place)",
        {"proofs.lemma3.phi_blocks": _phi_blocks_without_sigma,
         "proofs.lemma3.small_factors": _small_factors_without_sigma},
        ("S54", "S55", "S56", "S64"),
    ),
    LibraryMutant(
        "gradient-sign",
        "proofs.linear_network.gradient: sign flipped (-2 A_k^T (W Sigma_x - Sigma_yx) B_k^T)",
        {"proofs.linear_network.gradient": _gradient_sign},
        ("S54", "S56", "S98", "S99"),
    ),
    LibraryMutant(
        "random-minimum-no-inverse",
        "proofs.minima.random_minimum: W_i = M_i C_i M_{i-1} (the inverse of M_i dropped): not a minimum",
        {"proofs.minima.random_minimum": _random_minimum_without_inverse},
        ("S34", "S47", "S49"),
    ),
)}


def _red(verdict: Verdict) -> bool:
    return verdict in BAD


def _run(ctx: Context, labels: Sequence[str], on_check: Callable[[Check], None] | None) -> dict[str, Any]:
    audit = Audit(dataclasses.replace(ctx, scratch={}))
    audit.on_check = on_check
    results = audit.run(labels)
    return {r.label: r for r in results}


def run_library_mutants(
    ctx: Context,
    labels: Iterable[str] | None = None,
    on_progress: Callable[[str, str], None] | None = None,
    mutants: Iterable[str] | None = None,
    clean: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Audit claims under each library mutant and list those that turned red.

    ``labels``: labels, sections or ranges for every mutant (default: each mutant's own
    ``labels``); ``mutants``: names from :data:`LIBRARY_MUTANTS` (default: all);
    ``clean``: the verdicts of an unpatched run (label -> verdict) if already known,
    e.g. from a report.json; otherwise the union of the selections is audited once
    without a patch. ``on_progress(stage, claim)`` is called after every check, stage
    being ``"clean"`` or the mutant's name. A claim *turned red* when it is failed/error
    under the mutant and was not in the clean run. JSON-able."""
    import_all_proofs()
    names = list(mutants or LIBRARY_MUTANTS)
    unknown = [name for name in names if name not in LIBRARY_MUTANTS]
    if unknown:
        raise ValueError(f"unknown library mutant {unknown[0]!r} (choose from {', '.join(LIBRARY_MUTANTS)})")
    chosen = [LIBRARY_MUTANTS[name] for name in names]
    claims = Audit(ctx).claims
    fixed = select(list(labels), claims) if labels is not None else None
    selections = {m.name: fixed if fixed is not None else select(m.labels, claims) for m in chosen}

    def hook(stage: str) -> Callable[[Check], None] | None:
        return (lambda check: on_progress(stage, check.claim)) if on_progress else None

    wanted = sorted({label for sel in selections.values() for label in sel}, key=lambda label: claims[label].order)
    missing = [label for label in wanted if clean is None or label not in clean]
    before: dict[str, str] = dict(clean or {})
    if missing:
        clear_caches()
        before.update({label: r.verdict.value for label, r in _run(ctx, missing, hook("clean")).items()})

    out = []
    for mutant in chosen:
        labels_m = selections[mutant.name]
        start = time.perf_counter()
        crash = ""
        results: dict[str, Any] = {}
        with mutant.patch() as where:
            try:
                results = _run(ctx, labels_m, hook(mutant.name))
            except Exception as exc:  # noqa: BLE001 - a mutant that breaks the engine itself is reported
                crash = f"{type(exc).__name__}: {exc}"
        red = []
        for label in labels_m:
            r = results.get(label)
            if r is None or not _red(r.verdict) or Verdict(before[label]) in BAD:
                continue
            own = [c for c in r.checks if _red(c.verdict)]
            red.append({
                "claim": label,
                "was": before[label],
                "verdict": r.verdict.value,
                "checks": [c.check.name for c in own],
                "via": "own checks" if own else "rolled up from " + ", ".join(
                    k for k, v in r.rolled_from.items() if _red(v)),
                "message": next((c.message for c in own if c.message), ""),
            })
        out.append({
            "mutant": mutant.name,
            "description": mutant.description,
            "patched": where,
            "labels": list(labels_m),
            "claims_run": len(results),
            "turned_red": red,
            "killed": bool(red) or bool(crash),
            "crash": crash or None,
            "seconds": round(time.perf_counter() - start, 2),
        })
    return out


# --- rendering ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def _library_rows(library: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for m in library:
        red = ", ".join(f"{r['claim']} ({r['verdict']})" for r in m["turned_red"]) or (
            "crashed: " + m["crash"] if m.get("crash") else "nothing (survived)")
        rows.append((m["mutant"], m["description"], f"{m['claims_run']}", red, f"{m['seconds']:.1f}"))
    return rows


def render_markdown(score: Mapping[str, Any], library: Sequence[Mapping[str, Any]] | None = None) -> str:
    o = score["overall"]
    lines = [
        "# Mutation score",
        "",
        f"Negative controls: **{o['rejected']}/{o['run']} rejected ({_pct(o['score'])})** over {o['checks']} checks "
        f"of {o['claims']} claims; {o['non_discriminating']} non-discriminating check(s); "
        f"{o['unscored']} check(s) ran no control.",
        "",
        "| claim | section | verdict | checks | controls | rejected | score |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for c in score["claims"]:
        lines.append(f"| {c['claim']} | {c['section']} | {c['verdict']} | {c['checks']} | {c['run']} | "
                     f"{c['rejected']} | {_pct(c['score'])} |")
    lines += ["", "## Non-discriminating checks", ""]
    if score["non_discriminating"]:
        lines += [f"- {n['claim']} :: {n['check']}: surviving {', '.join(n['surviving'])}"
                  for n in score["non_discriminating"]]
    else:
        lines.append("None: every negative control was rejected.")
    if library is not None:
        lines += ["", "## Library mutants", "",
                  "| mutant | mutation | claims run | turned red | seconds |", "|---|---|---:|---|---:|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _library_rows(library)]
        killed = sum(1 for m in library if m["killed"])
        lines += ["", f"{killed}/{len(library)} library mutants turned at least one claim red."]
    return "\n".join(lines) + "\n"


def print_mutants(score: Mapping[str, Any], library: Sequence[Mapping[str, Any]] | None, console: Any) -> None:
    """Rich tables: the score by section, the non-discriminating checks, the library mutants."""
    from collections import defaultdict  # noqa: PLC0415

    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    by_section: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in score["claims"]:
        row = by_section[c["section"]]
        row[0] += c["run"]
        row[1] += c["rejected"]
        row[2] += len(c["non_discriminating"])
    table = Table(title="Negative controls (mutants of the printed formulas)", title_justify="left")
    for col, just in (("Section", "left"), ("controls", "right"), ("rejected", "right"), ("score", "right"),
                      ("non-discriminating checks", "right")):
        table.add_column(col, justify=just)
    for section, (run, rejected, nd) in by_section.items():
        table.add_row(escape(section), str(run), str(rejected), _pct(_ratio(rejected, run)),
                      f"[bold red]{nd}[/]" if nd else "0")
    o = score["overall"]
    table.add_row("[bold]all", f"[bold]{o['run']}", f"[bold]{o['rejected']}", f"[bold]{_pct(o['score'])}",
                  f"[bold]{o['non_discriminating']}")
    console.print(table)
    if score["non_discriminating"]:
        nd = Table(title="Non-discriminating checks", title_justify="left")
        for col in ("Claim", "Check", "Surviving mutants"):
            nd.add_column(col)
        for n in score["non_discriminating"]:
            nd.add_row(escape(n["claim"]), escape(n["check"]), escape(", ".join(n["surviving"])))
        console.print(nd)
    if library is not None:
        lib = Table(title="Library mutants (claims that turned red)", title_justify="left")
        for col in ("Mutant", "Mutation", "Claims run", "Turned red", "s"):
            lib.add_column(col, justify="right" if col in ("Claims run", "s") else "left")
        for row in _library_rows(library):
            lib.add_row(*(escape(cell) for cell in row), style=None if "survived" not in row[3] else "bold red")
        console.print(lib)


def write(score: Mapping[str, Any], library: Sequence[Mapping[str, Any]] | None, folder: Any) -> dict[str, Any]:
    """``mutants.json`` ({"score": ..., "library": ...}) and ``mutants.md`` into ``folder``, atomically."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from .report import write_files  # noqa: PLC0415

    document = {"score": score, "library": list(library) if library is not None else None}
    return write_files({"mutants.json": json.dumps(document, indent=1, allow_nan=False) + "\n",
                        "mutants.md": render_markdown(score, library)}, Path(folder))

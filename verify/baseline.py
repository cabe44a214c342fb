"""Regression baseline: what changed between a run and ``reports/baseline.json``.

:func:`compare` names every claim whose verdict changed, every check whose verdict
changed, every check whose residual was within its tolerance and no longer is, claims
(and checks) added or removed, and run settings that differ (seed, profile, backend,
dps: a change there explains the rest). Timings and messages are not compared.

>>> base = {"claims": [{"id": "S1", "verdict": "passed", "checks": []}]}
>>> compare(base, base)
[]
>>> [d["message"] for d in compare({"claims": []}, base)]
['S1: claim removed (was passed)']
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

SETTINGS = ("seed", "profile", "backend", "dps")


def load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def slim(report: Mapping[str, Any]) -> dict[str, Any]:
    """What a comparison needs from a report: run settings, and per claim its verdict and
    per check its verdict, residual and tolerance (a committed baseline stays small)."""
    return {
        "schema": report["schema"],
        "run": {key: report["run"].get(key) for key in SETTINGS},
        "claims": [
            {"id": c["id"], "verdict": c["verdict"],
             "checks": [{k: check.get(k) for k in ("name", "verdict", "max_residual", "tolerance")}
                        for check in c["checks"]]}
            for c in report["claims"]
        ],
    }


def _number(x: Any) -> float | None:
    """A residual as written in report.json (a number, "inf", "nan" or null)."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _within(residual: float | None, tolerance: float | None) -> bool | None:
    if residual is None or tolerance is None:
        return None
    if math.isnan(residual):
        return False
    return residual <= tolerance


def _diff(kind: str, message: str, claim: str | None = None, check: str | None = None,
          before: Any = None, after: Any = None) -> dict[str, Any]:
    return {"kind": kind, "claim": claim, "check": check, "before": before, "after": after, "message": message}


def compare(current: Mapping[str, Any], baseline: Mapping[str, Any], common_only: bool = False) -> list[dict[str, Any]]:
    """Differences of ``current`` against ``baseline`` (both report.json documents), in the
    current catalog order, each a dict with ``kind`` (settings, claim-added, claim-removed,
    claim-verdict, check-added, check-removed, check-verdict, residual), ``claim``,
    ``check``, ``before``, ``after`` and a one-line ``message``. ``common_only`` ignores
    claims present in only one of them (a run of a selection against a full baseline)."""
    diffs: list[dict[str, Any]] = []
    run_now, run_then = current.get("run", {}), baseline.get("run", {})
    for key in SETTINGS:
        if key in run_now and key in run_then and run_now[key] != run_then[key]:
            diffs.append(_diff("settings", f"run setting {key}: {run_then[key]!r} -> {run_now[key]!r}",
                               before=run_then[key], after=run_now[key]))
    now = {c["id"]: c for c in current.get("claims", [])}
    then = {c["id"]: c for c in baseline.get("claims", [])}
    if not common_only:
        for label, c in now.items():
            if label not in then:
                diffs.append(_diff("claim-added", f"{label}: claim added ({c.get('verdict')})", label,
                                   after=c.get("verdict")))
        for label, c in then.items():
            if label not in now:
                diffs.append(_diff("claim-removed", f"{label}: claim removed (was {c.get('verdict')})", label,
                                   before=c.get("verdict")))
    for label, c in now.items():
        if label not in then:
            continue
        b = then[label]
        if c.get("verdict") != b.get("verdict"):
            diffs.append(_diff("claim-verdict", f"{label}: verdict {b.get('verdict')} -> {c.get('verdict')}", label,
                               before=b.get("verdict"), after=c.get("verdict")))
        diffs.extend(_compare_checks(label, c.get("checks", []), b.get("checks", [])))
    return diffs


def _compare_checks(label: str, now_checks: list, then_checks: list) -> list[dict[str, Any]]:
    diffs = []
    now = {k["name"]: k for k in now_checks}
    then = {k["name"]: k for k in then_checks}
    for name in now.keys() - then.keys():
        diffs.append(_diff("check-added", f"{label} :: {name}: check added ({now[name].get('verdict')})", label, name,
                           after=now[name].get("verdict")))
    for name in then.keys() - now.keys():
        diffs.append(_diff("check-removed", f"{label} :: {name}: check removed (was {then[name].get('verdict')})",
                           label, name, before=then[name].get("verdict")))
    for name, k in now.items():
        if name not in then:
            continue
        b = then[name]
        if k.get("verdict") != b.get("verdict"):
            diffs.append(_diff("check-verdict", f"{label} :: {name}: verdict {b.get('verdict')} -> {k.get('verdict')}",
                               label, name, before=b.get("verdict"), after=k.get("verdict")))
        r_now, r_then = _number(k.get("max_residual")), _number(b.get("max_residual"))
        tol_now, tol_then = _number(k.get("tolerance")), _number(b.get("tolerance"))
        if _within(r_then, tol_then) and _within(r_now, tol_now) is False:
            diffs.append(_diff(
                "residual",
                f"{label} :: {name}: residual {r_then:.3g} (tolerance {tol_then:.3g}) grew to {r_now:.3g} "
                f"(tolerance {tol_now:.3g})",
                label, name, before=r_then, after=r_now))
    order = {n: i for i, n in enumerate(list(now) + [n for n in then if n not in now])}
    return sorted(diffs, key=lambda d: order[d["check"]])


def render(diffs: list[Mapping[str, Any]]) -> str:
    """One line per difference, or a line saying there are none."""
    if not diffs:
        return "no differences from the baseline\n"
    head = f"{len(diffs)} difference{'s' if len(diffs) != 1 else ''} from the baseline:"
    return "\n".join([head, *(f"  {d['message']}" for d in diffs)]) + "\n"

"""The report contract (``report.json``, schema 1) and its writers.

``build`` turns results into the JSON document; ``write`` puts report.json,
report.md and junit.xml into a folder atomically: everything is written to a
scratch folder first and moved into place with signals held off, so an
interrupted run leaves the previous report as it was.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import tempfile
from collections import Counter
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from .catalog import Claim
from .measure import to_jsonable
from .model import BAD, CheckResult, ClaimResult, Measurement, Verdict

SCHEMA = 1
PACKAGES = ("sympy", "mpmath", "numpy", "scipy", "hypothesis", "rich", "array-api-compat", "cupy", "python-flint")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _number(x: float | None) -> float | str | None:
    """JSON has no inf/nan: they are written as strings."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _measurement(m: Measurement | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "holds": m.ok,
        "instances": m.instances,
        "shapes": list(m.shapes),
        "max_residual": _number(m.residual),
        "tolerance": _number(m.tolerance),
        "tolerance_reason": m.tolerance_reason,
        "counterexample": to_jsonable(m.counterexample),
        "details": to_jsonable(dict(m.details)),
    }


def _check(r: CheckResult) -> dict[str, Any]:
    c, p = r.check, r.printed
    out = {
        "name": c.name,
        "method": c.method,
        "backend": r.backend,
        "verdict": r.verdict.value,
        "message": r.message,
        "description": c.doc,
        "instances": p.instances if p else 0,
        "shapes": list(p.shapes) if p else [],
        "max_residual": _number(p.residual) if p else None,
        "tolerance": _number(p.tolerance) if p else None,
        "tolerance_reason": p.tolerance_reason if p else "",
        "certificate": c.certificate,
        "enclosure_radius": _number(p.radius) if p else None,
        "seed": r.seed,
        "seconds": round(r.seconds, 4),
        "printed": _measurement(p),
        "corrected": None,
        "without": c.without,
        "negative_controls": [
            {"name": k.name, "rejected": k.rejected, "residual": _number(k.residual), "message": k.message}
            for k in r.controls
        ],
    }
    if c.corrected is not None:
        out["corrected"] = {"text": c.corrected.text, "reason": c.corrected.reason,
                            "measurement": _measurement(r.corrected)}
    return out


def reason(r: ClaimResult) -> str:
    """Why a claim has its verdict, in one line: its own checks' messages, or the
    used claims it rolled up from."""
    own = [c.message for c in r.checks if c.verdict is r.verdict and c.message]
    if own:
        return "; ".join(dict.fromkeys(own))
    via = [k for k, v in r.rolled_from.items() if v is r.verdict and k not in r.discharged]
    return f"rolled up from {', '.join(via)}" if via else ""


def _claim(claim: Claim, r: ClaimResult) -> dict[str, Any]:
    checks = [_check(c) for c in r.checks]
    errata = [c for c in r.checks if c.verdict is Verdict.ERRATUM]
    counterexamples = [
        {"check": c.check.name, **to_jsonable(c.counterexample)} for c in r.checks if c.counterexample is not None
    ]
    return {
        "id": claim.label,
        "section": claim.section,
        "subsection": claim.subsection,
        "title": claim.title,
        "kind": claim.kind,
        "source": claim.source,
        "statement": claim.statement,
        "note": claim.note,
        "verdict": r.verdict.value,
        "reason": reason(r),
        "corrected": [
            {"check": c.check.name, "text": c.check.corrected.text, "reason": c.check.corrected.reason}
            for c in errata
        ] or None,
        "assumptions": r.assumptions or None,
        "counterexample": counterexamples[0] if counterexamples else None,
        "counterexamples": counterexamples,
        "uses": list(claim.uses),
        "rolled_from": {k: v.value for k, v in r.rolled_from.items()},
        "discharged": r.discharged or None,
        "seconds": round(r.seconds, 4),
        "checks": checks,
    }


def build(results: list[ClaimResult], claims: dict[str, Claim], covered: int, run: dict[str, Any]) -> dict[str, Any]:
    counts = Counter(r.verdict.value for r in results)
    total = len(claims)
    return {
        "schema": SCHEMA,
        "run": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
            **run,
        },
        "summary": {
            "claims": len(results),
            "counts": {v.value: counts.get(v.value, 0) for v in Verdict},
            "coverage": {"covered": covered, "total": total, "fraction": round(covered / total, 4) if total else 0.0},
            "ok": not any(r.verdict in BAD for r in results),
        },
        "named": [
            {"id": r.label, "verdict": r.verdict.value, "uses": {k: v.value for k, v in r.rolled_from.items()}}
            for r in results
            if claims[r.label].named
        ],
        "claims": [_claim(claims[r.label], r) for r in results],
        "figures": [],
    }


@contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM while files are moved into place."""
    caught: list[int] = []
    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, lambda n, _f: caught.append(n)) for s in handled}
    except ValueError:  # not in the main thread: nothing to hold
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if caught:
            signal.raise_signal(caught[0])


def render(report: dict[str, Any]) -> dict[str, str]:
    """report.json, report.md and junit.xml as text."""
    from . import junit, markdown  # noqa: PLC0415 - the writers import this module's helpers

    return {
        "report.json": json.dumps(report, indent=1, allow_nan=False) + "\n",
        "report.md": markdown.render(report),
        "junit.xml": junit.render(report),
    }


def write(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write report.json, report.md and junit.xml into ``folder`` atomically."""
    return write_files(render(report), folder)


@contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A scratch folder inside ``folder``: whatever is put there is moved into
    ``folder`` at the end, with signals held off, so an interrupted run never
    leaves a half-written report; on an exception nothing is moved."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder))
    try:
        yield scratch
        for path in scratch.iterdir():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        with signals_held():
            for path in sorted(scratch.iterdir()):
                os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_files(contents: dict[str, str], folder: Path) -> dict[str, Path]:
    with staged(folder) as scratch:
        for name, text in contents.items():
            (scratch / name).write_text(text, encoding="utf-8")
    return {name: folder / name for name in contents}

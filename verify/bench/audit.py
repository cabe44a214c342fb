"""The audit itself: wall time of ``verify`` and its ten slowest claims.

Read from a report.json (``verify bench --audit-report reports/latest/report.json``), or measured
by running the audit in a subprocess into a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .render import Section, seconds

SLOWEST = 10


class AuditReportError(ValueError):
    """A file that is not a usable report.json."""


def load(path: Path) -> dict[str, Any]:
    """A report.json with its run's duration and per-claim seconds, or AuditReportError."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditReportError(f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    run, claims = (document.get("run"), document.get("claims")) if isinstance(document, dict) else (None, None)
    if not isinstance(run, dict) or not isinstance(run.get("duration_s"), (int, float)) or not isinstance(claims, list):
        raise AuditReportError(f"{str(path)!r} is not a verify report.json (no run.duration_s or claims)")
    if not all(isinstance(c, dict) and isinstance(c.get("seconds"), (int, float)) and "id" in c for c in claims):
        raise AuditReportError(f"{str(path)!r}: every claim needs an id and seconds")
    return document


def run_audit(profile: str, seed: int, progress: Callable[[str], None] = lambda s: None) -> tuple[dict[str, Any], float]:
    """Run ``verify --profile PROFILE`` in a subprocess; its report and the wall seconds it took."""
    with tempfile.TemporaryDirectory(prefix="verify-bench-audit-") as folder:
        progress(f"running the {profile} audit in a subprocess")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "verify", "--profile", profile, "--seed", str(seed),
                               "--report-dir", folder], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode not in (0, 1):  # 1: some claim failed, still a timed audit
            raise RuntimeError(f"the audit exited with status {done.returncode}: {done.stderr.strip()[-300:]}")
        return load(Path(folder) / "report.json"), wall


def section(document: dict[str, Any], source: str, wall: float | None = None) -> Section:
    run = document["run"]
    claims = sorted(document["claims"], key=lambda c: c["seconds"], reverse=True)
    total = float(run["duration_s"])
    checks_total = sum(float(c["seconds"]) for c in claims)  # > total when workers ran checks side by side
    cells = [[str(i), c["id"], str(c.get("section", "")), str(c.get("verdict", "")), seconds(c["seconds"]),
              f"{100 * c['seconds'] / checks_total:.1f} %" if checks_total else "—"]
             for i, c in enumerate(claims[:SLOWEST], 1)]
    notes = [f"audit: {len(claims)} claims, profile {run.get('profile', '?')}, seed {run.get('seed', '?')}, "
             f"{total:.1f} s as the report states" + (f", {wall:.1f} s wall in a subprocess" if wall is not None else "")
             + f" ({source}); {run.get('jobs', 1)} worker process(es), {checks_total:.1f} s of checks in all.",
             "a claim's seconds count its own checks; share: of all checks' seconds; named results roll up but do "
             "not re-run what they use."]
    data = {"source": source, "duration_s": total, "wall_s": wall, "profile": run.get("profile"),
            "jobs": run.get("jobs", 1), "checks_seconds": checks_total,
            "claims": len(claims), "slowest": [{"id": c["id"], "seconds": c["seconds"]} for c in claims[:SLOWEST]]}
    return Section("audit", f"Audit: wall time and the {SLOWEST} slowest claims",
                   ["rank", "claim", "section", "verdict", "seconds", "share"], cells, notes, data,
                   frozenset({"rank", "seconds", "share"}))


def run(report: Path | None = None, profile: str = "default", seed: int = 0,
        progress: Callable[[str], None] = lambda s: None) -> Section:
    if report is not None:
        return section(load(report), f"read from {report}")
    document, wall = run_audit(profile, seed, progress)
    return section(document, f"run now: verify --profile {profile} --seed {seed}", wall)

"""report.md: the report for people. Named results first, then errata and
conditional findings (printed vs corrected), then every claim with its checks."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .catalog import SECTION_TITLES

ICON = {
    "verified": "✅ verified",
    "passed": "✅ passed",
    "erratum": "📝 erratum",
    "conditional": "⚠️ conditional",
    "failed": "❌ failed",
    "error": "💥 error",
    "skipped": "⏭️ skipped",
    "uncovered": "⬜ uncovered",
}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _residual(check: dict[str, Any]) -> str:
    r, t = check.get("max_residual"), check.get("tolerance")
    if r is None:
        return "—"
    fmt = lambda x: f"{x:.2e}" if isinstance(x, float) else str(x)  # noqa: E731
    return f"{fmt(r)} ≤ {fmt(t)}" if isinstance(r, (int, float)) and isinstance(t, (int, float)) and r <= t else f"{fmt(r)} (tol {fmt(t)})"


def _math(statement: str) -> str:
    """Display an equation; prose that carries its own $...$ is shown as it is."""
    return statement if "$" in statement else f"$$ {statement} $$"


def _compact_json(value: dict[str, Any]) -> str:
    """One key per line, each value on one line: matrices stay readable."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()) + "\n}"


def _summary(report: dict[str, Any]) -> list[str]:
    run, summary = report["run"], report["summary"]
    cov = summary["coverage"]
    counts = ", ".join(f"{n} {v}" for v, n in summary["counts"].items() if n)
    return [
        "# Verification report: Unique Properties of Flat Minima in Deep Networks (supplement)",
        "",
        f"- **Result:** {'no claim failed' if summary['ok'] else 'some claims FAILED or ERRORED'} — {counts}",
        f"- **Coverage:** {cov['covered']}/{cov['total']} claims have checks ({100 * cov['fraction']:.1f} %)",
        f"- **Run:** seed {run.get('seed')}, profile `{run.get('profile')}`, backend `{run.get('backend')}`, "
        f"{run.get('dps')} digits{', certificates on' if run.get('certify') else ''}, started {run.get('started')}, "
        f"{run.get('duration_s', 0):.1f} s",
        f"- **Selection:** {', '.join(run.get('selection') or ['everything'])}",
        "",
    ]


def _named(report: dict[str, Any]) -> list[str]:
    lines = ["## Named results", "", "| Result | Verdict | What its proof uses |", "|---|---|---|"]
    for named in report["named"]:
        uses = Counter(named["uses"].values())
        used = ", ".join(f"{n} {v}" for v, n in sorted(uses.items())) or "—"
        lines.append(f"| {named['id']} | {ICON[named['verdict']]} | {used} |")
    return lines + [""]


def _figures(report: dict[str, Any]) -> list[str]:
    figures = report.get("figures") or []
    if not figures:
        return []
    lines = ["## Figures", ""]
    for f in figures:
        if "summary" in f:
            lines += [f"![{f['file']}]({f['file']})", "", f"*{f['caption']}* {f['summary']}", ""]
        else:
            lines += [f"- `{f['file']}` not drawn: {f.get('skipped') or f.get('error')}", ""]
    return lines


def _findings(report: dict[str, Any]) -> list[str]:
    notable = [c for c in report["claims"] if c["verdict"] in ("erratum", "conditional", "failed", "error")]
    lines = ["## Errata and conditional findings", ""]
    if not notable:
        return lines + ["None in this run.", ""]
    for claim in notable:
        lines += [f"### {claim['id']} — {claim['title']} ({ICON[claim['verdict']]})", "", "As printed:", "",
                  _math(claim["statement"]), ""]
        if claim["reason"].startswith("rolled up"):
            lines += [f"The verdict is {claim['reason']}.", ""]
        for fix in claim["corrected"] or []:
            lines += [f"Corrected ({fix['check']}): {fix['reason']}", ""]
            if fix["text"]:
                lines += [_math(fix["text"]), ""]
        for assumption in claim["assumptions"] or []:
            lines += [f"Holds only under the assumption: **{assumption}**", ""]
        for check in claim["checks"]:
            if check["verdict"] in ("erratum", "conditional", "failed", "error"):
                lines.append(f"- `{check['name']}` ({check['method']}): {check['message']}")
        if claim["counterexample"]:
            lines += ["", "Counterexample (replayable):", "", "```json",
                      _compact_json(claim["counterexample"])[:6000], "```"]
        lines.append("")
    return lines


def _claims(report: dict[str, Any]) -> list[str]:
    lines = ["## Every claim", ""]
    section = None
    for claim in report["claims"]:
        if claim["section"] != section:
            section = claim["section"]
            lines += [f"### Section {section}. {SECTION_TITLES.get(section, '')}", ""]
        lines += [f"#### {claim['id']} — {claim['title']}: {ICON[claim['verdict']]}", "", _math(claim["statement"]), ""]
        if claim["note"]:
            lines += [f"_Note:_ {claim['note']}", ""]
        if claim["uses"]:
            lines += ["Uses: " + ", ".join(f"{k} ({v})" for k, v in claim["rolled_from"].items()), ""]
        for used, assumptions in (claim.get("discharged") or {}).items():
            lines += [f"{used} is conditional on {', '.join(assumptions)}, which this result's own hypotheses carry.", ""]
        if not claim["checks"]:
            lines += ["No check yet.", ""]
            continue
        lines += ["| Check | Method | Verdict | Instances | Residual | Tolerance reason | Negative controls |",
                  "|---|---|---|---|---|---|---|"]
        for c in claim["checks"]:
            controls = c["negative_controls"]
            rejected = sum(k["rejected"] for k in controls)
            lines.append(
                f"| `{c['name']}` | {c['method']} | {ICON[c['verdict']]} | {c['instances']} | {_residual(c)} | "
                f"{_cell(c['tolerance_reason'])} | {rejected}/{len(controls)} rejected |"
            )
        lines.append("")
        lines += _certified(claim["checks"])
    return lines


def _certified(checks: list[dict[str, Any]]) -> list[str]:
    """The instances each certificate that ran proved, and how tight its enclosures are."""
    lines = []
    for c in checks:
        if c.get("certificate") and c["verdict"] != "skipped":
            lines.append(f"Certificate `{c['name']}` ({c['method']}, {ICON[c['verdict']]} for these instances only): "
                         f"{', '.join(c['shapes']) or '—'}; largest enclosure radius {radius_text(c)}.")
    return lines + [""] if lines else []


def radius_text(check: dict[str, Any]) -> str:
    radius = check.get("enclosure_radius")
    if radius == 0:
        return "0 (exact)"
    return f"{radius:.1e}" if isinstance(radius, (int, float)) else str(radius or "—")


def render(report: dict[str, Any]) -> str:
    return "\n".join(_summary(report) + _named(report) + _figures(report) + _findings(report) + _claims(report)) + "\n"

"""Everything ``verify`` shows in a terminal (rich): progress, summaries, lists."""

from __future__ import annotations

import os
import sys
import platform
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .catalog import SECTION_TITLES, SECTIONS
from .engine import Audit
from .markdown import radius_text
from .model import ClaimResult, Verdict

STYLE = {
    "verified": "bold green",
    "passed": "green",
    "erratum": "yellow",
    "conditional": "magenta",
    "failed": "bold red",
    "error": "bold red",
    "skipped": "dim",
    "uncovered": "dim",
}
ORDER = [v.value for v in Verdict]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def one_line(text: str) -> str:
    """Control characters (a newline in a user's argument) shown escaped, never as line breaks."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def error(message: str) -> None:
    err.print(f"verify: error: {one_line(message)}", markup=False, highlight=False, soft_wrap=True)


def run_with_progress(audit: Audit, labels: list[str], quiet: bool = False) -> list[ClaimResult]:
    total = audit.check_count(labels)
    with Progress(
        TextColumn("[bold]verify"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("checks"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=quiet,
    ) as progress:
        task = progress.add_task("", total=total)

        def advance(check: Any) -> None:
            progress.update(task, advance=1, description=check.claim)

        audit.on_check = advance
        try:
            return audit.run(labels)
        finally:
            audit.on_check = None


def _verdict(v: str) -> str:
    return f"[{STYLE[v]}]{v}[/]"


def print_summary(report: dict[str, Any], paths: dict[str, Path], to_stderr: bool = False) -> None:
    console = err if to_stderr else out
    claims = report["claims"]
    by_section: dict[str, Counter] = defaultdict(Counter)
    for c in claims:
        by_section[c["section"]][c["verdict"]] += 1
    table = Table(title="Claims by section", title_justify="left")
    table.add_column("Section")
    table.add_column("Title")
    for v in ORDER:
        table.add_column(v, justify="right", style=STYLE[v])
    for s in SECTIONS:
        if s in by_section:
            table.add_row(s, SECTION_TITLES[s], *[str(by_section[s][v] or "") for v in ORDER])
    console.print(table)

    named = Table(title="Named results (rolled up from the claims their proofs use)", title_justify="left")
    named.add_column("Result")
    named.add_column("Verdict")
    named.add_column("Uses")
    for n in report["named"]:
        uses = Counter(n["uses"].values())
        named.add_row(n["id"], _verdict(n["verdict"]), ", ".join(f"{k} {v}" for v, k in sorted(uses.items())) or "—")
    if report["named"]:
        console.print(named)

    certificates = certificate_table(claims)
    if certificates is not None:
        console.print(certificates)

    for c in claims:
        if c["verdict"] in ("erratum", "conditional", "failed", "error"):
            console.print(f"  {_verdict(c['verdict'])} [bold]{c['id']}[/] {c['title']}: ", end="")
            console.print(c["reason"], markup=False)
    s = report["summary"]
    cov = s["coverage"]
    counts = ", ".join(f"{n} {v}" for v, n in s["counts"].items() if n)
    console.print(f"[bold]{s['claims']} claims[/]: {counts}")
    console.print(f"coverage: {cov['covered']}/{cov['total']} claims have checks ({100 * cov['fraction']:.1f} %)")
    console.print(f"{report['run']['duration_s']:.1f} s; reports: " + ", ".join(str(p) for p in paths.values()))
    console.print("[bold green]OK[/]" if s["ok"] else "[bold red]FAILED[/]: some claims failed or errored")


def certificate_table(claims: list[dict[str, Any]]) -> Table | None:
    """The certificates that ran (``--certify``): the instances each proved and its largest enclosure
    radius; None when none ran."""
    rows = [(c["id"], k) for c in claims for k in c["checks"] if k.get("certificate") and k["verdict"] != "skipped"]
    if not rows:
        return None
    table = Table(title="Certificates (proofs for these instances only; the claims count them as passed)",
                  title_justify="left")
    for col in ("Claim", "Check", "Verdict", "Instances certified", "Radius"):
        table.add_column(col, justify="right" if col == "Radius" else "left")
    for label, k in rows:
        table.add_row(label, k["name"], _verdict(k["verdict"]), ", ".join(k["shapes"]) or "—", radius_text(k))
    return table


def print_list(rows: list[dict[str, Any]], coverage: dict[str, int]) -> None:
    table = Table(title="Claims of the supplement", title_justify="left")
    for col in ("Label", "Section", "Kind", "Title", "Checks"):
        table.add_column(col)
    for r in rows:
        methods = Counter(k["method"] for k in r["checks"])
        kinds = ", ".join(f"{m}×{n}" if n > 1 else m for m, n in methods.items()) or "[dim]uncovered[/]"
        table.add_row(r["label"], r["section"], r["kind"], r["title"], kinds)
    out.print(table)
    out.print(f"coverage: {coverage['covered']}/{coverage['total']} claims have checks")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextmanager
def status(title: str) -> Iterator[Callable[[str], None]]:
    with err.status(title) as spinner:
        yield lambda text: spinner.update(f"{title}: {text}")


def print_baseline(diffs: list[dict[str, Any]], path: Path, to_stderr: bool = False) -> None:
    console = err if to_stderr else out
    if not diffs:
        console.print(f"[green]baseline {path}: no change[/]")
        return
    console.print(f"[bold red]baseline {path}: {len(diffs)} change(s)[/]")
    for d in diffs:
        console.print("  " + one_line(d["message"]), markup=False)

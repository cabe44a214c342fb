"""The ``verify`` command.

    verify [OPTIONS]               audit every claim, write reports/latest/
    verify run LABEL... [OPTIONS]  audit a selection (labels, sections, ranges)
    verify list [--json]           the claims, their checks and the coverage
    verify bench [OPTIONS]         side-by-side tables: lambda_max routes, throughput, precision, audit
    verify probe FILE.npz [--json] is a trained deep linear network at a flattest minimum?
    verify mutants [LABEL...]      mutation score of the negative controls (--library: mutate the library)

Exit status: 0 when no claim failed or errored, 1 otherwise, 2 for a usage
error, 130 when interrupted (the previous report is left untouched).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from . import figures
from . import report as report_mod
from . import terminal
from .backends import BACKENDS, resolve
from .catalog import CatalogError
from .checks import CheckDefinitionError
from .context import PROFILES, Context
from .engine import PARALLEL_MIN_CHECKS, Audit, SelectionError, select
from .model import BAD
from .parallel import WorkerCrash, default_jobs

COMMANDS = ("run", "list", "bench", "probe", "mutants")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def _int_in(lo: int, hi: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be between {lo} and {hi}, got {value}")
        return value

    return parse


BENCH_MINIMA = {"canonical": "canonical", "random": "random (S104)"}
BENCH_TABLES = ("lambda_max", "throughput", "precision", "audit")


def _int_list(what: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers, got {text!r}") from None
        if not values or min(values) < 1 or max(values) > 4096:
            raise argparse.ArgumentTypeError(f"{what} values must be between 1 and 4096, got {text!r}")
        return values

    return parse


def _choice_list(what: str, choices: dict[str, str]):
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(","))
        unknown = [v for v in values if v not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"{what}: unknown {unknown[0]!r} (choose from {', '.join(choices)})")
        return values

    return parse


def _parser(command: str | None) -> _Parser:
    prog = "verify" + (f" {command}" if command else "")
    p = _Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if command == "list":
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p
    if command == "probe":
        p.add_argument("file", metavar="FILE.npz",
                       help="W1..Wm and either Sigma_x, Sigma_yx (optional y2) or samples X, Y (columns)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p
    if command == "bench":
        p.add_argument("--depths", type=_int_list("--depths"), default=(3, 5, 8), help="depths m (default 3,5,8)")
        p.add_argument("--sizes", type=_int_list("--sizes"), default=(8, 32, 64, 128, 256, 512),
                       help="square widths d (default 8,32,64,128,256,512)")
        p.add_argument("--minima", type=_choice_list("--minima", BENCH_MINIMA), default=tuple(BENCH_MINIMA),
                       help="kinds of minimum: canonical,random (default both)")
        p.add_argument("--max-seconds", type=_int_in(1, 86400, "--max-seconds"), default=60,
                       help="skip a route predicted to take longer; the time cap of the torch runs (default 60)")
        p.add_argument("--max-gib", type=_int_in(1, 4096, "--max-gib"), default=8,
                       help="skip a route predicted to need more memory (default 8)")
        p.add_argument("--tables", nargs="+", choices=BENCH_TABLES, default=list(BENCH_TABLES), metavar="TABLE",
                       help=f"which tables (default all: {' '.join(BENCH_TABLES)})")
        p.add_argument("--quick", action="store_true",
                       help="a small sweep: depths 3 and 8, widths up to 64, smaller batches, the quick audit")
        p.add_argument("--max-d", type=_int_in(1, 4096, "--max-d"), default=None,
                       help="leave out every lambda_max shape with a width above this")
        p.add_argument("--repeats", type=_int_in(1, 100, "--repeats"), default=3,
                       help="runs per timing, the median reported; a run of 10 s or more is not repeated (default 3)")
        p.add_argument("--audit-report", type=Path, metavar="REPORT.json",
                       help="read the audit table from this report.json instead of running the audit")
        p.add_argument("--seed", type=_int_in(0, 2**63 - 1, "--seed"), default=0)
        p.add_argument("--report-dir", type=Path, default=Path("reports/bench"), help="where bench.json/md go")
        return p
    if command == "run":
        p.add_argument("targets", nargs="+", metavar="LABEL_OR_SECTION",
                       help='labels ("S15", "Lemma 2"), sections ("III") or ranges ("S8-S22")')
    if command == "mutants":
        p.add_argument("targets", nargs="*", metavar="LABEL_OR_SECTION", help="a selection (default: every claim)")
        p.add_argument("--library", action="store_true",
                       help="also mutate the shared library and list the claims that turn red")
    else:
        p.add_argument("--baseline", type=Path, metavar="FILE",
                       help="compare with a baseline (e.g. reports/baseline.json); exit 1 naming every change")
        p.add_argument("--write-baseline", type=Path, metavar="FILE",
                       help="write this run's verdicts and residuals as the new baseline")
    p.add_argument("--seed", type=_int_in(0, 2**63 - 1, "--seed"), default=0, help="master seed (default 0)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="default", help="how hard to look")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="array backend for float checks (strict: array-api-strict, the standard's reference namespace)")
    p.add_argument("--dps", type=_int_in(15, 5000, "--dps"), default=50, help="mpmath decimal digits (default 50)")
    p.add_argument("--certify", action="store_true",
                   help="also run the certificates: ball-arithmetic proofs on rational instances (python-flint)")
    p.add_argument("--jobs", "-j", type=_int_in(1, 256, "--jobs"), default=default_jobs(),
                   help=f"worker processes for runs of {PARALLEL_MIN_CHECKS}+ checks (default: one per core, "
                        f"here {default_jobs()})")
    p.add_argument("--report-dir", type=Path, default=Path("reports/latest"), help="where reports are written")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")
    return p


def parse(argv: Sequence[str]) -> tuple[str | None, argparse.Namespace]:
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if argv and command is None and not argv[0].startswith("-"):
        raise UsageError(f"unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)}; or no command to audit all)")
    args = _parser(command).parse_args(list(argv[1:] if command else argv))
    return command, args


def prepare_report_dir(folder: Path, option: str = "--report-dir") -> None:
    """Make sure reports can be written before any work is done."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {str(folder)!r} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {option} {str(folder)!r}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {str(folder)!r} is not writable")


def _list(args: argparse.Namespace) -> int:
    audit = Audit(Context())
    rows = [
        {
            "label": c.label,
            "section": c.section,
            "kind": c.kind,
            "title": c.title,
            "covered": bool(audit.checks.get(c.label)),
            "checks": [{"name": k.name, "method": k.method} for k in audit.checks.get(c.label, ())],
        }
        for c in audit.claims.values()
    ]
    coverage = {"covered": audit.covered(), "total": len(rows)}
    if args.json:
        print(json.dumps({"claims": rows, "coverage": coverage}, indent=1))
    else:
        terminal.print_list(rows, coverage)
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from . import bench  # noqa: PLC0415

    prepare_report_dir(args.report_dir)
    tables = tuple(t for t in bench.TABLES if t in args.tables)
    if args.audit_report is not None and "audit" in tables:
        try:
            bench.audit.load(args.audit_report)
        except bench.audit.AuditReportError as exc:
            raise UsageError(f"--audit-report: {exc}") from None
    options = bench.Options(tables=tables, depths=args.depths, sizes=args.sizes,
                            minima=tuple(BENCH_MINIMA[k] for k in args.minima), max_d=args.max_d, quick=args.quick,
                            limits=bench.Limits(seconds=args.max_seconds, bytes=args.max_gib * bench.GIB),
                            repeats=args.repeats, seed=args.seed, audit_report=args.audit_report)
    if "lambda_max" in tables and not options.shapes:
        raise UsageError("no lambda_max shape is left: every width exceeds --max-d (or 64 with --quick)")
    with terminal.status("bench") as update:
        sections = bench.run(options, progress=update)
    paths = bench.write(sections, bench.meta(options, terminal.machine()), args.report_dir)
    bench.print_sections(sections, terminal.out)
    terminal.out.print("written: " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def _load_baseline(path: Path | None) -> dict | None:
    if path is None:
        return None
    from . import baseline  # noqa: PLC0415

    try:
        document = baseline.load(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read --baseline {str(path)!r}: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != report_mod.SCHEMA:
        raise UsageError(f"--baseline {str(path)!r} is not a report.json of schema {report_mod.SCHEMA}")
    return document


def _audit(args: argparse.Namespace, targets: Sequence[str] | None, argv: Sequence[str]) -> int:
    prepare_report_dir(args.report_dir)
    if args.write_baseline is not None:
        prepare_report_dir(args.write_baseline.parent, "the folder of --write-baseline")
    reference = _load_baseline(args.baseline)
    backend, xp = resolve(args.backend)
    ctx = Context(seed=args.seed, profile=PROFILES[args.profile], dps=args.dps, backend=backend, xp=xp,
                  certify=args.certify)
    audit = Audit(ctx, jobs=args.jobs)
    labels = select(targets, audit.claims) if targets else list(audit.claims)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    results = terminal.run_with_progress(audit, labels, quiet=False)
    run = {
        "command": ["verify", *argv],
        "seed": args.seed,
        "profile": args.profile,
        "backend": backend,
        "backend_available": xp is not None,
        "dps": args.dps,
        "jobs": args.jobs,
        "certify": args.certify,
        "selection": list(targets or []),
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    document = report_mod.build(results, audit.claims, audit.covered(), run)
    with report_mod.staged(args.report_dir) as scratch:
        document["figures"] = figures.draw(ctx, set(labels), scratch, document)
        for name, text in report_mod.render(document).items():
            (scratch / name).write_text(text, encoding="utf-8")
    paths = {name: args.report_dir / name for name in ("report.json", "report.md", "junit.xml")}
    if args.json:
        print(json.dumps(document, indent=1))
    terminal.print_summary(document, paths, to_stderr=args.json)
    failed = any(r.verdict in BAD for r in results)
    if args.write_baseline is not None:
        from . import baseline  # noqa: PLC0415

        report_mod.write_files({args.write_baseline.name: json.dumps(baseline.slim(document), indent=1) + "\n"},
                               args.write_baseline.parent)
    if reference is not None:
        from . import baseline  # noqa: PLC0415

        diffs = baseline.compare(document, reference, common_only=bool(targets))
        terminal.print_baseline(diffs, args.baseline, to_stderr=args.json)
        failed = failed or bool(diffs)
    return EXIT_FAILED if failed else EXIT_OK


def _mutants(args: argparse.Namespace) -> int:
    from . import mutants  # noqa: PLC0415

    prepare_report_dir(args.report_dir)
    backend, xp = resolve(args.backend)
    ctx = Context(seed=args.seed, profile=PROFILES[args.profile], dps=args.dps, backend=backend, xp=xp,
                  certify=args.certify)
    audit = Audit(ctx, jobs=args.jobs)
    labels = select(args.targets, audit.claims) if args.targets else list(audit.claims)
    results = terminal.run_with_progress(audit, labels)
    document = report_mod.build(results, audit.claims, audit.covered(), {"seed": args.seed, "profile": args.profile})
    score = mutants.score(document)
    library = None
    if args.library:
        clean = {r.label: r.verdict.value for r in results}
        with terminal.status("library mutants") as update:
            library = mutants.run_library_mutants(ctx, on_progress=lambda stage, claim: update(f"{stage}: {claim}"),
                                                   clean=clean)
    mutants.write(score, library, args.report_dir)
    mutants.print_mutants(score, library, terminal.out)
    perfect = score["overall"]["score"] == 1.0 and not score["non_discriminating"]
    return EXIT_OK if perfect and all(m["killed"] for m in library or []) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command, args = parse(argv)
        if command == "list":
            return _list(args)
        if command == "bench":
            return _bench(args)
        if command == "mutants":
            return _mutants(args)
        if command == "probe":
            from . import probe  # noqa: PLC0415

            return probe.main(args.file, as_json=args.json)
        return _audit(args, args.targets if command == "run" else None, argv)
    except UsageError as exc:
        terminal.error(str(exc))
        return EXIT_USAGE
    except (SelectionError, CatalogError) as exc:
        terminal.error(str(exc))
        return EXIT_USAGE
    except WorkerCrash as exc:
        terminal.error(f"{exc}; no report was written")
        return EXIT_FAILED
    except CheckDefinitionError as exc:  # a broken check module: the suite itself is at fault
        terminal.error(f"cannot load the checks: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        terminal.error("interrupted: no report was written; the previous report is intact")
        return EXIT_INTERRUPTED


def entry() -> None:
    sys.exit(main())

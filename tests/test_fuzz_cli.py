"""Hostile input for the ``verify`` command.

Hundreds of argument lists from a seeded generator, mixing valid and invalid tokens
(unknown commands, bad option values, missing values, unknown labels, huge numbers,
unicode, empty strings, odd option spellings, ``probe`` with malformed paths). Every
usage error must exit 2 with exactly one stderr line starting ``verify: error:``;
the few valid calls (``list``, ``--help``, ``run S3 --profile quick``) must succeed;
nothing may print a traceback, raise out of ``main`` or hang. An invalid call that
the command would actually *run* (an audit or a benchmark) is a failure too: the
audit and the benchmark are replaced by a tripwire for those calls.

The slow test (``VERIFY_SLOW=1``) reruns Sections I and III on the default profile
with 20 seeds and asserts that no claim's verdict depends on the seed.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from verify import cli, terminal

SEED = 20240607
CASES = 400
VALID_RUNS = 5  # `run S3 --profile quick` calls among the cases (about a second each)
BUDGET_S = 60.0  # per call: a usage error answers in milliseconds; the budget only catches a hang


class WouldRun(Exception):
    """An invalid call reached the audit or the benchmark."""


class Hang(BaseException):
    """A call ran past its time budget (a BaseException: nothing in the CLI may swallow it)."""


@dataclass
class Case:
    kind: str
    argv: list[str]
    expect: str  # "usage", "ok" (exit 0), "help" (SystemExit 0 with text on stdout)
    fragment: str = ""  # expected in the error line, when the kind determines it


# --- token pools -----------------------------------------------------------------------------

UNICODE = ["é", "ñ", "Ж", "Ѕ3", "λ", "你好", "🙂", "\u200b", "\u202e", "e\u0301", "Ｓ３", "Ⅲ", "\udcff", "\t", "\n",
           "ℌ", "ﬁ", "\u00a0"]  # no character here casefolds to an ASCII label; \udcff is an undecodable byte
BAD_COMMANDS = ["frobnicate", "", " ", "RUN", "Run", "lists", "ru", "probe2", "audit", "0", "help", "S3", "III",
                "run S3", "bench\n", "\x7f"]
BAD_SEEDS = ["-1", "x", "", "1.5", "1e3", "0x10", "nan", "inf", str(2**63), str(10**30), "-" + str(10**30),
             "9" * 5000, "١٢٣x", "3 4", "--", "- 1"]
BAD_DPS = ["3", "14", "5001", "0", "-50", "50.0", "fifty", "", str(10**100)]
BAD_PROFILES = ["nope", "Quick", "QUICK", "", "quick ", "fast", "thorough!", "défaut"]
BAD_BACKENDS = ["tpu", "", "NumPy", "cuda", "numpy,cupy", "none"]
BAD_INT_LISTS = ["", "0", "-3", "a,b", "1,,2", "3,", ",3", "5000", "1.5", "3;5", str(10**20), "4097", "🙂"]
BAD_MINIMA = ["", "canonical,", "flat", "random (S104)", "Canonical", "canonical;random"]
BAD_BENCH_LIMITS = ["0", "-1", "86401", "x", "", "1e3"]
BAD_LABELS = ["S0", "S107", "S999", "S9999999999999999999999", "Lemma 5", "Lemma 0", "Theorem 9", "Table S2", "X",
              "IIII", "XI", "s3x", "S-3", "S3-", "S3-S999", "S999-S3", "S3--S4", "Lemma", "Claim S2", "*", ".",
              "..", "S 3 4", "S3,S4", "Ѕ3", "Ｓ３"]
BAD_OPTIONS = ["--Seed", "--SEED", "—seed", "–seed", "---seed", "--seeds", "--bogus", "--profile-quick", "-x",
               "--json=1", "--report_dir", "-s", "--no-json", "--", "-"]
VALID_FILLERS = [["--json"], ["--seed", "3"], ["--seed=11"], ["--profile", "quick"], ["--backend", "numpy"],
                 ["--dps", "60"], ["--report-dir", "{tmp}/r"], ["--profile=default"]]


def _weird(rng: random.Random) -> str:
    return "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 4)))


def _fill(rng: random.Random, tmp: Path) -> list[str]:
    out: list[str] = []
    for _ in range(rng.randint(0, 2)):
        out += [t.format(tmp=tmp) for t in rng.choice(VALID_FILLERS)]
    return out


def _probe_paths(tmp: Path, rng: random.Random) -> list[str]:
    """Malformed probe inputs (a few files written once)."""
    files = tmp / "probe"
    files.mkdir(exist_ok=True)
    (files / "empty.npz").write_bytes(b"")
    (files / "random.npz").write_bytes(rng.randbytes(300))
    (files / "text.npz").write_text("W1 = [[1, 2]]\n")
    (files / "zipmagic.npz").write_bytes(b"PK\x03\x04" + rng.randbytes(100))
    np.save(files / "single.npy", np.eye(2))
    np.savez(files / "nan.npz", W1=np.full((2, 2), np.nan), W2=np.eye(2), Sigma_x=np.eye(2), Sigma_yx=np.eye(2))
    np.savez(files / "noweights.npz", Sigma_x=np.eye(2), Sigma_yx=np.eye(2))
    (files / "dir.npz").mkdir(exist_ok=True)
    return [str(files / n) for n in ("empty.npz", "random.npz", "text.npz", "zipmagic.npz", "single.npy", "nan.npz",
                                     "noweights.npz", "dir.npz", "missing.npz")] + [
        "", ".", "/", str(files / "🙂.npz"), str(files / "\udcff.npz"), str(files / "a\nb.npz"),
        str(files / "empty.npz" / "sub.npz"), "x" * 5000]


def generate(tmp: Path, seed: int = SEED, n: int = CASES) -> list[Case]:
    rng = random.Random(seed)
    report_file = tmp / "a-file"
    report_file.write_text("not a folder")
    newline_file = tmp / "file\nwith newline"
    newline_file.write_text("x")
    probes = _probe_paths(tmp, rng)
    valid_runs = 0
    cases: list[Case] = []

    def head(rng: random.Random) -> list[str]:
        """A command that takes the audit options: the full audit or a valid `run`."""
        return rng.choice([[], ["run", "S3"], ["run", "s3", "S15"], ["run", "III"], ["run", "S8-S22"]])

    kinds = ["command", "seed", "dps", "profile", "backend", "missing", "label", "option", "bench", "probe",
             "list", "run-empty", "report-dir", "report-dir-uncreatable", "valid"]
    for i in range(n):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        fill = _fill(rng, tmp)
        if kind == "command":
            bad = rng.choice(BAD_COMMANDS + [_weird(rng)])
            cases.append(Case(kind, [bad, *fill], "usage", "unknown command"))
        elif kind == "seed":
            cases.append(Case(kind, [*head(rng), *fill, rng.choice(["--seed", "--se"]), rng.choice(BAD_SEEDS)],
                              "usage", "--seed"))
        elif kind == "dps":
            cases.append(Case(kind, [*head(rng), "--dps", rng.choice(BAD_DPS), *fill], "usage", "--dps"))
        elif kind == "profile":
            bad = rng.choice(BAD_PROFILES + [_weird(rng)])
            form = rng.choice([["--profile", bad], [f"--profile={bad}"]])
            cases.append(Case(kind, [*head(rng), *form, *fill], "usage", "invalid choice"))
        elif kind == "backend":
            cases.append(Case(kind, [*head(rng), *fill, "--backend", rng.choice(BAD_BACKENDS)], "usage",
                              "invalid choice"))
        elif kind == "missing":
            option = rng.choice(["--seed", "--profile", "--backend", "--dps", "--report-dir"])
            cases.append(Case(kind, [*head(rng), *fill, option], "usage", "expected one argument"))
        elif kind == "label":
            bad = rng.choice(BAD_LABELS + [_weird(rng)])
            targets = rng.sample(["S3", bad, bad], rng.randint(1, 3)) if rng.random() < 0.5 else [bad]
            if bad not in targets:
                targets.append(bad)
            cases.append(Case(kind, ["run", *targets, *fill], "usage"))
        elif kind == "option":
            bad = rng.choice(BAD_OPTIONS)
            argv = rng.choice([[*head(rng), bad, *fill], ["list", bad], [*head(rng), *fill, bad, "1"]])
            if bad in ("--", "-") and argv[:1] != ["list"]:  # `--`/`-` are positional: only invalid where none fit
                argv = ["list", bad]
            cases.append(Case(kind, argv, "usage"))
        elif kind == "bench":
            option, pool = rng.choice([("--depths", BAD_INT_LISTS), ("--sizes", BAD_INT_LISTS),
                                       ("--minima", BAD_MINIMA), ("--max-seconds", BAD_BENCH_LIMITS),
                                       ("--max-gib", BAD_BENCH_LIMITS), ("--seed", BAD_SEEDS),
                                       ("--profile", ["quick"]), ("--report-dir", [str(report_file)])])
            argv = ["bench", option, rng.choice(pool)]
            if rng.random() < 0.3:
                argv.append(option)  # and the same option again without its value
            cases.append(Case(kind, argv, "usage"))
        elif kind == "probe":
            argv = rng.choice([["probe", rng.choice(probes)], ["probe", rng.choice(probes), "--json"],
                               ["probe"], ["probe", "--json"], ["probe", rng.choice(probes), rng.choice(probes)],
                               ["probe", rng.choice(probes), "--seed", "1"]])
            cases.append(Case(kind, argv, "usage"))
        elif kind == "list":
            argv = rng.choice([["list", "S3"], ["list", "--json", "--json=no"], ["list", "--profile", "quick"],
                               ["list", _weird(rng)], ["list", "--seed", "1"]])
            cases.append(Case(kind, argv, "usage"))
        elif kind == "run-empty":
            cases.append(Case(kind, ["run", *fill], "usage", "required"))
        elif kind == "report-dir":
            target = rng.choice([report_file, newline_file])
            argv = [*head(rng), *fill, "--report-dir", str(target)]
            cases.append(Case(kind, argv, "usage", "not a folder"))
        elif kind == "report-dir-uncreatable":  # a folder that cannot be made: under an existing file
            argv = [*rng.choice([["run", "S3"], ["bench"], []]), "--report-dir", str(report_file / "sub")]
            cases.append(Case(kind, argv, "usage"))
        else:  # valid: list, help, or (a few times) a quick run of S3
            choice = rng.random()
            if choice < 0.15 and valid_runs < VALID_RUNS:
                valid_runs += 1
                spelling = rng.choice([["--profile", "quick"], ["--profile=quick"], ["--prof", "quick"]])
                extra = rng.choice([[], ["--seed", str(rng.randrange(2**63))], ["--json"], ["--backend", "numpy"]])
                target = rng.choice(["S3", "s3", " S3 "])
                cases.append(Case("run", ["run", target, *spelling, *extra, "--report-dir", str(tmp / f"run{i}")],
                                  "ok"))
            elif choice < 0.5:
                cases.append(Case("list", rng.choice([["list"], ["list", "--json"]]), "ok"))
            else:
                argv = rng.choice([["--help"], ["-h"], ["run", "--help"], ["list", "-h"], ["bench", "--help"],
                                   ["probe", "-h"], ["run", "S3", "--help"], ["--seed", "3", "--help"]])
                cases.append(Case("help", argv, "help"))
    return cases


# --- running one call ----------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    raised: BaseException | None
    seconds: float


def _alarm(_signum, _frame):
    raise Hang()


def call(argv: list[str], budget: float = BUDGET_S) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    raised: BaseException | None = None
    code: int | None = None
    timer = hasattr(signal, "setitimer")
    if timer:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raised = exc
    except BaseException as exc:  # noqa: BLE001 - anything escaping main is a finding
        raised = exc
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return Outcome(code, out.getvalue(), err.getvalue(), raised, time.perf_counter() - start)


def problems(case: Case, o: Outcome) -> list[str]:
    found = []
    if isinstance(o.raised, Hang):
        return [f"no answer within {BUDGET_S} s"]
    if isinstance(o.raised, WouldRun):
        return [f"an invalid call started work: {o.raised}"]
    if o.raised is not None and not isinstance(o.raised, SystemExit):
        return [f"raised {type(o.raised).__name__}: {o.raised}"]
    if "Traceback" in o.out + o.err:
        found.append("printed a traceback")
    if case.expect == "usage":
        lines = o.err.strip("\n").split("\n") if o.err.strip() else []
        if isinstance(o.raised, SystemExit):
            found.append(f"SystemExit({o.raised.code}) instead of exit status 2")
        if o.code != 2:
            found.append(f"exit status {o.code}, expected 2")
        if len(lines) != 1:
            found.append(f"{len(lines)} stderr lines, expected 1: {o.err[:300]!r}")
        elif not lines[0].startswith("verify: error:"):
            found.append(f"stderr does not start with 'verify: error:': {lines[0][:200]!r}")
        elif case.fragment and case.fragment not in lines[0]:
            found.append(f"error line lacks {case.fragment!r}: {lines[0][:200]!r}")
        if o.out:
            found.append(f"wrote to stdout on a usage error: {o.out[:200]!r}")
    elif case.expect == "help":
        if not (isinstance(o.raised, SystemExit) and o.code == 0 and "usage:" in o.out):
            found.append(f"help: exit {o.code}, raised {o.raised!r}, stdout {o.out[:100]!r}")
    else:
        if o.code != 0:
            found.append(f"exit status {o.code}, expected 0; stderr {o.err[-300:]!r}")
    return found


@pytest.fixture
def tripwire(monkeypatch):
    """Only `run S3 --profile quick` may reach the audit; nothing may reach the benchmark."""
    from verify import bench

    allowed = {"on": False}
    real = terminal.run_with_progress

    def guarded(audit, labels, quiet=False):
        if not allowed["on"] or list(labels) != ["S3"] or audit.ctx.profile.name != "quick":
            raise WouldRun(f"audit of {len(labels)} claim(s) {list(labels)[:5]} on {audit.ctx.profile.name}")
        return real(audit, labels, quiet=True)

    def no_bench(*args, **kwargs):
        raise WouldRun("the benchmark")

    monkeypatch.setattr(terminal, "run_with_progress", guarded)
    monkeypatch.setattr(bench, "run", no_bench)
    return allowed


def test_generator_is_reproducible_and_large(tmp_path):
    for d in (tmp_path / "a", tmp_path / "b"):
        d.mkdir()
    a, b = generate(tmp_path / "a"), generate(tmp_path / "b")
    assert len(a) >= 300
    assert [c.kind for c in a] == [c.kind for c in b]
    assert {c.kind for c in a} >= {"command", "seed", "dps", "profile", "backend", "missing", "label", "option",
                                   "bench", "probe", "list", "run-empty", "report-dir", "report-dir-uncreatable", "run", "help"}
    assert sum(c.expect == "usage" for c in a) >= 300


def sweep(tmp_path: Path, tripwire: dict) -> tuple[list[Case], list[str], float]:
    cases = generate(tmp_path)
    failures: list[str] = []
    start = time.perf_counter()
    for case in cases:
        tripwire["on"] = case.expect == "ok" and case.kind == "run"
        outcome = call(case.argv)
        found = problems(case, outcome)
        if not found:
            continue
        failures.append(f"[{case.kind}] verify {' '.join(map(repr, case.argv))[:300]}: {'; '.join(found)}")
    return cases, failures, time.perf_counter() - start


def test_hostile_argument_lists(tmp_path, tripwire):
    cases, failures, elapsed = sweep(tmp_path, tripwire)
    assert len(cases) >= 300
    assert not failures, f"{len(failures)} of {len(cases)} calls misbehaved ({elapsed:.1f} s):\n" + "\n".join(failures)


def _one_line_usage_error(o: Outcome) -> bool:
    lines = o.err.strip("\n").split("\n")
    return o.code == 2 and o.raised is None and len(lines) == 1 and lines[0].startswith("verify: error:")


@pytest.mark.parametrize("argv", [["list", "a\nb"], ["run", "S3", "--report-dir", "{file}"]], ids=["argparse", "report-dir"])
def test_a_newline_in_an_argument_stays_on_one_line(argv, tmp_path):
    bad = tmp_path / "with\nnewline"
    bad.write_text("a file, not a folder")
    o = call([a.format(file=bad) for a in argv], budget=30)
    assert _one_line_usage_error(o), o.err


@pytest.mark.parametrize("command", [["run", "S3", "--profile", "quick"], ["bench", "--depths", "3", "--sizes", "4",
                                                                          "--minima", "canonical"]])
def test_an_uncreatable_report_dir_is_refused_before_any_work(command, tmp_path, tripwire):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    o = call([*command, "--report-dir", str(blocker / "sub")], budget=60)
    assert _one_line_usage_error(o), f"raised {o.raised!r}, exit {o.code}, stderr {o.err[-200:]!r}"


# --- malformed probe files through the command line ------------------------------------------------


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


PROBE_FILES = {
    "not npz bytes": lambda p: (p.write_bytes(b"\x00\x01garbage" * 40), str(p))[1],
    "empty file": lambda p: (p.write_bytes(b""), str(p))[1],
    "nan weights": lambda p: _npz(p, W1=np.full((2, 3), np.nan), W2=np.ones((2, 2)), Sigma_x=np.eye(3),
                                  Sigma_yx=np.ones((2, 3))),
    "nan statistics": lambda p: _npz(p, W1=np.ones((2, 3)), W2=np.ones((2, 2)), Sigma_x=np.full((3, 3), np.nan),
                                     Sigma_yx=np.ones((2, 3))),
    "inf samples": lambda p: _npz(p, W1=np.ones((2, 3)), W2=np.ones((2, 2)), X=np.full((3, 10), np.inf),
                                  Y=np.ones((2, 10))),
    "a .npy array": lambda p: (np.save(p.with_suffix(".npy"), np.eye(2)), os.replace(p.with_suffix(".npy"), p),
                               str(p))[2],
    "shapes that do not chain": lambda p: _npz(p, W1=np.ones((2, 3)), W2=np.ones((2, 4)), Sigma_x=np.eye(3),
                                               Sigma_yx=np.ones((2, 3))),
}


@pytest.mark.parametrize("name", list(PROBE_FILES))
def test_malformed_probe_file_through_the_cli(name, tmp_path):
    path = PROBE_FILES[name](tmp_path / "f.npz")
    for argv in (["probe", path], ["probe", path, "--json"]):
        o = call(argv, budget=30)
        assert o.raised is None, o.raised
        assert o.code == 2
        lines = o.err.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("verify: error:"), o.err
        assert "Traceback" not in o.out + o.err and o.out == ""


# --- no flaky verdicts (slow) -----------------------------------------------------------------------

SLOW = os.environ.get("VERIFY_SLOW") == "1"


@pytest.mark.skipif(not SLOW, reason="slow: set VERIFY_SLOW=1 (Sections I and III, default profile, 20 seeds)")
def test_verdicts_do_not_depend_on_the_seed():
    import array_api_compat.numpy as xp

    from verify.context import PROFILES, Context
    from verify.engine import Audit, select

    seeds = range(20)
    verdicts: dict[str, dict[int, str]] = {}
    start = time.perf_counter()
    for seed in seeds:
        audit = Audit(Context(seed=seed, profile=PROFILES["default"], backend="numpy", xp=xp))
        for r in audit.run(select(["I", "III"], audit.claims)):
            verdicts.setdefault(r.label, {})[seed] = r.verdict.value
    elapsed = time.perf_counter() - start
    flaky = {label: by_seed for label, by_seed in verdicts.items() if len(set(by_seed.values())) > 1}
    print(f"\n{len(verdicts)} claims x {len(seeds)} seeds on the default profile in {elapsed:.0f} s")
    assert not flaky, "verdicts that depend on the seed: " + "; ".join(
        f"{label}: " + ", ".join(f"seed {s} {v}" for s, v in by_seed.items()) for label, by_seed in flaky.items())

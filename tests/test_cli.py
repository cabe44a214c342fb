"""The ``verify`` command: exit codes, bad input, reports, reproducibility, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from verify import cli
from verify.engine import Audit, load_checks
from verify.model import Check, Measurement

QUICK = ["--profile", "quick"]
SMALL = "S3"  # a claim with fast checks


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--profile", "nope"], "invalid choice"),
        (["--backend", "tpu"], "invalid choice"),
        (["--seed", "-1"], "--seed must be between"),
        (["--seed", "x"], "--seed must be an integer"),
        (["--dps", "3"], "--dps must be between"),
        (["run"], "required"),
        (["run", "S999"], "unknown label or section"),
        (["run", "Lemma 77"], "unknown label or section"),
        (["frobnicate"], "unknown command"),
        (["list", "--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, fragment, capsys, tmp_path):
    code = cli.main([*argv, *(["--report-dir", str(tmp_path)] if argv and argv[0] == "run" and len(argv) > 1 else [])])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify: error:") and fragment in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_report_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert cli.main(["run", SMALL, "--report-dir", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_list_json_covers_every_label(capsys):
    assert cli.main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    labels = {c["label"] for c in listing["claims"]}
    assert {f"S{i}" for i in range(1, 107)} <= labels
    assert {"P1", "P2", "P3", "Definition S1", "Claim S1", "Lemma S1", "Lemma S2", "Table S1"} <= labels
    assert {f"Lemma {i}" for i in range(1, 5)} | {f"Theorem {i}" for i in range(1, 5)} <= labels
    assert listing["coverage"]["total"] == len(labels)
    assert listing["coverage"]["covered"] == sum(c["covered"] for c in listing["claims"])


def _run(tmp_path: Path, *extra: str) -> dict:
    code = cli.main(["run", SMALL, *QUICK, "--report-dir", str(tmp_path), *extra])
    assert code == 0
    return json.loads((tmp_path / "report.json").read_text())


def _without_timings(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for key in ("started", "duration_s", "command"):
        report["run"].pop(key)
    for claim in report["claims"]:
        claim.pop("seconds")
        for check in claim["checks"]:
            check.pop("seconds")
    return report


def test_run_writes_the_three_reports(tmp_path):
    report = _run(tmp_path)
    assert report["schema"] == 1
    assert {"seed", "profile", "backend", "dps", "started", "duration_s", "packages"} <= report["run"].keys()
    claim = report["claims"][0]
    assert claim["id"] == SMALL and claim["checks"]
    check = claim["checks"][0]
    assert {"name", "method", "verdict", "instances", "shapes", "max_residual", "tolerance",
            "tolerance_reason", "seed", "seconds", "negative_controls"} <= check.keys()
    assert all(k["rejected"] for c in claim["checks"] for k in c["negative_controls"])
    assert report["summary"]["coverage"]["total"] == 122
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.index("## Named results") < markdown.index("## Errata") < markdown.index("## Every claim")
    suites = ET.parse(tmp_path / "junit.xml").getroot()
    assert suites.find("testsuite/testcase").get("name") == SMALL
    assert not list(tmp_path.glob(".partial-*"))


def test_same_seed_same_report(tmp_path):
    first = _without_timings(_run(tmp_path / "a", "--seed", "7"))
    second = _without_timings(_run(tmp_path / "b", "--seed", "7"))
    assert first == second


def test_json_flag_prints_the_report(tmp_path, capsys):
    _run(tmp_path, "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "report.json").read_text())


def _failing_check(ctx, formula) -> Measurement:
    return Measurement(residual=formula, tolerance=0.5, tolerance_reason="toy", instances=1)


def test_a_failed_claim_exits_1(tmp_path, monkeypatch):
    checks = dict(load_checks())
    checks[SMALL] = [Check(claim=SMALL, name="always wrong", method="float", run=_failing_check,
                           printed=1.0, mutants={"also wrong": 2.0})]
    monkeypatch.setattr(cli, "Audit", lambda ctx, jobs: Audit(ctx, checks=checks, jobs=jobs))
    assert cli.main(["run", SMALL, *QUICK, "--report-dir", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["claims"][0]["verdict"] == "failed" and report["summary"]["ok"] is False


def test_interrupted_run_keeps_the_previous_report(tmp_path, monkeypatch, capsys):
    _run(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def interrupted(self, labels):
        raise KeyboardInterrupt

    monkeypatch.setattr(Audit, "run", interrupted)
    assert cli.main(["run", SMALL, *QUICK, "--report-dir", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigint_in_a_real_process_leaves_the_report_intact(tmp_path, jobs):
    _run(tmp_path)
    before = (tmp_path / "report.json").read_bytes()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "verify", "--jobs", jobs, "--report-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(4.0)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-500:]
    assert b"Traceback" not in err
    assert (tmp_path / "report.json").read_bytes() == before
    assert not list(tmp_path.glob(".partial-*"))
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the interrupted run"

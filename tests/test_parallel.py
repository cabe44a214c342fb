"""``--jobs``: checks evaluated in worker processes give the same report as in-process."""

from __future__ import annotations

import json

from verify import cli, engine
from verify.engine import Audit, load_checks
from verify.context import PROFILES, Context
from verify.parallel import groups

SELECTION = ["S3", "S15", "Lemma 2"]  # two sections, a named result with its closure


def _checks_by_id(report: dict) -> dict:
    return {(c["id"], k["name"]): {f: v for f, v in k.items() if f != "seconds"}
            for c in report["claims"] for k in c["checks"]}


def test_workers_give_the_same_report_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "PARALLEL_MIN_CHECKS", 1)
    reports = {}
    for jobs in ("1", "2"):
        folder = tmp_path / jobs
        assert cli.main(["run", *SELECTION, "--profile", "quick", "--jobs", jobs, "--report-dir", str(folder)]) == 0
        reports[jobs] = json.loads((folder / "report.json").read_text())
    one, two = (_checks_by_id(reports[j]) for j in ("1", "2"))
    assert one == two and len(one) > 5
    assert [c["verdict"] for c in reports["1"]["claims"]] == [c["verdict"] for c in reports["2"]["claims"]]


def test_small_runs_stay_in_process(monkeypatch):
    def no_workers(*args, **kwargs):
        raise AssertionError("workers started for a small run")

    monkeypatch.setattr("verify.parallel.evaluate_parallel", no_workers)
    audit = Audit(Context(profile=PROFILES["quick"]), jobs=4)
    assert audit.run(["S3"])[0].verdict.value == "erratum"  # as the baseline records


def test_groups_keep_a_module_together_biggest_first():
    checks = [c for cs in load_checks().values() for c in cs]
    grouped = groups(checks)
    assert sum(map(len, grouped)) == len(checks)
    assert all(len({c.run.__module__ for c in g}) == 1 for g in grouped)
    assert [len(g) for g in grouped] == sorted((len(g) for g in grouped), reverse=True)


def test_a_dead_worker_is_a_clean_error(monkeypatch, tmp_path, capsys):
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from verify import parallel

    class DeadPool:  # every task's worker "died"
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("killed"))
            return future

        def shutdown(self, *args, **kwargs):
            pass

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", DeadPool)
    monkeypatch.setattr(engine, "PARALLEL_MIN_CHECKS", 1)
    before = list(tmp_path.iterdir())
    assert cli.main(["run", "S3", "--profile", "quick", "--jobs", "2", "--report-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "worker process died" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == before

"""The regression baseline: ``verify.baseline.compare`` names what changed, and nothing else."""

from __future__ import annotations

import copy
import json

from verify import baseline, cli


def _check(name: str, verdict: str = "passed", residual=1e-15, tolerance=1e-12) -> dict:
    return {"name": name, "method": "float", "verdict": verdict, "max_residual": residual, "tolerance": tolerance,
            "seconds": 0.1, "message": "", "negative_controls": []}


def _report() -> dict:
    return {
        "schema": 1,
        "run": {"seed": 0, "profile": "quick", "backend": "numpy", "dps": 50, "duration_s": 1.0},
        "claims": [
            {"id": "S1", "verdict": "passed", "checks": [_check("a"), _check("b", residual=2e-13)]},
            {"id": "S2", "verdict": "erratum", "checks": [_check("c", "erratum", residual="inf", tolerance=1e-9)]},
            {"id": "Lemma 1", "verdict": "passed", "checks": [_check("d", residual=None, tolerance=None)]},
        ],
    }


def test_identical_reports_have_no_differences():
    r = _report()
    assert baseline.compare(r, copy.deepcopy(r)) == []
    assert baseline.render([]) == "no differences from the baseline\n"


def test_timings_and_messages_are_not_differences():
    r, s = _report(), _report()
    s["run"]["duration_s"] = 99.0
    s["claims"][0]["checks"][0].update(seconds=7.0, message="something")
    assert baseline.compare(s, r) == []


def test_changed_verdicts_are_reported():
    before, after = _report(), _report()
    after["claims"][0]["verdict"] = "failed"
    after["claims"][0]["checks"][1]["verdict"] = "failed"
    diffs = baseline.compare(after, before)
    kinds = [(d["kind"], d["claim"], d["check"]) for d in diffs]
    assert kinds == [("claim-verdict", "S1", None), ("check-verdict", "S1", "b")]
    assert diffs[0]["before"] == "passed" and diffs[0]["after"] == "failed"
    assert "S1: verdict passed -> failed" in baseline.render(diffs)


def test_a_residual_that_grew_past_its_tolerance_is_reported_even_with_the_same_verdict():
    before, after = _report(), _report()
    after["claims"][0]["checks"][0]["max_residual"] = 5e-12  # was 1e-15, tolerance 1e-12
    after["claims"][0]["checks"][1]["max_residual"] = 9e-13  # grew, but still within tolerance: not reported
    diffs = baseline.compare(after, before)
    assert [(d["kind"], d["check"]) for d in diffs] == [("residual", "a")]
    assert "grew to 5e-12" in diffs[0]["message"] and "\n" not in diffs[0]["message"]


def test_nan_residual_counts_as_past_tolerance_and_inf_baseline_is_not_a_regression():
    before, after = _report(), _report()
    after["claims"][0]["checks"][0]["max_residual"] = "nan"
    after["claims"][1]["checks"][0]["max_residual"] = "nan"  # was already "inf" > tolerance
    diffs = baseline.compare(after, before)
    assert [(d["kind"], d["claim"], d["check"]) for d in diffs] == [("residual", "S1", "a")]


def test_added_and_removed_claims_and_checks():
    before, after = _report(), _report()
    del after["claims"][2]
    after["claims"].append({"id": "S9", "verdict": "passed", "checks": []})
    after["claims"][0]["checks"].append(_check("new"))
    del after["claims"][1]["checks"][0]
    diffs = baseline.compare(after, before)
    got = {(d["kind"], d["claim"], d["check"]) for d in diffs}
    assert got == {("claim-added", "S9", None), ("claim-removed", "Lemma 1", None),
                   ("check-added", "S1", "new"), ("check-removed", "S2", "c")}
    text = baseline.render(diffs)
    assert text.startswith("4 differences") and "Lemma 1: claim removed (was passed)" in text
    assert {d["kind"] for d in baseline.compare(after, before, common_only=True)} == {"check-added", "check-removed"}


def test_changed_settings_are_named():
    before, after = _report(), _report()
    after["run"]["seed"] = 1
    diffs = baseline.compare(after, before)
    assert [d["kind"] for d in diffs] == ["settings"] and "seed" in diffs[0]["message"]


def test_two_quick_runs_with_the_same_seed_do_not_differ(tmp_path):
    reports = []
    for name in ("first", "second"):
        folder = tmp_path / name
        assert cli.main(["run", "S3", "S15", "--profile", "quick", "--seed", "7", "--report-dir", str(folder)]) == 0
        reports.append(json.loads((folder / "report.json").read_text()))
    assert [c["id"] for c in reports[0]["claims"]] == ["S3", "S15"]
    assert baseline.compare(reports[1], reports[0]) == []
    # another seed: only the setting differs (the verdicts and tolerances stand)
    other = tmp_path / "other"
    assert cli.main(["run", "S3", "S15", "--profile", "quick", "--seed", "8", "--report-dir", str(other)]) == 0
    third = json.loads((other / "report.json").read_text())
    assert [d["kind"] for d in baseline.compare(third, reports[0])] == ["settings"]

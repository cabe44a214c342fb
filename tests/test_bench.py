"""``verify bench`` on tiny sizes: routes agree, skips are explained, every table is written."""

from __future__ import annotations

import json

import pytest

from verify import bench, cli
from verify.bench import audit, lambda_max, precision, throughput, torch_power


def test_routes_agree_on_small_instances():
    section = lambda_max.run(lambda_max.shapes([3], [4], rectangular=[(3, 2, 4, 2)]), ["canonical", "random (S104)"],
                             lambda_max.Limits(), repeats=1)
    rows = section.data["rows"]
    assert {r["route"] for r in rows} == set(lambda_max.ROUTES)
    assert {r["widths"] for r in rows} == {"4", "3-2-4-2"}
    for r in rows:
        if lambda_max.ROUTES[r["route"]].needs_torch:
            if not torch_power.available():
                assert r["note"].startswith("skipped: PyTorch")
                continue
            tol = 1e-2 if r["route"] == lambda_max.TORCH_DEFAULT else 1e-6
        else:
            tol = 1e-10
        assert r["value"] is not None and r["rel_error"] < tol, r
    library = [r for r in rows if r["route"] == lambda_max.LIBRARY]
    assert all(r["ratio"] == 1 and r["matvec_seconds"] > 0 for r in library)
    assert [t["name"] for t in section.data["targets"]][0].startswith("m = 8, d = 512")
    assert section.data["targets"][0]["met"] is None  # not in this sweep


def test_routes_past_the_limits_are_skipped_with_a_reason():
    section = lambda_max.run(lambda_max.shapes([3], [6], rectangular=[]), ["canonical"],
                             lambda_max.Limits(seconds=1e-9), repeats=1)
    rows = section.data["rows"]
    dense = [r for r in rows if "dense" in r["route"]]
    assert all(r["value"] is None and r["note"].startswith("skipped: predicted") for r in dense)
    assert next(r for r in rows if r["route"] == lambda_max.LIBRARY)["value"] is not None


def test_a_torch_run_past_its_cap_says_so():
    pytest.importorskip("torch")
    inst = lambda_max.instance(lambda_max.Shape((5, 5, 5, 5)), "random (S104)", 0)
    r = torch_power.lambda_max(inst.weights, inst.data, tol=0.0, max_iter=10**6, offset=0.0, cap_s=0.05)
    assert r.timed_out and not r.converged and r.iterations > 1


def test_targets_are_judged_on_measured_rows():
    def row(route, seconds, err, m=8, widths="512"):
        return lambda_max.Row(m, widths, "canonical", route, seconds=seconds, rel_error=err)

    found = lambda_max.targets([row(lambda_max.LIBRARY, 1.0, 1e-15), row(lambda_max.TORCH_TIGHT, 20.0, 1e-9),
                                row(lambda_max.TORCH_DEFAULT, 2.0, 1e-4)])
    assert [t.met for t in found] == [True, True, True]
    found = lambda_max.targets([row(lambda_max.LIBRARY, 6.0, 1e-15), row(lambda_max.TORCH_TIGHT, 20.0, 1e-9),
                                row(lambda_max.TORCH_DEFAULT, 2.0, 1e-4)])
    assert [t.met for t in found] == [False, False, False]  # too slow for d = 512, < 10x, slower than PyHessian
    assert "library slower" in found[2].detail


def test_throughput_verifies_every_instance_in_both_ways():
    section = throughput.run(batch=16, loop=4, repeats=1, shapes=[(2, 2), (3, 3)])
    rows = section.data["rows"]
    assert len(rows) == 2 * len(throughput.CLAIMS)
    assert all(r["verified"] == r["batch"] == 16 and r["speedup"] > 0 for r in rows)


def test_precision_compares_mpmath_and_flint():
    section = precision.run(m=2, d=2, digits=(30,), count=1, repeats=1)
    rows = {r["library"]: r for r in section.data["rows"]}
    assert rows[precision.MPMATH]["residual"] < 1e-25
    flint_row = rows[precision.FLINT]
    if flint_row["note"].startswith("skipped"):
        return
    assert flint_row["residual"] < 1e-25 and "contains 0" not in flint_row["note"]
    assert "0 in every entry of every difference: True" in flint_row["note"]


def _report(tmp_path, claims=12):
    doc = {"schema": 1, "run": {"duration_s": 20.0, "profile": "quick", "seed": 0},
           "claims": [{"id": f"S{i}", "section": "I", "verdict": "passed", "seconds": float(i)} for i in range(claims)]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc))
    return path


def test_audit_table_reads_a_report(tmp_path):
    section = audit.run(_report(tmp_path))
    assert [c[1] for c in section.cells] == [f"S{i}" for i in range(11, 1, -1)]
    assert section.data["duration_s"] == 20.0 and section.data["wall_s"] is None


def test_bench_command_writes_every_table(tmp_path):
    out = tmp_path / "out"
    argv = ["bench", "--depths", "2", "--sizes", "3", "--max-d", "3", "--quick", "--repeats", "1", "--tables", "lambda_max", "audit",
            "--audit-report", str(_report(tmp_path)), "--report-dir", str(out)]
    assert cli.main(argv) == 0
    document = json.loads((out / "bench.json").read_text())
    assert document["schema"] == bench.SCHEMA and set(document["tables"]) == {"lambda_max", "audit"}
    assert len(document["tables"]["lambda_max"]["rows"]) == len(lambda_max.ROUTES) * 2
    text = (out / "bench.md").read_text()
    assert "| m | widths |" in text and "| rank | claim |" in text


def test_the_command_line_knows_every_table():
    assert cli.BENCH_TABLES == bench.TABLES


@pytest.mark.parametrize("argv", [["--sizes", "0,3"], ["--minima", "weird"], ["--tables", "nope"], ["--max-d", "0"],
                                  ["--repeats", "0"], ["--max-d", "2", "--sizes", "8"],
                                  ["--tables", "audit", "--audit-report", "{missing}"],
                                  ["--tables", "audit", "--audit-report", "{bad}"]])
def test_bench_rejects_bad_values(argv, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"run": {}}')
    argv = [a.format(missing=tmp_path / "none.json", bad=bad) for a in argv]
    assert cli.main(["bench", *argv, "--report-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.count("verify: error:") == 1

"""``verify bench`` on tiny sizes: every method agrees, skips are explained, files are written."""

from __future__ import annotations

import json

from verify import bench, cli


def test_methods_agree_on_small_instances():
    rows = bench.run([3], [4], ["canonical", "random (S104)"], bench.Limits())
    assert {r.method for r in rows} == set(bench.METHODS)
    for r in rows:
        assert r.value is not None and r.rel_error < 1e-10, r


def test_methods_past_the_limits_are_skipped_with_a_reason():
    rows = bench.run([3], [6], ["canonical"], bench.Limits(seconds=1e-9))
    dense = [r for r in rows if "dense" in r.method]
    assert all(r.value is None and r.note.startswith("skipped: predicted") for r in dense)
    assert next(r for r in rows if r.method == bench.FASTEST).value is not None


def test_bench_command_writes_json_and_markdown(tmp_path):
    assert cli.main(["bench", "--depths", "2", "--sizes", "3", "--report-dir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "bench.json").read_text())
    assert document["schema"] == 1 and len(document["rows"]) == 2 * len(bench.METHODS)
    assert "| m | d |" in (tmp_path / "bench.md").read_text()


def test_bench_rejects_bad_lists(capsys):
    assert cli.main(["bench", "--sizes", "0,3"]) == 2
    assert cli.main(["bench", "--minima", "weird"]) == 2
    assert capsys.readouterr().err.count("verify: error:") == 2

"""Regression guard for derivations: a quick run agrees with the committed baseline.

To accept an intentional change, regenerate the baseline and commit it:
``verify --profile quick --write-baseline reports/baseline.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from verify import baseline, cli

BASELINE = Path(__file__).resolve().parent.parent / "reports" / "baseline.json"
SELECTION = ["I", "III"]


def test_quick_run_matches_the_committed_baseline(tmp_path):
    code = cli.main(["run", *SELECTION, "--profile", "quick", "--report-dir", str(tmp_path)])
    assert code == 0
    current = json.loads((tmp_path / "report.json").read_text())
    diffs = baseline.compare(current, baseline.load(BASELINE), common_only=True)
    assert not diffs, baseline.render(diffs)


def test_baseline_flag_names_changes_and_exits_1(tmp_path, capsys):
    reference = tmp_path / "baseline.json"
    assert cli.main(["run", "S3", "--profile", "quick", "--report-dir", str(tmp_path / "a"),
                     "--write-baseline", str(reference)]) == 0
    document = json.loads(reference.read_text())
    assert set(document) == {"schema", "run", "claims"}
    document["claims"][0]["verdict"] = "passed"  # pretend the baseline had S3 pass
    reference.write_text(json.dumps(document))
    assert cli.main(["run", "S3", "--profile", "quick", "--report-dir", str(tmp_path / "b"),
                     "--baseline", str(reference)]) == 1
    assert "S3: verdict passed -> erratum" in capsys.readouterr().out

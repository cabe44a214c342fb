"""Figures: drawn into the report folder, of the expected size, and listed in report.md."""

from __future__ import annotations

import json

import pytest

from verify import cli
from verify.catalog import load
from verify.context import Context
from verify.figures import fig_dependency

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _report(verdict: str) -> dict:
    return {"claims": [{"id": c.label, "kind": c.kind, "uses": list(c.uses), "verdict": verdict}
                       for c in load().values()]}


def test_dependency_graph_has_the_expected_size(tmp_path):
    path = tmp_path / "graph.png"
    summary = fig_dependency.render(Context(), path, _report("passed"))
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (800, 1200) and image.std() > 0
    assert summary.startswith("13 of 13 named results")


def test_layers_follow_the_proofs():
    named = {c.label: list(c.uses) for c in load().values() if c.named}
    depth = fig_dependency.layers(named)
    assert depth["Theorem 2"] > depth["Theorem 1"] > depth["Lemma 3"]
    assert depth["Theorem 3"] > depth["Theorem 2"]


def test_verify_writes_the_figures_of_the_selection(tmp_path):
    assert cli.main(["run", "Definition S1", "--profile", "quick", "--report-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    drawn = {f["file"] for f in report["figures"] if "summary" in f}
    assert "dependency_graph.png" in drawn and (tmp_path / "dependency_graph.png").stat().st_size > 10_000
    assert "](dependency_graph.png)" in (tmp_path / "report.md").read_text()


def test_table_s1_figure_reads_the_audit_instead_of_training_again(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from proofs import table_s1
    from verify.figures import fig_experiments

    def no_training(*args):
        raise AssertionError("the figure trained the networks again")

    monkeypatch.setattr(table_s1, "experiment", no_training)
    summary = {name: {"lambda_max per seed": [1.0, 2.0] if name == "SGD" else [5.0, 6.0]} for name in table_s1.METHODS}
    check = {"printed": {"details": {"measured vs printed": summary}}}
    report = {"claims": [{"id": "Table S1", "checks": [check]}]}
    text = fig_experiments.render_table_s1(Context(), tmp_path / "t.png", report)
    assert text.startswith("lambda_max SGD 1.5") and "2 seeds" in text

"""The mutation score: negative controls read back from a report, and library mutants."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from verify import mutants
from verify.context import PROFILES, Context
from verify.engine import Audit
from verify.model import BAD


def _control(name: str, rejected: bool) -> dict:
    return {"name": name, "rejected": rejected, "residual": 0.5 if rejected else 0.0, "message": ""}


def synthetic_report() -> dict:
    return {"claims": [
        {"id": "S1", "section": "I", "verdict": "passed", "checks": [
            {"name": "a", "verdict": "passed", "negative_controls": [_control("sign", True), _control("factor 2", True)]},
            {"name": "b", "verdict": "passed", "negative_controls": [_control("transpose", True)]},
        ]},
        {"id": "S2", "section": "I", "verdict": "error", "checks": [
            {"name": "c", "verdict": "error", "negative_controls": [_control("exponent", False), _control("m+1", True),
                                                                    _control("index", False)]},
            {"name": "crashed", "verdict": "error", "negative_controls": []},
        ]},
        {"id": "Lemma 1", "section": "II", "verdict": "uncovered", "checks": []},
    ]}


def test_score_counts_per_claim_and_overall():
    s = mutants.score(synthetic_report())
    assert s["overall"] == {"claims": 3, "checks": 4, "run": 6, "rejected": 4, "score": round(4 / 6, 4),
                            "non_discriminating": 1, "unscored": 1}
    by = {c["claim"]: c for c in s["claims"]}
    assert (by["S1"]["run"], by["S1"]["rejected"], by["S1"]["score"]) == (3, 3, 1.0)
    assert (by["S2"]["run"], by["S2"]["rejected"], by["S2"]["score"]) == (3, 1, round(1 / 3, 4))
    assert by["S2"]["non_discriminating"] == [{"check": "c", "surviving": ["exponent", "index"]}]
    assert by["S2"]["unscored"] == [{"check": "crashed", "verdict": "error"}]
    assert by["Lemma 1"]["score"] is None and by["Lemma 1"]["run"] == 0
    assert s["non_discriminating"] == [{"claim": "S2", "check": "c", "surviving": ["exponent", "index"]}]
    json.dumps(s, allow_nan=False)


def test_score_of_an_empty_report():
    s = mutants.score({"claims": []})
    assert s["overall"]["run"] == 0 and s["overall"]["score"] is None and s["non_discriminating"] == []


def test_render_and_print():
    s = mutants.score(synthetic_report())
    library = [{"mutant": "m", "description": "a [bold]thing[/]", "patched": ["proofs.x.f"], "labels": ["S1"],
                "claims_run": 1, "turned_red": [], "killed": False, "crash": None, "seconds": 0.1}]
    text = mutants.render_markdown(s, library)
    assert "4/6 rejected (66.7 %)" in text and "S2 :: c: surviving exponent, index" in text
    assert "nothing (survived)" in text and "0/1 library mutants" in text
    console = Console(record=True, width=200)
    mutants.print_mutants(s, library, console)
    shown = console.export_text()
    assert "66.7 %" in shown and "exponent, index" in shown and "a [bold]thing[/]" in shown


def test_write(tmp_path):
    s = mutants.score(synthetic_report())
    paths = mutants.write(s, None, tmp_path / "out")
    assert json.loads(paths["mutants.json"].read_text())["score"] == s
    assert paths["mutants.md"].read_text().startswith("# Mutation score")


def test_every_library_mutant_patches_something_and_undoes_it():
    from proofs import lemma3, linear_network, minima

    originals = (lemma3.phi_blocks, lemma3.small_factors, lemma3.flattest_value, linear_network.gradient,
                 minima.random_minimum, minima.GENERATORS["random (S104)"])
    for mutant in mutants.LIBRARY_MUTANTS.values():
        with mutant.patch() as where:
            assert where, mutant.name
            current = (lemma3.phi_blocks, lemma3.small_factors, lemma3.flattest_value, linear_network.gradient,
                       minima.random_minimum, minima.GENERATORS["random (S104)"])
            assert current != originals
        assert (lemma3.phi_blocks, lemma3.small_factors, lemma3.flattest_value, linear_network.gradient,
                minima.random_minimum, minima.GENERATORS["random (S104)"]) == originals
    with mutants.LIBRARY_MUTANTS["random-minimum-no-inverse"].patch() as where:
        assert minima.GENERATORS["random (S104)"] is minima.random_minimum is not originals[4]
        assert any("GENERATORS" in w or "dict" in w for w in where)


def test_a_patch_is_undone_after_an_exception():
    from proofs import lemma3

    original = lemma3.flattest_value
    with pytest.raises(RuntimeError):
        with mutants.LIBRARY_MUTANTS["flattest-exponent"].patch():
            assert lemma3.flattest_value is not original
            raise RuntimeError
    assert lemma3.flattest_value is original


@pytest.fixture
def quick():
    import array_api_compat.numpy as xp

    return Context(seed=0, profile=PROFILES["quick"], backend="numpy", xp=xp)


def test_a_library_mutant_turns_a_claim_red_and_the_claim_is_green_again_afterwards(quick):
    label = "S55"  # Phi_k built with Sigma_x^{1/2}: a tenth of a second on the quick profile
    progress = []
    [result] = mutants.run_library_mutants(quick, [label], mutants=["dropped-sigma-half"],
                                           on_progress=lambda stage, claim: progress.append((stage, claim)))
    assert result["mutant"] == "dropped-sigma-half" and result["labels"] == [label]
    assert [r["claim"] for r in result["turned_red"]] == [label]
    red = result["turned_red"][0]
    assert red["verdict"] in {"failed", "error"} and red["was"] not in {"failed", "error"} and red["checks"]
    assert {stage for stage, _ in progress} == {"clean", "dropped-sigma-half"}
    json.dumps(result, allow_nan=False)
    again = Audit(quick).run([label])[0]
    assert again.verdict not in BAD and again.verdict.value == red["was"]


def test_clean_verdicts_can_be_given(quick):
    """With the clean verdicts known (e.g. from report.json) no unpatched run is made; a claim
    that was already red does not count as turned red."""
    progress = []
    [result] = mutants.run_library_mutants(quick, ["S55"], mutants=["dropped-sigma-half"], clean={"S55": "error"},
                                           on_progress=lambda stage, claim: progress.append(stage))
    assert set(progress) == {"dropped-sigma-half"} and result["turned_red"] == []


def test_unknown_mutant_or_label_is_an_error(quick):
    from verify.engine import SelectionError

    with pytest.raises(ValueError, match="unknown library mutant"):
        mutants.run_library_mutants(quick, ["S55"], mutants=["nope"])
    with pytest.raises(SelectionError):
        mutants.run_library_mutants(quick, ["S999"], mutants=["gradient-sign"])

"""The engine's own behaviour: verdict logic, negative controls, roll-ups, selection."""

from __future__ import annotations

import pytest

from verify.catalog import CatalogError, parse
from verify.context import PROFILES, Context, derive_seed
from verify.engine import Audit, SelectionError, select
from verify.evaluate import evaluate
from verify.model import Check, Measurement, Variant, Verdict
from verify.verdicts import claim_verdict, combine, rollup

CTX = Context(seed=1, profile=PROFILES["quick"])


def compare_with_truth(ctx: Context, formula) -> Measurement:
    """Toy check: formula(x) against the ground truth 2x on a few x."""
    residual = max(abs(formula(x) - 2 * x) for x in (0.5, 1.0, 3.0))
    return Measurement(residual, 1e-12, "exact arithmetic on small floats", instances=3,
                       counterexample={"x": 3.0})


def make(printed, mutants=None, **kw) -> Check:
    return Check(claim="X", name="toy", method="float", run=compare_with_truth, printed=printed,
                 mutants=mutants if mutants is not None else {"times 3": lambda x: 3 * x}, **kw)


def test_printed_formula_that_holds_passes_and_controls_are_rejected():
    r = evaluate(make(lambda x: 2 * x), CTX)
    assert r.verdict is Verdict.PASSED
    assert [c.rejected for c in r.controls] == [True]


def test_proof_is_verified():
    assert evaluate(make(lambda x: 2 * x, proves=True), CTX).verdict is Verdict.VERIFIED


def test_wrong_formula_fails_and_keeps_counterexample():
    r = evaluate(make(lambda x: x + 1), CTX)
    assert r.verdict is Verdict.FAILED
    assert r.counterexample == {"x": 3.0}


def test_correction_turns_failure_into_erratum():
    r = evaluate(make(lambda x: x + 1, corrected=Variant(lambda x: 2 * x, "factor 2")), CTX)
    assert r.verdict is Verdict.ERRATUM and "factor 2" in r.message
    assert r.corrected is not None and r.corrected.ok


def test_failing_correction_is_still_a_failure():
    r = evaluate(make(lambda x: x + 1, corrected=Variant(lambda x: 4 * x, "wrong fix")), CTX)
    assert r.verdict is Verdict.FAILED


def test_failure_without_assumption_is_conditional():
    r = evaluate(make(lambda x: x + 1, without="x > 0"), CTX)
    assert r.verdict is Verdict.CONDITIONAL and "x > 0" in r.message


def test_surviving_mutant_makes_the_check_non_discriminating():
    r = evaluate(make(lambda x: 2 * x, mutants={"same thing": lambda x: x + x}), CTX)
    assert r.verdict is Verdict.ERROR and "non-discriminating" in r.message


def test_crashing_check_is_an_error_not_a_crash():
    r = evaluate(make(lambda x: 1 / 0 * x), CTX)
    assert r.verdict is Verdict.ERROR and "ZeroDivisionError" in r.message


def test_missing_optional_module_skips():
    r = evaluate(make(lambda x: 2 * x, needs=("no_such_module_xyz",)), CTX)
    assert r.verdict is Verdict.SKIPPED and "no_such_module_xyz" in r.message


def test_backend_check_is_skipped_without_a_namespace():
    assert evaluate(make(lambda x: 2 * x, backend=True), Context(xp=None)).verdict is Verdict.SKIPPED


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        ([], Verdict.UNCOVERED),
        ([Verdict.SKIPPED], Verdict.SKIPPED),
        ([Verdict.PASSED, Verdict.SKIPPED], Verdict.PASSED),
        ([Verdict.PASSED, Verdict.VERIFIED], Verdict.VERIFIED),
        ([Verdict.VERIFIED, Verdict.ERRATUM], Verdict.ERRATUM),
        ([Verdict.ERRATUM, Verdict.CONDITIONAL], Verdict.CONDITIONAL),
        ([Verdict.PASSED, Verdict.FAILED, Verdict.ERROR], Verdict.FAILED),
        ([Verdict.PASSED, Verdict.ERROR], Verdict.ERROR),
    ],
)
def test_claim_verdict(verdicts, expected):
    assert claim_verdict(verdicts) is expected


def test_rollup_of_named_results():
    assert rollup(None, []) is Verdict.UNCOVERED
    assert rollup(None, [Verdict.PASSED, Verdict.VERIFIED]) is Verdict.PASSED
    assert rollup(Verdict.PASSED, [Verdict.UNCOVERED]) is Verdict.UNCOVERED
    assert rollup(Verdict.FAILED, [Verdict.UNCOVERED]) is Verdict.FAILED
    assert combine([Verdict.SKIPPED, Verdict.SKIPPED]) is Verdict.SKIPPED


CATALOG = """
[[claim]]
label = "S1"
section = "I"
kind = "equation"
title = "one"
statement = "a = b"
[[claim]]
label = "S2"
section = "I"
kind = "equation"
title = "two"
statement = "c = d"
[[claim]]
label = "S3"
section = "III"
kind = "equation"
title = "three"
statement = "e = f"
[[claim]]
label = "Lemma 9"
section = "III"
kind = "lemma"
title = "named"
statement = "everything"
uses = ["S1", "S3"]
"""


@pytest.fixture
def toy_audit() -> Audit:
    claims = parse(CATALOG)
    checks = {
        "S1": [make(lambda x: 2 * x)],
        "S3": [make(lambda x: x + 1, corrected=Variant(lambda x: 2 * x, "fix"))],
    }
    return Audit(CTX, claims=claims, checks=checks)


def test_named_result_rolls_up_from_what_its_proof_uses(toy_audit):
    result = toy_audit.claim("Lemma 9")
    assert result.rolled_from == {"S1": Verdict.PASSED, "S3": Verdict.ERRATUM}
    assert result.verdict is Verdict.ERRATUM
    assert toy_audit.claim("S2").verdict is Verdict.UNCOVERED
    assert toy_audit.covered() == 2


def test_selection_by_label_section_range_and_closure(toy_audit):
    claims = toy_audit.claims
    assert select(["S2"], claims) == ["S2"]
    assert select(["iii"], claims) == ["S1", "S3", "Lemma 9"]
    assert select(["lemma_9"], claims) == ["S1", "S3", "Lemma 9"]
    assert select(["S1-S3"], claims) == ["S1", "S2", "S3"]
    with pytest.raises(SelectionError, match="unknown label"):
        select(["S99"], claims)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[claim]]\nlabel="A"\nsection="I"\nkind="equation"\ntitle="t"\n', "lacks field"),
        (CATALOG + CATALOG, "duplicate label"),
        (CATALOG.replace('uses = ["S1", "S3"]', 'uses = ["S7"]'), "unknown labels"),
        (CATALOG.replace('section = "III"', 'section = "X"', 1), "unknown section"),
    ],
)
def test_catalog_rejects_malformed_entries(text, message):
    with pytest.raises(CatalogError, match=message):
        parse(text)


def test_catalog_rejects_cycles():
    cyclic = CATALOG + '\n[[claim]]\nlabel = "Lemma 8"\nsection = "I"\nkind = "lemma"\ntitle = "t"\nstatement = "s"\nuses = ["Lemma 10"]\n' \
        '[[claim]]\nlabel = "Lemma 10"\nsection = "I"\nkind = "lemma"\ntitle = "t"\nstatement = "s"\nuses = ["Lemma 8"]\n'
    with pytest.raises(CatalogError, match="cycle"):
        parse(cyclic)


def test_seeds_are_stable_and_distinct():
    assert derive_seed(0, "S15::a") == derive_seed(0, "S15::a")
    assert derive_seed(0, "S15::a") != derive_seed(1, "S15::a")
    a = CTX.for_check("S1::x").rng("t").standard_normal(3)
    b = CTX.for_check("S1::x").rng("t").standard_normal(3)
    assert (a == b).all()


def test_assumptions_carried_by_a_named_result_are_discharged():
    text = CATALOG.replace('uses = ["S1", "S3"]', 'uses = ["S1", "S3"]\ndischarges = ["x > 0"]')
    claims = parse(text)
    checks = {"S1": [make(lambda x: 2 * x)], "S3": [make(lambda x: x + 1, without="x > 0")]}
    audit = Audit(CTX, claims=claims, checks=checks)
    result = audit.claim("Lemma 9")
    assert audit.claim("S3").verdict is Verdict.CONDITIONAL
    assert result.discharged == {"S3": ["x > 0"]} and result.verdict is Verdict.PASSED
    other = Audit(CTX, claims=parse(text.replace('"x > 0"]', '"y > 0"]')), checks=checks)
    assert other.claim("Lemma 9").verdict is Verdict.CONDITIONAL

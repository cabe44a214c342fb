"""Certificates (``verify --certify``): exact spectra, enclosures, negative controls, roll-up, CLI."""

from __future__ import annotations

import functools
import importlib.util
import json
from fractions import Fraction
from itertools import product

import pytest

pytest.importorskip("flint")

from proofs import certificates, certify  # noqa: E402
from proofs import certify_instances as ci  # noqa: E402
from verify import cli  # noqa: E402
from verify.context import PROFILES, Context  # noqa: E402
from verify.engine import Audit, load_checks  # noqa: E402
from verify.evaluate import evaluate  # noqa: E402
from verify.model import Check, Measurement, Verdict  # noqa: E402

CERTIFY = Context(seed=0, profile=PROFILES["quick"], certify=True)


def certificate_checks() -> list[Check]:
    return [c for checks in load_checks().values() for c in checks if c.certificate]


def the_check(label: str) -> Check:
    return next(c for c in load_checks()[label] if c.certificate)


def flattest_value(inst: ci.RationalMinimum) -> Fraction:
    return 2 * inst.m * inst.t[0] ** (2 * (inst.m - 1))


def test_canonical_instance_is_certified_with_an_exact_top_eigenvalue():
    inst = ci.instance("canonical 4x4x4x4 rank 3")
    top = certificates.spectrum(inst.label).top()
    assert top.exact == flattest_value(inst) == 96 and top.radius == 0.0
    result = evaluate(the_check("S64"), CERTIFY)
    assert result.verdict is Verdict.VERIFIED
    assert result.printed.radius == 0.0 and result.printed.instances == len(ci.CANONICAL)
    assert result.printed.shapes == list(ci.CANONICAL)


def test_random_minimum_has_an_irrational_enclosed_top_above_the_closed_form():
    inst = ci.instance("random (S104) 3x3x3x3")
    top = certificates.spectrum(inst.label).top()
    assert top.exact is None and top.factor.degree() > 1
    closed = certify.rational(flattest_value(inst))
    assert top.ball(128).contains(top.ball(1024))  # refinement stays inside the enclosure
    assert 0 < top.radius < 1e-20
    assert certify.compare(top, closed) == 1
    result = evaluate(the_check("Theorem 1"), CERTIFY)
    assert result.verdict is Verdict.VERIFIED and 0 < result.printed.radius < 1e-20


@pytest.mark.parametrize("label", ["canonical 4x4x4x4 rank 3", "canonical 5x5x5 sigma_1 = sigma_2 rank 4"])
def test_clusters_are_exact(label):
    """At a canonical minimum the nonzero spectrum of H is 2 sum_k t_j^{2(m-k)} t_i^{2(k-1)} over pairs
    (i, j) (S61); T of deficient rank leaves many zero eigenvalues, sigma_1 = sigma_2 a repeated top."""
    inst = ci.instance(label)
    pairs = [2 * sum(tj ** (2 * (inst.m - k)) * ti ** (2 * (k - 1)) for k in range(1, inst.m + 1))
             for ti, tj in product(inst.t, inst.t)]
    s = certificates.spectrum(label)
    assert s.size == sum(a * b for a, b in zip(inst.dims, inst.dims[1:]))
    assert s.kernel_dimension() == s.size - sum(p != 0 for p in pairs)
    top = s.top()
    assert top.exact == max(pairs) and top.multiplicity == pairs.count(max(pairs))
    assert sum(e * f.degree() for f, e in s.factors) == s.size


def test_repeated_top_eigenvalue_of_the_cluster_instance():
    top = certificates.spectrum("canonical 5x5x5 sigma_1 = sigma_2 rank 4").top()
    assert (top.exact, top.multiplicity) == (16, 4)
    assert certificates.spectrum("canonical 5x5x5 sigma_1 = sigma_2 rank 4").kernel_dimension() == 26


@pytest.mark.parametrize("check", certificate_checks(), ids=lambda c: c.id)
def test_every_certificate_is_verified_and_each_mutant_is_excluded(check):
    result = evaluate(check, CERTIFY)
    assert result.verdict is Verdict.VERIFIED, result.message
    assert result.controls and all(c.rejected for c in result.controls)
    ctx = CERTIFY.for_check(check.id)
    for name, mutant in check.mutants.items():
        m = check.run(ctx, mutant)
        assert not m.ok and m.residual > 0, name
        assert "undecided" not in m.counterexample["statement"], name  # refuted, not merely unproved


def test_irrational_closed_forms_are_separated_or_left_undecided():
    sqrt2 = certify.closed_form(lambda s, m: certify.sqrt(s), 2, 1)
    assert sqrt2.exact is None
    assert certify.compare(sqrt2, certify.rational(Fraction(1414, 1000))) == 1
    assert certify.compare(certify.spectrum([[0, 1], [1, 0]]).top(), sqrt2) == -1
    root2 = certify.spectrum([[1, 1], [1, -1]]).top()  # eigenvalues +-sqrt(2)
    assert root2.exact is None and certify.compare(root2, sqrt2) is None  # equal irrationals: never accepted


def test_exact_rational_closed_form_and_bad_input():
    assert certify.closed_form(lambda s, m: 2 * m * s ** (2 * (1 - 1 / m)), 8, 3).exact == 96
    with pytest.raises(certify.CertificateError, match="symmetric"):
        certify.spectrum([[1, 2], [3, 4]])
    with pytest.raises(certify.CertificateError, match="exact rationals"):
        certify.spectrum([[0.5, 0.0], [0.0, 1.0]])


def test_without_certify_a_certificate_is_skipped_with_a_reason():
    result = evaluate(the_check("Theorem 1"), Context())
    assert result.verdict is Verdict.SKIPPED and "run with --certify" in result.message


def test_missing_flint_skips_the_certificate(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flint" else real(name, *a))
    result = evaluate(the_check("Theorem 1"), CERTIFY)
    assert result.verdict is Verdict.SKIPPED and "flint" in result.message


def test_a_certificate_does_not_make_its_claim_verified():
    """A certificate proves its instances, not the claim's domain: passed + certificate = passed."""
    passed = Check(claim="S64", name="numeric", method="float", printed=1, mutants={"two": 2},
                   run=lambda ctx, f: Measurement(abs(f - 1), 0.0, "toy", 1))
    audit = Audit(CERTIFY, checks={"S64": [passed, the_check("S64")]})
    result = audit.claim("S64")
    assert [r.verdict for r in result.checks] == [Verdict.PASSED, Verdict.VERIFIED]
    assert result.verdict is Verdict.PASSED
    plain = Audit(Context(), checks={"S64": [passed, the_check("S64")]}).claim("S64")
    assert [r.verdict for r in plain.checks] == [Verdict.PASSED, Verdict.SKIPPED]
    assert plain.verdict is Verdict.PASSED


def test_certify_round_trip_through_the_cli(tmp_path, monkeypatch):
    """The real command line; the claim's other (slower) checks are left out of the audit."""
    only_certificates = {label: [c for c in checks if c.certificate] for label, checks in load_checks().items()}
    monkeypatch.setattr(cli, "Audit", functools.partial(Audit, checks=only_certificates))
    assert cli.main(["run", "S66", "--certify", "--jobs", "1", "--report-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["run"]["certify"] is True
    (entry,) = [k for c in report["claims"] if c["id"] == "S66" for k in c["checks"]]
    assert entry["certificate"] and entry["verdict"] == "verified" and entry["method"] == "interval"
    assert entry["enclosure_radius"] == 0.0 and entry["shapes"] == list(certificates.FLATTEST)
    assert "rigorous" in entry["tolerance_reason"]
    assert "Certificate `s66_certificate`" in (tmp_path / "report.md").read_text()
    assert cli.main(["run", "S66", "--jobs", "1", "--report-dir", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    (skipped,) = [k for c in plain["claims"] if c["id"] == "S66" for k in c["checks"]]
    assert skipped["verdict"] == "skipped" and "--certify" in skipped["message"]

"""How verdicts combine: the checks of a claim, and the claims a named result uses."""

from __future__ import annotations

from typing import Iterable

from .model import Verdict

# From most to least severe: a combination takes the most severe verdict present.
SEVERITY = (
    Verdict.FAILED,
    Verdict.ERROR,
    Verdict.UNCOVERED,
    Verdict.CONDITIONAL,
    Verdict.ERRATUM,
    Verdict.PASSED,
    Verdict.VERIFIED,
)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict among the evidence; skipped evidence counts only
    when nothing else is there."""
    given = list(verdicts)
    present = [v for v in given if v is not Verdict.SKIPPED]
    if not present:
        return Verdict.SKIPPED if given else Verdict.UNCOVERED
    return min(present, key=SEVERITY.index)


def as_evidence(verdict: Verdict, certificate: bool) -> Verdict:
    """A check's verdict as evidence for its claim: a certificate proves its instances, not the
    claim's whole domain, so for the claim it counts as passed."""
    return Verdict.PASSED if certificate and verdict is Verdict.VERIFIED else verdict


def claim_verdict(check_verdicts: list[Verdict]) -> Verdict:
    """A claim's verdict from its own checks: uncovered without checks; a single
    proof plus passing numeric evidence is ``verified``."""
    if not check_verdicts:
        return Verdict.UNCOVERED
    if all(v is Verdict.SKIPPED for v in check_verdicts):
        return Verdict.SKIPPED
    worst = combine(check_verdicts)
    if worst is Verdict.PASSED and Verdict.VERIFIED in check_verdicts:
        return Verdict.VERIFIED
    return worst


def rollup(own: Verdict | None, used: Iterable[Verdict]) -> Verdict:
    """A named result: its own checks (if any) together with every claim its proof
    uses. A used claim that is ``uncovered`` leaves the result ``uncovered``: the
    evidence for its proof is incomplete."""
    pieces = list(used)
    if own is not None:
        pieces.append(own)
    if not pieces:
        return Verdict.UNCOVERED
    return combine(pieces)

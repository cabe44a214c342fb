"""The audit: every claim of the supplement is a test.

Select by label (``-k S15``, ``-k Lemma_2``) or section (``-m section_III``).
A claim passes when its checks ran and its verdict is verified, passed,
erratum or conditional; an uncovered claim is skipped.
"""

from __future__ import annotations

import pytest

from verify.catalog import load
from verify.engine import Audit
from verify.model import ACCEPTABLE, Verdict


def _params() -> list:
    return [
        pytest.param(c.label, marks=[getattr(pytest.mark, c.marker), pytest.mark.audit], id=c.test_id)
        for c in load().values()
    ]


def _explain(result) -> str:
    lines = [f"{result.label}: {result.verdict.value}"]
    for c in result.checks:
        lines.append(f"  {c.check.name} [{c.check.method}]: {c.verdict.value} {c.message}")
        if c.counterexample is not None:
            lines.append(f"    counterexample: {dict(c.counterexample)}")
    for used, verdict in result.rolled_from.items():
        if verdict not in ACCEPTABLE:
            lines.append(f"  uses {used}: {verdict.value}")
    return "\n".join(lines)


@pytest.mark.parametrize("label", _params())
def test_claim(label: str, audit: Audit) -> None:
    result = audit.claim(label)
    if result.verdict is Verdict.UNCOVERED:
        pytest.skip("uncovered")
    if result.verdict is Verdict.SKIPPED:
        pytest.skip("skipped: " + "; ".join(c.message for c in result.checks if c.message))
    assert result.verdict in ACCEPTABLE, _explain(result)

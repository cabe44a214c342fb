"""The vocabulary of the suite: verdicts, checks, measurements and their results.

A *check* is one independent way of testing one claim. It is a function
``run(ctx, formula) -> Measurement`` together with the *formula as printed*, an
optional *correction*, and *negative controls* (mutants of the formula). The
engine evaluates the same ``run`` on every variant: the printed formula must
hold, every mutant must be rejected. Keeping the formula a parameter is what
makes the negative controls honest: the mutant goes through exactly the same
comparison with ground truth as the printed statement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from .context import Context


class Verdict(str, enum.Enum):
    VERIFIED = "verified"
    PASSED = "passed"
    ERRATUM = "erratum"
    CONDITIONAL = "conditional"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"
    UNCOVERED = "uncovered"

    def __str__(self) -> str:
        return self.value


#: Verdicts under which a claim counts as standing (possibly with a recorded caveat).
ACCEPTABLE = frozenset({Verdict.VERIFIED, Verdict.PASSED, Verdict.ERRATUM, Verdict.CONDITIONAL})
#: Verdicts that make ``verify`` exit with status 1.
BAD = frozenset({Verdict.FAILED, Verdict.ERROR})

METHODS = ("sympy", "exact", "mpmath", "float", "hypothesis", "interval", "simulation")


@dataclass
class Measurement:
    """What one evaluation of a check found.

    ``residual`` is the worst discrepancy over all instances (an absolute or
    relative error, or a violated slack), ``tolerance`` the largest residual
    accepted and ``tolerance_reason`` why. ``holds`` overrides the comparison
    for checks whose outcome is a logical one (e.g. an implication on every
    instance); it defaults to ``residual <= tolerance``.
    """

    residual: float
    tolerance: float
    tolerance_reason: str
    instances: int
    shapes: Sequence[str] = ()
    counterexample: Mapping[str, Any] | None = None
    holds: bool | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    radius: float | None = None  # certificates: the largest radius of the enclosures they rest on

    @property
    def ok(self) -> bool:
        if self.holds is not None:
            return bool(self.holds)
        return bool(self.residual <= self.tolerance)


@dataclass(frozen=True)
class Variant:
    """A version of the claim's formula other than the printed one."""

    formula: Any
    reason: str
    text: str = ""  # the corrected statement in LaTeX, for corrections


RunFn = Callable[["Context", Any], Measurement]


@dataclass(frozen=True)
class Check:
    claim: str
    name: str
    method: str
    run: RunFn
    printed: Any
    mutants: Mapping[str, Any]
    corrected: Variant | None = None
    without: str | None = None
    proves: bool = False
    certificate: bool = False  # proves the claim on its instances only (runs with --certify)
    needs: tuple[str, ...] = ()
    backend: bool = False
    doc: str = ""

    @property
    def id(self) -> str:
        return f"{self.claim}::{self.name}"


@dataclass
class ControlResult:
    name: str
    rejected: bool
    residual: float | None
    message: str = ""


@dataclass
class CheckResult:
    check: Check
    verdict: Verdict
    seed: int
    seconds: float
    printed: Measurement | None = None
    corrected: Measurement | None = None
    controls: list[ControlResult] = field(default_factory=list)
    message: str = ""
    backend: str = "numpy"  # where the check's arrays live: the run's backend only for backend checks

    @property
    def counterexample(self) -> Mapping[str, Any] | None:
        if self.printed is not None and not self.printed.ok:
            return self.printed.counterexample
        return None


@dataclass
class ClaimResult:
    label: str
    verdict: Verdict
    checks: list[CheckResult]
    rolled_from: dict[str, Verdict] = field(default_factory=dict)
    discharged: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def assumptions(self) -> list[str]:
        """The assumptions named by this claim's conditional checks."""
        return sorted({c.check.without for c in self.checks if c.verdict is Verdict.CONDITIONAL and c.check.without})

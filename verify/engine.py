"""Selecting claims, running their checks and rolling verdicts up."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Iterable

import proofs

from . import catalog as catalog_mod
from .catalog import SECTIONS, Claim
from .checks import CHECKS
from .context import Context
from .evaluate import evaluate
from .model import Check, CheckResult, ClaimResult, Verdict
from .verdicts import as_evidence, claim_verdict, rollup


#: Fewer checks than this run in-process: starting workers (~2 s each) would cost more than it saves.
PARALLEL_MIN_CHECKS = 30


class SelectionError(ValueError):
    """An unknown label or section was asked for."""


def load_checks() -> dict[str, list[Check]]:
    """Import every ``proofs.section*`` module and ``proofs.certificates``, which register their checks."""
    for info in pkgutil.iter_modules(proofs.__path__):
        if info.name.startswith("section") or info.name == "certificates":
            importlib.import_module(f"proofs.{info.name}")
    return CHECKS


def _normal(token: str) -> str:
    return " ".join(token.replace("_", " ").split()).casefold()


def select(tokens: Iterable[str], claims: dict[str, Claim]) -> list[str]:
    """Labels (``S15``, ``Lemma 2``, ``Lemma_2``), sections (``III``) or ranges
    (``S8-S22``) -> labels in catalog order, including everything a selected
    named result uses (its verdict rolls up from them)."""
    by_name = {_normal(label): label for label in claims}
    chosen: set[str] = set()
    for token in tokens:
        key = _normal(token)
        if key.upper() in SECTIONS:
            chosen.update(c.label for c in claims.values() if c.section == key.upper())
        elif key in by_name:
            chosen.add(by_name[key])
        elif "-" in key and all(part.strip() in by_name for part in key.split("-", 1)):
            first, last = (claims[by_name[p.strip()]].order for p in key.split("-", 1))
            chosen.update(c.label for c in claims.values() if first <= c.order <= last)
        else:
            raise SelectionError(f"unknown label or section: {token!r} (see `verify list`)")
    return closure(chosen, claims)


def closure(labels: Iterable[str], claims: dict[str, Claim]) -> list[str]:
    seen: set[str] = set()
    stack = list(labels)
    while stack:
        label = stack.pop()
        if label not in seen:
            seen.add(label)
            stack.extend(claims[label].uses)
    return sorted(seen, key=lambda label: claims[label].order)


@dataclass
class Audit:
    """Runs claims once each and remembers the results (the CLI and pytest share it)."""

    ctx: Context
    claims: dict[str, Claim] = field(default_factory=catalog_mod.load)
    checks: dict[str, list[Check]] = field(default_factory=load_checks)
    on_check: Callable[[Check], None] | None = None
    jobs: int = 1
    results: dict[str, ClaimResult] = field(default_factory=dict)
    _prefetched: dict[int, CheckResult] = field(default_factory=dict, repr=False)  # by id(check)

    def covered(self) -> int:
        return sum(1 for label in self.claims if self.checks.get(label))

    def check_count(self, labels: Iterable[str]) -> int:
        return sum(len(self.checks.get(label, ())) for label in labels)

    def claim(self, label: str) -> ClaimResult:
        """The result of one claim; a named result first runs what it uses."""
        if label in self.results:
            return self.results[label]
        claim = self.claims[label]
        rolled = {used: self.claim(used).verdict for used in claim.uses}
        check_results = []
        for check in self.checks.get(label, ()):
            result = self._prefetched.pop(id(check), None)
            if result is None:
                result = evaluate(check, self.ctx)
                if self.on_check:
                    self.on_check(check)
            check_results.append(result)
        own = claim_verdict([as_evidence(r.verdict, r.check.certificate) for r in check_results])
        discharged = self._discharged(claim)
        effective = [Verdict.PASSED if used in discharged else v for used, v in rolled.items()]
        verdict = rollup(own if check_results else None, effective) if claim.named else own
        seconds = sum(r.seconds for r in check_results)  # the claim's own checks only
        result = ClaimResult(label, verdict, check_results, rolled, discharged, seconds)
        self.results[label] = result
        return result

    def _discharged(self, claim: Claim) -> dict[str, list[str]]:
        """Used claims that are conditional only on assumptions this claim's own
        hypotheses carry (``discharges`` in the catalog): within the claim's
        domain they hold, so they do not make the claim conditional."""
        out = {}
        for used in claim.uses:
            r = self.results[used]
            if r.verdict is Verdict.CONDITIONAL and set(r.assumptions) <= set(claim.discharges):
                out[used] = r.assumptions
        return out

    def run(self, labels: Iterable[str]) -> list[ClaimResult]:
        wanted = list(labels)
        if self.jobs > 1:
            self._evaluate_in_workers(closure(wanted, self.claims))
        for label in wanted:
            self.claim(label)
        return [self.results[label] for label in wanted]

    def _evaluate_in_workers(self, labels: list[str]) -> None:
        from .parallel import evaluate_parallel  # noqa: PLC0415

        todo = [c for label in labels if label not in self.results for c in self.checks.get(label, ())]
        if len(todo) >= PARALLEL_MIN_CHECKS:
            results = evaluate_parallel(todo, self.ctx, self.jobs, self.on_check)
            self._prefetched.update({id(c): results[c.id] for c in todo})

"""Registration of checks: ``@check(...)`` attaches a check to a claim label."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Mapping

from .model import METHODS, Check, RunFn, Variant

CHECKS: dict[str, list[Check]] = defaultdict(list)


class CheckDefinitionError(ValueError):
    pass


def check(
    claim: str,
    *,
    method: str,
    printed: Any,
    mutants: Mapping[str, Any],
    name: str | None = None,
    corrected: Variant | None = None,
    without: str | None = None,
    proves: bool = False,
    certificate: bool = False,
    needs: tuple[str, ...] = (),
    backend: bool = False,
) -> Callable[[RunFn], RunFn]:
    """Register ``run(ctx, formula) -> Measurement`` as a check of ``claim``.

    printed   -- the formula exactly as the supplement prints it
    mutants   -- negative controls: {description: formula}; each must be rejected
    corrected -- a stated correction, tried only when the printed formula fails
    without   -- the assumption this check drops: failing here makes the claim
                 ``conditional`` on it rather than ``failed``
    proves    -- an exact pass is a proof for the claim's whole stated domain
    certificate -- a pass is a proof for the check's instances only (verified, but
                 the claim counts it as passed); runs only with ``--certify``
    needs     -- optional modules; missing ones make the check ``skipped``
    backend   -- runs on the selected array backend (skipped if it is missing)
    """
    if method not in METHODS:
        raise CheckDefinitionError(f"unknown method {method!r} for {claim}")
    if not mutants:
        raise CheckDefinitionError(f"check of {claim} has no negative control")

    def register(run: RunFn) -> RunFn:
        check_name = name or run.__name__
        if any(c.name == check_name for c in CHECKS[claim]):
            raise CheckDefinitionError(f"duplicate check {check_name!r} for {claim}")
        CHECKS[claim].append(
            Check(
                claim=claim,
                name=check_name,
                method=method,
                run=run,
                printed=printed,
                mutants=dict(mutants),
                corrected=corrected,
                without=without,
                proves=proves,
                certificate=certificate,
                needs=tuple(needs),
                backend=backend,
                doc=(run.__doc__ or "").strip(),
            )
        )
        return run

    return register

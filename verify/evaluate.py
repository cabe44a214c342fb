"""Evaluate one check: the printed formula, its correction, its negative controls."""

from __future__ import annotations

import importlib.util
import time
import traceback

from .context import Context
from .model import Check, CheckResult, ControlResult, Verdict


def missing_modules(check: Check, ctx: Context) -> list[str]:
    missing = [m for m in check.needs if importlib.util.find_spec(m) is None]
    if check.backend and ctx.xp is None:
        missing.append(ctx.backend)
    return missing


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def evaluate(check: Check, base: Context) -> CheckResult:
    ctx = base.for_check(check.id)
    start = time.perf_counter()
    result = CheckResult(check=check, verdict=Verdict.ERROR, seed=ctx.check_seed, seconds=0.0,
                         backend=ctx.backend if check.backend else "numpy")
    if check.certificate and not ctx.certify:
        result.verdict = Verdict.SKIPPED
        result.message = "a certificate: run with --certify"
        return result
    missing = missing_modules(check, ctx)
    if missing:
        result.verdict = Verdict.SKIPPED
        result.message = f"not available: {', '.join(missing)}"
        return result
    try:
        result.printed = check.run(ctx, check.printed)
        if not result.printed.ok and check.corrected is not None:
            result.corrected = check.run(ctx, check.corrected.formula)
        for name, mutant in check.mutants.items():
            try:
                m = check.run(ctx, mutant)
                result.controls.append(ControlResult(name, rejected=not m.ok, residual=m.residual))
            except (ArithmeticError, ValueError) as exc:  # a mutant that cannot even be evaluated is rejected
                result.controls.append(ControlResult(name, rejected=True, residual=None, message=_describe(exc)))
        result.verdict, result.message = _check_verdict(check, result)
    except Exception as exc:  # a crashing check is reported, never fatal to the run
        result.verdict, result.message = Verdict.ERROR, _describe(exc)
    result.seconds = time.perf_counter() - start
    return result


def _check_verdict(check: Check, r: CheckResult) -> tuple[Verdict, str]:
    assert r.printed is not None
    if r.printed.ok:
        verdict = Verdict.VERIFIED if check.proves or check.certificate else Verdict.PASSED
        message = ""
    elif r.corrected is not None and r.corrected.ok:
        verdict, message = Verdict.ERRATUM, f"fails as printed; holds as corrected: {check.corrected.reason}"
    elif check.without is not None:
        verdict, message = Verdict.CONDITIONAL, f"fails without the assumption: {check.without}"
    else:
        return Verdict.FAILED, "fails as printed" + (" and as corrected" if r.corrected else "")
    survivors = [c.name for c in r.controls if not c.rejected]
    if survivors:
        return Verdict.ERROR, "non-discriminating: negative control(s) not rejected: " + "; ".join(survivors)
    return verdict, message

"""The float checks of Sections I, II, III, V and VIII that run on the selected array backend give the
same outcome on array-api-strict (the code path CuPy takes) as on NumPy, on the same instances."""

from __future__ import annotations

import math
from dataclasses import replace

import array_api_compat.numpy as np_xp
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from verify.context import PROFILES, Context  # noqa: E402
from verify.engine import load_checks  # noqa: E402
from verify.evaluate import evaluate  # noqa: E402

MODULES = ("section1_stability", "section2_lemma1", "section3_flattest", "section3_lemma2",
           "section5_theorem1", "section8_theorem4")
#: strict is a slow pure-Python wrapper: fewer instances, same code
SMALL = replace(PROFILES["quick"], name="small", instances=60)


def own_checks(backend_only: bool) -> list:
    return [c for checks in load_checks().values() for c in checks
            if c.run.__module__.rsplit(".", 1)[-1] in MODULES and c.method == "float"
            and (c.backend or not backend_only)]


BACKEND_CHECKS = own_checks(backend_only=True)


def same_number(a: float | None, b: float | None) -> bool:
    """Equal up to float64 rounding (the namespaces may order reductions differently)."""
    if a is None or b is None:
        return a is b
    if math.isinf(a) or math.isnan(a):
        return str(a) == str(b)
    return abs(a - b) <= 1e-12 + 1e-9 * abs(a)


def test_some_checks_run_on_the_backend():
    assert len(BACKEND_CHECKS) >= 5


@pytest.mark.parametrize("check", BACKEND_CHECKS, ids=lambda c: c.id)
def test_strict_backend_matches_numpy(check):
    numpy_run = evaluate(check, Context(profile=SMALL, backend="numpy", xp=np_xp))
    strict_run = evaluate(check, Context(profile=SMALL, backend="strict", xp=array_api_strict))
    assert strict_run.backend == "strict"
    assert strict_run.verdict is numpy_run.verdict, strict_run.message
    assert strict_run.printed.instances == numpy_run.printed.instances
    assert same_number(strict_run.printed.residual, numpy_run.printed.residual)
    if numpy_run.corrected is not None:
        assert same_number(strict_run.corrected.residual, numpy_run.corrected.residual)
    assert [(c.name, c.rejected) for c in strict_run.controls] == [(c.name, c.rejected) for c in numpy_run.controls]
    assert all(c.rejected for c in strict_run.controls)
    for ours, theirs in zip(strict_run.controls, numpy_run.controls):
        assert same_number(ours.residual, theirs.residual), ours.name


def test_backend_checks_are_skipped_without_a_backend():
    result = evaluate(BACKEND_CHECKS[0], Context(profile=SMALL, backend="cupy", xp=None))
    assert result.verdict.value == "skipped"


#: Lemma 2 float checks draw n // 7 pairs per depth m = 2..8 (196 of 200 in the quick profile), and
#: (S28), (S29) keep only the pairs their premise selects: a known shortfall, kept visible here.
SHORT_COUNT = {"Claim S1::claim_s1_implication_float", "S23::s23_iff_sharper_central_differences",
               "S28::s28_reduction_needs_s27_float", "S29::s29_deceptively_flatter_float",
               "S30::s30_loyal_implies_float"}


@pytest.mark.parametrize("check", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="instances below the profile count"))
                                   if c.id in SHORT_COUNT else c for c in BACKEND_CHECKS], ids=lambda c: c.id)
def test_backend_checks_explore_the_profile_count(check):
    ctx = Context(profile=PROFILES["quick"], xp=np_xp).for_check(check.id)
    assert check.run(ctx, check.printed).instances >= ctx.profile.instances

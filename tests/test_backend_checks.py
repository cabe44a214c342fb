"""Float checks that run on the selected array backend give the same outcome on array-api-strict
(the code path CuPy takes) as on NumPy, on the same instances, and each explores at least the
profile's instance count. Float checks that stay on the host are listed, each for a reason."""

from __future__ import annotations

import math
from dataclasses import replace

import array_api_compat.numpy as np_xp
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from verify.context import PROFILES, Context  # noqa: E402
from verify.engine import load_checks  # noqa: E402
from verify.evaluate import evaluate  # noqa: E402

#: strict is a slow pure-Python wrapper: fewer instances, same code
SMALL = replace(PROFILES["quick"], name="small", instances=60)

#: Float checks that stay on NumPy: optimisers and searches (scipy L-BFGS-B, BFGS, linprog, the
#: greedy search (S105)-(S106)), sympy-generated references, loops over single instances.
HOST_ONLY = {
    "S1::s1_matches_gd_on_scalar_network",  # sympy-generated gradient
    "S22::s22_flattest_set", "S22::s22_flattest_set_tau_zero_included",  # scipy optimiser per instance
    "S50::s50_tightness_search", "Lemma 4::lemma4_sharpness_optimizer", "S51::s51_tightness_search",
    "S53::s53_maximum_float",  # L-BFGS-B maxima
    "S60::s60_float", "S62::s62_float", "S63::s63_float",  # host searches for maxima, linprog
    "S65::s65_found_by_search", "S66::s66_found_by_search", "Theorem 1::theorem1_min_over_manifold",
    "S65::s65_sigma_x", "S66::s66_sigma_x", "Theorem 1::theorem1_sigma_x",  # BFGS over the manifold of minima
    "Theorem 1::theorem1_top_eigenvector",
    "S104::s104_minima_are_global", "S105::s105_start_is_a_global_minimum", "S105::s105_rectangular_widths",
    "S106::s106_step_keeps_the_product_float",  # Section IX experiments, NumPy's linalg on the host
}

FLOAT_CHECKS = [c for checks in load_checks().values() for c in checks if c.method == "float"]
BACKEND_CHECKS = [c for c in FLOAT_CHECKS if c.backend]


def same_number(a: float | None, b: float | None) -> bool:
    """Equal up to float64 rounding (the namespaces may order reductions differently)."""
    if a is None or b is None:
        return a is b
    if math.isinf(a) or math.isnan(a):
        return str(a) == str(b)
    return abs(a - b) <= 1e-12 + 1e-9 * abs(a)


def test_every_float_check_runs_on_the_backend_unless_listed_as_host_only():
    assert {c.id for c in FLOAT_CHECKS if not c.backend} == HOST_ONLY
    assert len(BACKEND_CHECKS) >= 120


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


@pytest.mark.parametrize("check", BACKEND_CHECKS, ids=lambda c: c.id)
def test_backend_checks_explore_the_profile_count(check):
    """The statement that holds is run on every instance: the printed formula, or its correction where
    the printed one fails at the first instance (an erratum stops there)."""
    ctx = Context(profile=PROFILES["quick"], xp=np_xp).for_check(check.id)
    measurement = check.run(ctx, check.printed)
    if not measurement.ok and check.corrected is not None:
        measurement = check.run(ctx, check.corrected.formula)
    assert measurement.instances >= ctx.profile.instances

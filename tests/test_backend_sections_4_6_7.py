"""The float checks of Sections IV, VI and VII that run on the selected array backend give the same
outcome on array-api-strict (the code path CuPy takes) as on NumPy, on the same instances, and each
explores at least the profile's instance count."""

from __future__ import annotations

import array_api_compat.numpy as np_xp
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from test_backend_checks import SMALL, same_number  # noqa: E402

from verify.context import PROFILES, Context  # noqa: E402
from verify.engine import load_checks  # noqa: E402
from verify.evaluate import evaluate  # noqa: E402

MODULES = ("section4_lemma3", "section6_theorem2", "section7_theorem3", "flat_claims")
#: the host-only float checks: BFGS minima (scipy) for Lemma 3
HOST_ONLY = {"Lemma 3::optimizer_found_minima"}


def own_checks() -> list:
    return [c for checks in load_checks().values() for c in checks
            if c.run.__module__.rsplit(".", 1)[-1] in MODULES and c.method == "float"]


BACKEND_CHECKS = [c for c in own_checks() if c.backend]


def test_every_float_check_runs_on_the_backend_unless_host_only():
    assert {c.id for c in own_checks() if not c.backend} <= HOST_ONLY
    assert len(BACKEND_CHECKS) >= 60


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


@pytest.mark.parametrize("check", BACKEND_CHECKS, ids=lambda c: c.id)
def test_backend_checks_explore_the_profile_count(check):
    """The statement that holds is run on every instance: the printed formula, or its correction where the
    printed one fails at the first instance (an erratum stops there)."""
    ctx = Context(profile=PROFILES["quick"], xp=np_xp).for_check(check.id)
    measurement = check.run(ctx, check.printed)
    if not measurement.ok and check.corrected is not None:
        measurement = check.run(ctx, check.corrected.formula)
    assert measurement.instances >= ctx.profile.instances

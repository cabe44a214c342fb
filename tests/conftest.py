"""Shared fixtures: one audit per session, so each claim runs once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

import verify.search  # noqa: F401  (registers the hypothesis profiles)
from verify.context import PROFILES, Context
from verify.engine import Audit

settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verify")
    group.addoption("--verify-profile", default="quick", choices=sorted(PROFILES),
                    help="profile of the claim audit (default: quick; `verify` itself runs `default`)")
    group.addoption("--verify-seed", type=int, default=0, help="master seed of the claim audit")


@pytest.fixture(scope="session")
def audit(pytestconfig: pytest.Config) -> Audit:
    import array_api_compat.numpy as xp

    ctx = Context(
        seed=pytestconfig.getoption("--verify-seed"),
        profile=PROFILES[pytestconfig.getoption("--verify-profile")],
        backend="numpy",
        xp=xp,
    )
    return Audit(ctx)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)

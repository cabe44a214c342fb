"""Run settings handed to every check: seed, profile, precision, array backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Profile:
    """How hard to look. ``instances``: random instances per float check;
    ``examples``: hypothesis examples per search; ``max_depth``: the largest
    depth m for symbolic checks; ``steps``: iterations for dynamics runs."""

    name: str
    instances: int
    examples: int
    max_depth: int
    steps: int


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", instances=200, examples=40, max_depth=4, steps=400),
    "default": Profile("default", instances=1000, examples=150, max_depth=8, steps=800),
    "thorough": Profile("thorough", instances=100_000, examples=2000, max_depth=10, steps=3000),
}


def derive_seed(*keys: Any) -> int:
    """A stable 63-bit seed from any keys (independent of PYTHONHASHSEED)."""
    text = "\x1f".join(str(k) for k in keys).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True)
class Context:
    seed: int = 0
    profile: Profile = PROFILES["default"]
    dps: int = 50
    backend: str = "numpy"
    xp: Any = None
    certify: bool = False  # run the certificate checks (ball arithmetic, python-flint)
    check_id: str = ""
    scratch: dict = field(default_factory=dict, compare=False, repr=False)

    def for_check(self, check_id: str) -> "Context":
        return replace(self, check_id=check_id)

    @property
    def check_seed(self) -> int:
        return derive_seed(self.seed, self.check_id)

    def rng(self, *keys: Any) -> np.random.Generator:
        """A generator determined by (seed, claim, check, keys): every variant of a
        check sees the same instances."""
        return np.random.default_rng(derive_seed(self.seed, self.check_id, *keys))

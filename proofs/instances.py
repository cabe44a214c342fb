"""Random problem instances for deep linear networks, described by small replayable specs.

A :class:`Spec` (widths, rank of T, kind of Sigma_x, kind of minimum, seed) is
all a counterexample needs to be replayed: ``realize(spec, batch)`` rebuilds
the same weights and data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from . import linear_network as ln
from . import minima

SIGMA_KINDS = ("identity", "scaled", "spd", "ill-conditioned")


@dataclass(frozen=True)
class Spec:
    dims: tuple[int, ...]
    rank: int
    sigma: str = "identity"
    minimum: str = "random (S104)"
    seed: int = 0

    @property
    def depth(self) -> int:
        return len(self.dims) - 1

    def label(self) -> str:
        return f"dims={'x'.join(map(str, self.dims))} rank={self.rank} Sigma_x={self.sigma} {self.minimum}"

    def as_dict(self) -> dict:
        return asdict(self)


def max_rank(dims: Sequence[int]) -> int:
    return min(dims)


def random_target(rng: np.random.Generator, batch: tuple[int, ...], d_y: int, d_x: int, rank: int) -> np.ndarray:
    """T of the given rank: a product of Gaussian d_y x r and r x d_x factors."""
    return rng.standard_normal((*batch, d_y, rank)) @ rng.standard_normal((*batch, rank, d_x))


def random_sigma_half(rng: np.random.Generator, batch: tuple[int, ...], d: int, kind: str) -> np.ndarray:
    """The symmetric square root R of Sigma_x = R^2 for each kind of Sigma_x."""
    if kind == "identity":
        return np.broadcast_to(np.eye(d), (*batch, d, d)).copy()
    if kind == "scaled":
        c = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=(*batch, 1, 1)))
        return np.sqrt(c) * np.eye(d)
    if kind == "spd":
        eig = rng.uniform(0.5, 2.0, size=(*batch, d))
    elif kind == "ill-conditioned":
        eig = np.exp(rng.uniform(np.log(1e-3), 0.0, size=(*batch, d)))  # cond(Sigma_x) up to 1e6
    else:
        raise ValueError(f"unknown kind of Sigma_x {kind!r} (one of {SIGMA_KINDS})")
    Q = minima.random_orthogonal(rng, batch, d)
    return (Q * eig[..., None, :]) @ np.swapaxes(Q, -1, -2)


def realize(spec: Spec, batch: int | None = None) -> tuple[list[np.ndarray], ln.Data]:
    """Weights at a global minimum and the data, with a leading batch axis if ``batch``."""
    rng = np.random.default_rng(spec.seed)
    shape = () if batch is None else (batch,)
    d_x, d_y = spec.dims[0], spec.dims[-1]
    T = random_target(rng, shape, d_y, d_x, spec.rank)
    R = random_sigma_half(rng, shape, d_x, spec.sigma)
    weights = minima.GENERATORS[spec.minimum](T, spec.dims, rng)
    return weights, ln.from_target(ln.end_to_end(weights), R)

"""Hypothesis strategies for deep linear networks, composed from small pieces.

``dims()`` draws widths (depth 1-6, widths 1-6 by default), ``specs()`` a whole
replayable :class:`proofs.instances.Spec`: widths, a rank of T that the widths
can carry, the kind of Sigma_x (identity, c I, random SPD, ill-conditioned),
the kind of global minimum and a seed. Checks draw specs and realise them with
``proofs.instances.realize``, so a shrunk counterexample is a small spec.
"""

from __future__ import annotations

from hypothesis import strategies as st

from .instances import SIGMA_KINDS, Spec, max_rank
from .minima import GENERATORS

depths = st.integers(min_value=1, max_value=6)
widths = st.integers(min_value=1, max_value=6)
sigma_kinds = st.sampled_from(SIGMA_KINDS)
minimum_kinds = st.sampled_from(tuple(GENERATORS))
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def dims(draw, depth=depths, width=widths) -> tuple[int, ...]:
    m = draw(depth)
    return tuple(draw(width) for _ in range(m + 1))


@st.composite
def specs(draw, shape=None, sigma=sigma_kinds, minimum=minimum_kinds, full_rank: bool | None = None) -> Spec:
    d = draw(shape if shape is not None else dims())
    top = max_rank(d)
    if full_rank is True:
        rank = top
    else:
        rank = draw(st.integers(min_value=1, max_value=top))
    return Spec(dims=d, rank=rank, sigma=draw(sigma), minimum=draw(minimum), seed=draw(seeds))

"""Lemma 3 over python-flint ``arb_mat``: balls with rigorous radii at any precision.

- :func:`hessian_phi`: H = 2 Phi Phi^T with Phi_k = (W_{k-1}...W_1 Sigma_x^{1/2}) (x) (W_m...W_{k+1})^T
  (S47, S49), in arb matrices;
- :func:`hessian_jets`: the Hessian of the loss itself, entry by entry from the bilinear form of
  ``proofs.jet_hessian`` run on the :class:`ArbAlgebra` (independent of Phi).

Every arb result is a ball that contains the exact value for the exact inputs, so at a global
minimum each entry of ``hessian_phi - hessian_jets`` must contain 0 if Lemma 3 holds; the radii
say how many digits were carried. python-flint is optional: :func:`available` says whether it
is installed. Precision is set by ``flint.ctx.dps`` (see :func:`digits`).
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from . import jet_hessian
from . import linear_network as ln


def available() -> bool:
    return importlib.util.find_spec("flint") is not None


@contextmanager
def digits(dps: int) -> Iterator[None]:
    """Run a block at ``dps`` decimal digits (flint's context is global)."""
    import flint  # noqa: PLC0415

    previous = flint.ctx.prec
    flint.ctx.dps = dps
    try:
        yield
    finally:
        flint.ctx.prec = previous


class ArbAlgebra:
    """The three operations ``jet_hessian.bilinear_form`` needs, on ``arb_mat``."""

    def matmul(self, x: Any, y: Any) -> Any:
        return x * y

    def inner(self, x: Any, y: Any) -> Any:
        return (x * y.transpose()).trace()

    def lift(self, x: Any, extra: int) -> Any:
        return x


def to_arb(a: np.ndarray) -> Any:
    """A float64 (exact binary values) or mpf matrix as an arb_mat."""
    import flint  # noqa: PLC0415

    rows, cols = a.shape
    return flint.arb_mat(rows, cols, [flint.arb(str(x)) if not isinstance(x, float) else flint.arb(x)
                                      for x in np.asarray(a).ravel().tolist()])


def data_from_target(T: Any, R: Any) -> ln.Data:
    """Sigma_x = R^2, Sigma_yx = T Sigma_x in arb (y2 is not needed for second derivatives)."""
    Sx = R * R
    return ln.Data(Sx, T * Sx, T, R, None)


def product(weights: Sequence[Any], first: int, last: int, size: int) -> Any:
    """W_last ... W_first (1-based); the identity of ``size`` when the range is empty."""
    import flint  # noqa: PLC0415

    out = flint.arb_mat(size, size, [int(i == j) for i in range(size) for j in range(size)])
    for W in weights[first - 1:last]:
        out = W * out
    return out


def kron(A: Any, B: Any) -> Any:
    import flint  # noqa: PLC0415

    ar, ac, br, bc = A.nrows(), A.ncols(), B.nrows(), B.ncols()
    entries = [A[i // br, j // bc] * B[i % br, j % bc] for i in range(ar * br) for j in range(ac * bc)]
    return flint.arb_mat(ar * br, ac * bc, entries)


def _stack(blocks: Sequence[Any]) -> Any:
    import flint  # noqa: PLC0415

    rows = [[M[i, j] for j in range(M.ncols())] for M in blocks for i in range(M.nrows())]
    return flint.arb_mat(rows)


def hessian_phi(weights: Sequence[Any], data: ln.Data) -> Any:
    """2 Phi Phi^T (S49) in arb."""
    dims = [weights[0].ncols()] + [W.nrows() for W in weights]
    m = len(weights)
    blocks = []
    for k in range(1, m + 1):
        below = product(weights, 1, k - 1, dims[0]) * data.Sigma_x_half
        above = product(weights, k + 1, m, dims[k])
        blocks.append(kron(below, above.transpose()))
    Phi = _stack(blocks)
    return 2 * (Phi * Phi.transpose())


def _unit_directions(weights: Sequence[Any]) -> list[list[Any]]:
    """e_1..e_N as per-layer arb matrices, in the column-major order of ``linear_network.flatten``."""
    import flint  # noqa: PLC0415

    out = []
    for k, W in enumerate(weights):
        rows, cols = W.nrows(), W.ncols()
        for j in range(rows * cols):
            layers = [flint.arb_mat(V.nrows(), V.ncols()) for V in weights]
            layers[k][j % rows, j // rows] = 1
            out.append(layers)
    return out


def hessian_jets(weights: Sequence[Any], data: ln.Data) -> Any:
    """The Hessian of the loss from its bilinear form on pairs of unit directions (independent of Phi)."""
    import flint  # noqa: PLC0415

    E = _unit_directions(weights)
    n = len(E)
    H = flint.arb_mat(n, n)
    alg = ArbAlgebra()
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = jet_hessian.bilinear_form(weights, data, E[i], E[j], alg)
    return H


def discrepancy(A: Any, B: Any) -> tuple[float, float, bool]:
    """(max |A - B| upper bound relative to max |B|, largest radius, every entry of A - B contains 0)."""
    D = A - B
    entries = [D[i, j] for i in range(D.nrows()) for j in range(D.ncols())]
    scale = max(float(abs(B[i, j]).mid()) for i in range(B.nrows()) for j in range(B.ncols())) or 1.0
    bound = max(float(abs(e).upper()) for e in entries)
    radius = max(float(e.rad()) for e in entries)
    return bound / scale, radius, all(0 in e for e in entries)

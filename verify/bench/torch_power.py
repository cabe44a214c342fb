"""lambda_max by power iteration on PyTorch Hessian-vector products, the way PyHessian does it.

PyHessian (``hessian.eigenvalues``) builds the gradient once with ``create_graph=True``, then
iterates v <- Hv / ||Hv|| with Hv from ``torch.autograd.grad`` (double backward), estimates
lambda = <Hv, v> and stops when |lambda_i - lambda_{i-1}| / (|lambda_{i-1}| + 1e-6) < tol, or after
``maxIter`` (default 100) iterations; it normalises by ||v|| + 1e-6, which biases the estimate by
about 2e-6 / lambda relative. Here the same, in float64 on the same loss (S9), with that offset
as a parameter and a wall-clock cap. PyTorch is optional: :func:`available` says whether it runs.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from proofs import linear_network as ln

PYHESSIAN_TOL = 1e-3
PYHESSIAN_MAX_ITER = 100
PYHESSIAN_OFFSET = 1e-6


def available() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass
class PowerResult:
    value: float
    iterations: int  # Hessian-vector products
    converged: bool
    timed_out: bool


class HessianVectorProduct:
    """Hv of the loss at ``weights`` by double backward (float64, CPU)."""

    def __init__(self, weights: Sequence[np.ndarray], data: ln.Data) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.params = [torch.tensor(np.asarray(W, dtype=float), requires_grad=True) for W in weights]
        Sx, Syx = (torch.tensor(np.asarray(a, dtype=float)) for a in (data.Sigma_x, data.Sigma_yx))
        W = self.params[0]
        for Wk in self.params[1:]:
            W = Wk @ W
        loss = torch.trace(W @ Sx @ W.T) - 2 * torch.trace(Syx @ W.T) + float(data.y2)
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)

    def __call__(self, v: list[Any]) -> list[Any]:
        return list(self.torch.autograd.grad(self.grads, self.params, grad_outputs=v, retain_graph=True))


def _dot(a: list[Any], b: list[Any]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b)))


def _normalise(v: list[Any], offset: float) -> list[Any]:
    s = _dot(v, v) ** 0.5
    return [x / (s + offset) for x in v]


def power_iteration(hvp: HessianVectorProduct, tol: float = PYHESSIAN_TOL, max_iter: int = PYHESSIAN_MAX_ITER,
                    offset: float = PYHESSIAN_OFFSET, cap_s: float = float("inf"), seed: int = 0) -> PowerResult:
    """PyHessian's loop for the top eigenvalue (top_n = 1), stopped early past ``cap_s`` seconds."""
    torch = hvp.torch
    gen = torch.Generator().manual_seed(seed)
    v = _normalise([torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in hvp.params], offset)
    start = time.perf_counter()
    eigenvalue = None
    for i in range(1, max_iter + 1):
        Hv = hvp(v)
        current = _dot(Hv, v)
        v = _normalise(Hv, offset)
        if eigenvalue is not None and abs(eigenvalue - current) / (abs(eigenvalue) + 1e-6) < tol:
            return PowerResult(eigenvalue, i, True, False)
        eigenvalue = current
        if time.perf_counter() - start > cap_s:
            return PowerResult(eigenvalue, i, False, True)
    return PowerResult(eigenvalue, max_iter, False, False)


def lambda_max(weights: Sequence[np.ndarray], data: ln.Data, tol: float, max_iter: int, offset: float,
               cap_s: float, seed: int = 0) -> PowerResult:
    """The whole route as a user runs it: build the gradient graph, then iterate."""
    return power_iteration(HessianVectorProduct(weights, data), tol, max_iter, offset, cap_s, seed)

"""Gradient dynamics of deep linear networks (Lemma 1): balancedness and sharpness over time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..context import Context, derive_seed
from . import figure

TIMES = np.concatenate([[0.0], np.geomspace(0.01, 32.0, 100)])
FLOOR = 1e-17  # an exact zero drawn on a log axis


@dataclass(frozen=True)
class Curve:
    label: str
    init: str
    dims: tuple[int, ...]
    target: str = "general"
    sigma: str = "identity"
    eta: float | None = None
    style: str = "-"


CURVES = (
    Curve("W_i = I (linear ResNet), 3x3x3x3, T SPD", "identity", (3, 3, 3, 3), "spd"),
    Curve("balanced (common SVD), 3x4x2", "balanced", (3, 4, 2)),
    Curve("GD eta=0.02 from that balanced start", "balanced", (3, 4, 2), eta=0.02, style="--"),
    Curve("GD eta=0.005 from that balanced start", "balanced", (3, 4, 2), eta=0.005, style="--"),
    Curve("small random (scale 0.1), 2x2x2", "small random", (2, 2, 2)),
    Curve("unbalanced random, 2x2x2", "unbalanced random", (2, 2, 2)),
    Curve("balanced, 2x2x2, SPD Sigma_x", "balanced", (2, 2, 2), sigma="spd"),
)


def simulate(curve: Curve, seed: int):
    """One network per curve; curves that differ only in the step start from the same weights and data."""
    from proofs import dynamics as dy  # noqa: PLC0415
    from proofs import instances  # noqa: PLC0415
    from proofs import linear_network as ln  # noqa: PLC0415

    rng = np.random.default_rng(derive_seed(seed, "figure gradient_flow", curve.init, curve.dims, curve.sigma))
    T = dy.random_target(rng, (), curve.dims[-1], curve.dims[0], curve.target)
    data = ln.from_target(T, instances.random_sigma_half(rng, (), curve.dims[0], curve.sigma))
    W0 = dy.initialize(curve.init, curve.dims, rng)
    if curve.init != "identity":
        W0 = dy.orient(W0, T)
    if curve.eta is None:
        return dy.gradient_flow(W0, data, TIMES)
    return dy.gradient_descent(W0, data, curve.eta, np.unique(np.rint(TIMES / curve.eta)) * curve.eta)


@figure("gradient_flow.png", claims=("Lemma 1", "S5"),
        caption="Gradient dynamics of small deep linear networks (Lemma 1). Left: the imbalance "
                "max_i ||W_{i+1}^T W_{i+1} - W_i W_i^T||_F over time: exactly zero (to integration accuracy) from "
                "balanced starts, including W_i = I, and constant from any other start (gradient flow conserves it); "
                "gradient descent (dashed) drifts by O(eta). Right: lambda_max of the Hessian of the loss along the "
                "trajectory divided by the printed flattest value 2m sigma_max(T)^{2(1-1/m)}: balanced starts end at 1 "
                "(a flattest minimum), unbalanced ones above it, and with SPD Sigma_x the printed value is not the "
                "limit's sharpness (and flatter minima exist).")
def render(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from proofs import dynamics as dy  # noqa: PLC0415
    from proofs import lemma3  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 8), dpi=100)
    ends = []
    for k, curve in enumerate(CURVES):
        run = simulate(curve, ctx.seed)
        colour = f"C{k}"
        imbalance = np.maximum(dy.balancedness(list(run.weights)), FLOOR)  # batched over the time axis
        sharp = dy.hessian_lambda_max(list(run.weights), _batched(run.data, run.times.size))
        ratio = sharp / float(lemma3.flattest_value(run.data.T, len(curve.dims) - 1))
        left.plot(np.maximum(run.times, 1e-3), imbalance, curve.style, color=colour, label=curve.label)
        right.plot(np.maximum(run.times, 1e-3), ratio, curve.style, color=colour, label=curve.label)
        ends.append(f"{curve.init}{'' if curve.eta is None else f' GD {curve.eta:g}'}"
                    f"{'' if curve.sigma == 'identity' else ' SPD Sigma_x'}: {ratio[-1]:.4f}")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("time t (gradient descent: steps x eta); t = 0 drawn at 1e-3")
        ax.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("max_i ||W_{i+1}^T W_{i+1} - W_i W_i^T||_F  (zero drawn at 1e-17)")
    left.set_title("(S5): balancedness along the dynamics")
    right.axhline(1.0, color="black", lw=0.8)
    right.set_yscale("log")
    right.set_ylabel("lambda_max(Hessian) / (2m sigma_max(T)^{2(1-1/m)})")
    right.set_title("Lemma 1: sharpness relative to the flattest value")
    left.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "lambda_max / flattest value at the end: " + "; ".join(ends)


def _batched(data, n: int):
    """The data repeated along a leading time axis, to evaluate the Hessian at every recorded time at once."""
    from proofs import linear_network as ln  # noqa: PLC0415

    rep = lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))).copy()
    return ln.Data(rep(data.Sigma_x), rep(data.Sigma_yx), rep(data.T), rep(data.Sigma_x_half), rep(data.y2))

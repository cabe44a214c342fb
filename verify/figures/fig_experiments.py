"""Figures of the experiments of Section IX and of Lemma 2's connecting lines.

(a) the sharpness of random minima (S104) against the flattest value, (b) the convergence of the
greedy search (S105)-(S106), (c) the Table S1 analogue (SGD vs Adam, PyTorch), (d) the loss along
the lines joining a flattest scalar minimum to a loyal and to a deceptive minimum (S29).
The numbers come from the same cached runs as the checks (``proofs.section9_experiments``,
``proofs.table_s1``), so a figure shows what the report's verdicts rest on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..context import Context
from . import figure

SIZE = {"figsize": (12, 8), "dpi": 100}  # 1200 x 800 pixels


@figure("s104_random_vs_flattest.png", claims=("S104", "Theorem 1"),
        caption="How far arbitrary global minima are from the flattest: lambda_max of random minima (S104) divided by "
                "the flattest value 2m sigma_max(T)^{2(1-1/m)} (Sigma_x = I), per shape, on a log axis; the minima the "
                "greedy search found are marked near 1; Theorem 1 says no minimum can lie left of 1.")
def render_random_vs_flattest(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from proofs import section9_experiments as s9  # noqa: PLC0415

    sample = s9.printed_sharpness(ctx.seed, s9.sharpness_count(ctx))
    runs = s9.printed_search_runs(ctx.seed, s9.starts_for(ctx))
    ratios = list(sample.ratios.values())
    pooled = np.concatenate(ratios)
    bins = np.logspace(0, np.log10(pooled.max()) + 0.1, 50)
    fig, ax = plt.subplots(**SIZE)
    ax.hist(ratios, bins=bins, stacked=True, label=list(sample.ratios), alpha=0.85)
    found = np.array([r.record.history[-1] / r.record.target for r in runs])
    ax.axvline(1.0, color="black", lw=1.5, label="flattest value (ratio 1)")
    top = ax.get_ylim()[1]
    ax.plot(found, np.linspace(0.55, 0.75, found.size) * top, "rv", ms=7,
            label=f"{found.size} minima found by the search (S105)-(S106)")
    ax.set_xscale("log")
    ax.set_xlabel("lambda_max(H) / (2m sigma_max(T)^(2(1-1/m)))")
    ax.set_ylabel("number of random minima (S104)")
    ax.set_title("Random global minima (S104) are sharper than the flattest ones")
    ax.legend(fontsize=9)
    fig.savefig(path)
    median = float(np.median(pooled))
    return (f"{pooled.size} random minima over {len(ratios)} shapes: median ratio {median:.3g}, "
            f"min {pooled.min():.4f}, max {pooled.max():.3g}; {found.size} searched minima within "
            f"{max(found) - 1:.1e} of the flattest value")


@figure("s106_search_convergence.png", claims=("S105", "S106"),
        caption="The greedy search of Section IX.1 from (S105) starts (Sigma_x = I): relative distance of lambda_max "
                "from the flattest value after every accepted step (S106), per start and shape; the search stops "
                "at the tolerance 1e-4 (dashed). Flat stretches are runs of rejected proposals.")
def render_search_convergence(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from proofs import section9_experiments as s9  # noqa: PLC0415

    runs = s9.printed_search_runs(ctx.seed, s9.starts_for(ctx))
    shapes = list(dict.fromkeys(r.shape.label() for r in runs))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(**SIZE)
    for r in runs:
        c = colours(shapes.index(r.shape.label()))
        gap = np.array(r.record.history) / r.record.target - 1
        ax.step(r.accepted_at, gap, where="post", color=c, alpha=0.8,
                label=r.shape.label() if r.start == 0 else None)
    ax.axhline(s9.SEARCH_RTOL, color="black", ls="--", lw=1, label=f"tolerance {s9.SEARCH_RTOL:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (proposals, accepted and rejected)")
    ax.set_ylabel("lambda_max / flattest value - 1")
    ax.set_title("Greedy search over the manifold of global minima")
    ax.legend(fontsize=9)
    fig.savefig(path)
    iters = [r.record.iterations for r in runs]
    return (f"{sum(r.record.converged for r in runs)}/{len(runs)} runs converged over {len(shapes)} shapes in "
            f"{min(iters)}-{max(iters)} iterations (median {int(np.median(iters))}), "
            f"{sum(r.record.rejected for r in runs) / max(1, sum(iters)):.0%} of proposals rejected")


@figure("table_s1_analogue.png", claims=("Table S1",), needs=("matplotlib", "torch"),
        caption="Table S1 in spirit: lambda_max of the full-batch Hessian after training a small tanh network with SGD "
                "(lr 1/2) and with Adam (lr 3e-4), one dot per seed with mean +- std, beside the paper's printed "
                "mean +- std (open markers; the paper's network and data are unpublished, so only the relations "
                "compare: SGD below its stability bound 2/eta = 4, Adam sharper).")
def render_table_s1(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from proofs import table_s1  # noqa: PLC0415

    per_seed = _table_s1_lambdas(ctx, report)
    fig, ax = plt.subplots(**SIZE)
    for x, (name, method) in enumerate(table_s1.METHODS.items()):
        lam = per_seed[name]
        ax.plot(np.full(lam.size, x - 0.12) + np.linspace(-0.04, 0.04, lam.size), lam, "o", color=f"C{x}",
                label=f"{name}: this analogue, per seed")
        ax.errorbar(x - 0.12, lam.mean(), yerr=lam.std(), fmt="_", ms=30, color=f"C{x}", capsize=8)
        mean, std = table_s1.PRINTED[name]["lambda_max"]
        ax.errorbar(x + 0.12, mean, yerr=std, fmt="s", mfc="none", ms=10, color=f"C{x}", capsize=8,
                    label=f"{name}: printed in Table S1 ({mean:g} +- {std:.2g})")
    bound = table_s1.METHODS["SGD"].stability_bound
    ax.axhline(bound, color="black", ls="--", lw=1, label=f"SGD stability bound 2/eta = {bound:g}")
    ax.set_xticks(range(len(table_s1.METHODS)), [f"{n} (lr {m.lr:g})" for n, m in table_s1.METHODS.items()])
    ax.set_xlim(-0.6, len(table_s1.METHODS) - 0.4)
    ax.set_ylim(0, None)
    ax.set_xlabel("optimiser")
    ax.set_ylabel("lambda_max of the full-batch loss Hessian")
    ax.set_title("Sharpness of the minima reached by SGD and Adam (nonlinear network)")
    ax.legend(fontsize=9)
    fig.savefig(path)
    sgd, adam = per_seed["SGD"], per_seed["Adam"]
    return (f"lambda_max SGD {sgd.mean():.3g} +- {sgd.std():.2g} (printed 1.76 +- 0.0094), Adam {adam.mean():.3g} +- "
            f"{adam.std():.2g} (printed 12.9 +- 2.2), {sgd.size} seeds; SGD below 2/eta = {bound:g}: "
            f"{bool(sgd.max() < bound)}")


def _table_s1_lambdas(ctx: Context, report: dict[str, Any]) -> dict[str, np.ndarray]:
    """lambda_max per seed and method: from the audit's Table S1 check when the report has it (the
    check may have run in a worker process), otherwise from the (cached) experiment."""
    from proofs import table_s1  # noqa: PLC0415

    for claim in report.get("claims", ()):
        for c in claim["checks"] if claim["id"] == "Table S1" else ():
            summary = ((c.get("printed") or {}).get("details") or {}).get("measured vs printed") or {}
            if all(name in summary for name in table_s1.METHODS):
                return {name: np.asarray(summary[name]["lambda_max per seed"], dtype=float) for name in table_s1.METHODS}
    exp = table_s1.experiment(ctx.seed, ctx.profile.name if ctx.profile.name in table_s1.SETUPS else "default")
    return {name: exp.values(name, "lambda_max") for name in table_s1.METHODS}


LEMMA2_W1 = np.array([1.0, 1.0, 1.0])  # flattest minimum for tau = 1, m = 3
LEMMA2_W2 = np.array([1.5, 1.5, 1 / 2.25])  # a second minimum whose line to w1 is loyal


def lemma2_lines(t: np.ndarray) -> dict[str, Any]:
    """Scalar network m = 3, sigma_x^2 = sigma_xy = sigma_y^2 = 1 (tau = 1): the flattest w1, a loyal w2
    and the deceptive w3 = w1^2 / w2 (S29); the loss along w1 + t (w_j - w1), the curvature of the
    loss along each line at both ends, and lambda_max at each minimum (sympy Hessian)."""
    from proofs import scalar_network as sn  # noqa: PLC0415

    w1, w2 = LEMMA2_W1[None], LEMMA2_W2[None]
    w3 = w1**2 / w2
    out: dict[str, Any] = {"lambda_max": {k: float(sn.lambda_max(w, 1.0, 1.0)[0]) for k, w in
                                          (("w1", w1), ("w2", w2), ("w3", w3))}, "lines": {}}
    for name, end in (("w2", w2), ("w3", w3)):
        d = end - w1
        points = w1 + t[:, None] * d
        unit = float(np.sum(d * d))  # curvature per unit length along the line
        out["lines"][name] = {
            "loss": sn.loss(points, 1.0, 1.0, 1.0),
            "curvature at w1": float(sn.line_curvature(w1, d, 1.0, 1.0)[0]) / unit,
            f"curvature at {name}": float(sn.line_curvature(end, d, 1.0, 1.0)[0]) / unit,
        }
    return out


@figure("lemma2_connecting_lines.png", claims=("Lemma 2", "S29"),
        caption="Lemma 2 on a scalar network (m = 3, tau = 1): the loss along the line from the flattest minimum w1 "
                "to a loyal minimum w2 (left) and to the deceptive w3 = w1^2/w2 of (S29) (right). Along its line w3 "
                "looks flatter than w1 although lambda_max(w3) > lambda_max(w1). Curvatures are second derivatives of "
                "the loss per unit length along each line.")
def render_lemma2(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = np.linspace(-0.35, 1.35, 400)
    data = lemma2_lines(t)
    lam = data["lambda_max"]
    fig, axes = plt.subplots(1, 2, sharey=True, **SIZE)
    for ax, (name, line) in zip(axes, data["lines"].items()):
        ax.plot(t, line["loss"], color="C0")
        for at, label in ((0.0, "w1"), (1.0, name)):
            curv = line[f"curvature at {label}"]
            ax.axvline(at, color="grey", lw=0.8, ls=":")
            ax.annotate(f"{label}: curvature along the line {curv:.3f}\nlambda_max = {lam[label]:.2f}",
                        (at, 0.0), xytext=(at, 0.045), ha="center", fontsize=9,
                        bbox={"fc": "white", "ec": "none", "alpha": 0.85},
                        arrowprops={"arrowstyle": "->", "lw": 0.8})
        ax.set_xlabel(f"t  (point w1 + t ({name} - w1))")
        ax.set_title(f"line w1 -> {name}" + (" (loyal)" if name == "w2" else " (deceptive, S29)"))
        ax.set_ylim(-0.003, 0.08)
    axes[0].set_ylabel("loss E[(y - p x)^2], p = product of the three weights")
    fig.suptitle("Sharpness along a connecting line can mislead (Lemma 2)")
    fig.savefig(path)
    l3 = data["lines"]["w3"]
    return (f"along w1->w3 the curvature is {l3['curvature at w3']:.3f} at w3 vs {l3['curvature at w1']:.3f} at w1, "
            f"yet lambda_max(w3) = {lam['w3']:.2f} > lambda_max(w1) = {lam['w1']:.2f}")

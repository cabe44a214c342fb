"""The proof dependency graph of the supplement, coloured by verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalog import load as load_catalog
from ..context import Context
from . import figure

COLOURS = {
    "verified": "#1a9850",
    "passed": "#91cf60",
    "erratum": "#fee08b",
    "conditional": "#fc8d59",
    "failed": "#d73027",
    "error": "#7f0000",
    "skipped": "#bdbdbd",
    "uncovered": "#f0f0f0",
}
NAMED = tuple(c.label for c in load_catalog().values() if c.named)


def layers(named: dict[str, list[str]]) -> dict[str, int]:
    """Longest chain of named results below each one (0 for those using none)."""
    depth: dict[str, int] = {}

    def visit(label: str) -> int:
        if label not in depth:
            below = [visit(u) for u in named[label] if u in named]
            depth[label] = 1 + max(below) if below else 0
        return depth[label]

    for label in named:
        visit(label)
    return depth


@figure("dependency_graph.png", claims=NAMED,
        caption="Which theorems stand: each named result is a box coloured by its verdict, arrows point from a result "
                "to the results its proof uses, and the strip under each box shows the verdicts of the equations it uses.")
def render(ctx: Context, path: Path, report: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import FancyBboxPatch, Patch, Rectangle  # noqa: PLC0415

    verdict = {c["id"]: c["verdict"] for c in report["claims"]}
    named = {c["id"]: c["uses"] for c in report["claims"] if c["kind"] in ("definition", "claim", "lemma", "theorem", "table")}
    depth = layers(named)
    columns: dict[int, list[str]] = {}
    for label in named:  # catalog order within a column
        columns.setdefault(depth[label], []).append(label)
    fig, ax = plt.subplots(figsize=(12, 8), dpi=100)
    pos: dict[str, tuple[float, float]] = {}
    width, height = 1.5, 0.5
    for col, labels in columns.items():
        for row, label in enumerate(labels):
            pos[label] = (col * 2.4, -row * 1.2)
    for label, uses in named.items():
        for used in uses:
            if used in pos:
                (x0, y0), (x1, y1) = pos[used], pos[label]
                ax.annotate("", xy=(x1 - width / 2, y1), xytext=(x0 + width / 2, y0),
                            arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1})
    for label, (x, y) in pos.items():
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                    facecolor=COLOURS[verdict[label]], edgecolor="black"))
        ax.text(x, y + 0.06, label, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x, y - 0.13, verdict[label], ha="center", va="center", fontsize=8)
        equations = [u for u in named[label] if u not in named]
        cell = width / max(len(equations), 1)
        for i, used in enumerate(equations):
            ax.add_patch(Rectangle((x - width / 2 + i * cell, y - height / 2 - 0.22), cell, 0.14,
                                   facecolor=COLOURS[verdict.get(used, "uncovered")], edgecolor="white", lw=0.3))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.7)
    ax.set_xlabel("proof depth (a result sits right of the results its proof uses)")
    ax.set_yticks([])
    ax.set_xticks([])
    ax.set_title("Proof dependency graph of the supplement, coloured by verdict")
    ax.legend(handles=[Patch(facecolor=c, edgecolor="black", label=v) for v, c in COLOURS.items()],
              loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    standing = sum(verdict[label] in ("verified", "passed") for label in named)
    return f"{standing} of {len(named)} named results verified or passed in this run."

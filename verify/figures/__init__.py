"""Figures written by ``verify`` into the report folder and linked from report.md.

A figure is a function ``render(ctx, path, report) -> str`` that draws one PNG
with matplotlib (axes labelled) and returns a one-line summary of what it shows
(``report`` is the run's report.json document, for figures of verdicts);
it is registered with the claims it illustrates and a caption that tells the
reader what to see. ``verify`` draws the figures whose claims were selected.
Modules in this package named ``fig_*`` register figures on import.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..context import Context


@dataclass(frozen=True)
class Figure:
    name: str  # file name, e.g. "lemma2_lines.png"
    caption: str
    claims: tuple[str, ...]
    render: Callable[[Context, Path, dict], str]
    needs: tuple[str, ...] = ("matplotlib",)


FIGURES: dict[str, Figure] = {}


def figure(name: str, *, caption: str, claims: tuple[str, ...], needs: tuple[str, ...] = ("matplotlib",)):
    def register(render: Callable[[Context, Path, dict], str]) -> Callable[[Context, Path, dict], str]:
        if name in FIGURES:
            raise ValueError(f"duplicate figure {name!r}")
        FIGURES[name] = Figure(name, caption, tuple(claims), render, tuple(needs))
        return render

    return register


def load() -> dict[str, Figure]:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("fig_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return FIGURES


def draw(ctx: Context, selected: set[str], folder: Path, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Draw every figure one of whose claims is selected into ``folder``; returns one
    entry per figure (file, caption, summary or the reason it was skipped)."""
    out = []
    for fig in load().values():
        if not selected.intersection(fig.claims):
            continue
        entry: dict[str, Any] = {"file": fig.name, "caption": fig.caption, "claims": list(fig.claims)}
        missing = [m for m in fig.needs if importlib.util.find_spec(m) is None]
        if missing:
            entry["skipped"] = f"not available: {', '.join(missing)}"
        else:
            import matplotlib  # noqa: PLC0415
            import matplotlib.pyplot as plt  # noqa: PLC0415

            matplotlib.use("Agg")
            start = time.perf_counter()
            try:
                entry["summary"] = fig.render(ctx, folder / fig.name, report)
            except Exception as exc:  # a figure never breaks the audit; the report says why
                entry["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                plt.close("all")
            entry["seconds"] = round(time.perf_counter() - start, 3)
        out.append(entry)
    return out

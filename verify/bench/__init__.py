"""``verify bench``: the side-by-side tables, each measured in one run on the same instances.

- ``lambda_max``: routes to lambda_max(H) at global minima, the library's against dense
  eigensolvers, ARPACK and PyTorch HVP power iteration as PyHessian runs it (:mod:`.lambda_max`);
- ``throughput``: instances verified per second, batched against a loop (:mod:`.throughput`);
- ``precision``: Lemma 3 at 50 and 100 digits, mpmath against python-flint (:mod:`.precision`);
- ``audit``: wall time of the audit and its slowest claims (:mod:`.audit`).

:func:`run` measures the chosen tables, :func:`write` writes ``bench.json`` and ``bench.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import audit, lambda_max, precision, throughput
from .lambda_max import GIB, Limits
from .render import Section, markdown, print_sections

TABLES = ("lambda_max", "throughput", "precision", "audit")
SCHEMA = 2


@dataclass
class Options:
    tables: tuple[str, ...] = TABLES
    depths: tuple[int, ...] = (3, 5, 8)
    sizes: tuple[int, ...] = (8, 32, 64, 128, 256, 512)
    minima: tuple[str, ...] = ("canonical", "random (S104)")
    max_d: int | None = None
    quick: bool = False
    limits: Limits = field(default_factory=Limits)
    repeats: int = 3
    seed: int = 0
    audit_report: Path | None = None

    @property
    def shapes(self) -> list[lambda_max.Shape]:
        max_d = min(self.max_d or 64, 64) if self.quick else self.max_d
        depths = (tuple(m for m in self.depths if m in (3, 8)) or self.depths[:1]) if self.quick else self.depths
        return lambda_max.shapes(depths, self.sizes, max_d)

    def describe(self) -> str:
        limits = f"limits {self.limits.seconds:.0f} s, {self.limits.bytes / GIB:.0f} GiB per route"
        return f"{'quick sweep, ' if self.quick else ''}up to {self.repeats} runs per timing, {limits}"


def run(options: Options, progress: Callable[[str], None] = lambda s: None) -> list[Section]:
    """Every chosen table, in the order of TABLES."""
    quick = options.quick
    measure: dict[str, Callable[[], Section]] = {
        "lambda_max": lambda: lambda_max.run(options.shapes, options.minima, options.limits, options.repeats,
                                             options.seed, progress),
        "throughput": lambda: throughput.run(batch=1024 if quick else 4096, loop=64 if quick else 256,
                                             repeats=options.repeats, seed=options.seed, progress=progress),
        "precision": lambda: precision.run(count=1 if quick else 2, repeats=options.repeats, seed=options.seed,
                                           progress=progress),
        "audit": lambda: audit.run(options.audit_report, "quick" if quick else "default", options.seed, progress),
    }
    return [measure[key]() for key in TABLES if key in options.tables]


def meta(options: Options, machine: str) -> dict[str, Any]:
    return {"machine": machine, "seed": options.seed, "settings": options.describe(), "tables": list(options.tables)}


def to_json(sections: list[Section], meta: dict[str, Any]) -> str:
    tables = {s.key: {"title": s.title, "notes": s.notes, **s.data} for s in sections}
    return json.dumps({"schema": SCHEMA, "meta": meta, "tables": tables}, indent=1, default=str) + "\n"


def write(sections: list[Section], meta: dict[str, Any], folder: Path) -> dict[str, Path]:
    from ..report import write_files  # noqa: PLC0415

    return write_files({"bench.json": to_json(sections, meta), "bench.md": markdown(sections, meta)}, folder)


__all__ = ["TABLES", "Options", "Limits", "GIB", "Section", "run", "meta", "write", "print_sections", "audit"]

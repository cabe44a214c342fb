"""One table shape for every benchmark: rendered as Markdown for the report and with rich in a terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Section:
    """One benchmark table: formatted cells for people, ``data`` (JSON-ready) for machines.
    ``notes`` are sentences printed under the table (targets met or not, what was compared)."""

    key: str
    title: str
    columns: list[str]
    cells: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    numeric: frozenset[str] = frozenset()


def number(x: float | None, fmt: str = ".3g", missing: str = "—") -> str:
    return missing if x is None else format(x, fmt)


def seconds(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}" if x < 1 else f"{x:.2f}"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown(sections: list[Section], meta: dict[str, Any]) -> str:
    lines = ["# verify bench", "", f"Machine: {meta['machine']}; seed {meta['seed']}; {meta['settings']}.", ""]
    for s in sections:
        lines += [f"## {s.title}", "", "| " + " | ".join(s.columns) + " |", "|" + "---|" * len(s.columns)]
        lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in s.cells]
        lines += [""] + [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
    return "\n".join(lines).rstrip() + "\n"


def print_sections(sections: list[Section], console: Console) -> None:
    for s in sections:
        table = Table(title=s.title, title_justify="left")
        for col in s.columns:
            table.add_column(col, justify="right" if col in s.numeric else "left")
        for row in s.cells:
            table.add_row(*row)
        console.print(table)
        for n in s.notes:
            console.print(f"  • {n}", markup=False, highlight=False)

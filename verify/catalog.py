"""The claim catalog: every labelled statement of the supplement (``proofs/catalog.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

NAMED_KINDS = frozenset({"definition", "claim", "lemma", "theorem", "table"})
SECTIONS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX")
SECTION_TITLES = {
    "I": "Stability of minima",
    "II": "Proof of Lemma 1",
    "III": "Scalar networks",
    "IV": "Proof of Lemma 3",
    "V": "The missing parts of the proof of Theorem 1",
    "VI": "Proof of Theorem 2",
    "VII": "Proof of Theorem 3",
    "VIII": "Proof of Theorem 4",
    "IX": "Experiments",
}


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Claim:
    label: str
    section: str
    kind: str
    title: str
    statement: str
    subsection: str = ""
    uses: tuple[str, ...] = ()
    discharges: tuple[str, ...] = ()
    source: str = "supplement"
    note: str = ""
    order: int = field(default=0, compare=False)

    @property
    def named(self) -> bool:
        return self.kind in NAMED_KINDS

    @property
    def marker(self) -> str:
        """The pytest marker of the claim's section, e.g. ``section_III``."""
        return f"section_{self.section}"

    @property
    def test_id(self) -> str:
        """The label as a pytest id (no spaces, so ``-k Lemma_2`` selects it)."""
        return self.label.replace(" ", "_")


@lru_cache(maxsize=1)
def load() -> dict[str, Claim]:
    """All claims keyed by label, in the supplement's order."""
    text = resources.files("proofs").joinpath("catalog.toml").read_text(encoding="utf-8")
    return parse(text)


def parse(text: str) -> dict[str, Claim]:
    rows = tomllib.loads(text).get("claim", [])
    claims: dict[str, Claim] = {}
    for order, row in enumerate(rows):
        try:
            claim = Claim(
                label=row["label"],
                section=row["section"],
                kind=row["kind"],
                title=row["title"],
                statement=row["statement"].strip(),
                subsection=row.get("subsection", ""),
                uses=tuple(row.get("uses", ())),
                discharges=tuple(row.get("discharges", ())),
                source=row.get("source", "supplement"),
                note=row.get("note", ""),
                order=order,
            )
        except KeyError as exc:
            raise CatalogError(f"catalog entry {order} lacks field {exc}") from None
        if claim.label in claims:
            raise CatalogError(f"duplicate label {claim.label!r}")
        if claim.section not in SECTIONS:
            raise CatalogError(f"{claim.label}: unknown section {claim.section!r}")
        claims[claim.label] = claim
    for claim in claims.values():
        unknown = [u for u in claim.uses if u not in claims]
        if unknown:
            raise CatalogError(f"{claim.label} uses unknown labels {unknown}")
    _assert_acyclic(claims)
    return claims


def _assert_acyclic(claims: dict[str, Claim]) -> None:
    state: dict[str, int] = {}

    def visit(label: str, path: tuple[str, ...]) -> None:
        if state.get(label) == 2:
            return
        if state.get(label) == 1:
            raise CatalogError("cycle in uses: " + " -> ".join(path + (label,)))
        state[label] = 1
        for used in claims[label].uses:
            visit(used, path + (label,))
        state[label] = 2

    for label in claims:
        visit(label, ())

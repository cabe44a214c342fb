"""The committed catalog: every label of the supplement, well formed."""

from __future__ import annotations

from verify.catalog import NAMED_KINDS, load

NAMED = (["Definition S1", "Claim S1", "Lemma S1", "Lemma S2", "Table S1"]
         + [f"Lemma {i}" for i in range(1, 5)] + [f"Theorem {i}" for i in range(1, 5)])


def test_every_label_is_registered_once():
    claims = load()
    expected = {f"S{i}" for i in range(1, 107)} | {"P1", "P2", "P3"} | set(NAMED)
    assert set(claims) == expected


def test_entries_are_complete():
    for claim in load().values():
        assert claim.title and claim.statement, claim.label
        if claim.label in NAMED:
            assert claim.kind in NAMED_KINDS, claim.label
        else:
            assert claim.kind not in NAMED_KINDS and not claim.uses, claim.label


def test_named_results_name_what_their_proofs_use():
    claims = load()
    for label in NAMED:
        if label != "Table S1":
            assert claims[label].uses, label
    assert set(claims["Lemma 3"].uses) >= {f"S{i}" for i in range(33, 50)}
    assert "Theorem 1" in claims["Theorem 2"].uses

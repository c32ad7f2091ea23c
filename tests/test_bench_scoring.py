"""Benchmark scoring: normalisation, list answers, update buckets, breakdowns."""
from __future__ import annotations

import pytest

from bench.harness.scoring import is_correct, normalise, summarise, updates_bucket


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Chancellor of the Exchequer", "chancellor of exchequer"),
        ("  Kansas City   Chiefs. ", "kansas city chiefs"),
        ("93,000 dollars", "93000 dollars"),
        ("An apple a day", "apple day"),
        ("Grimsby Town F.C.", "grimsby town fc"),
        ("«Théâtre» — Paris!", "théâtre paris"),
        ("Jean-Pierre", "jeanpierre"),
        ("YES", "yes"),
        ("", ""),
    ],
)
def test_normalise(raw: str, norm: str) -> None:
    assert normalise(raw) == norm


def test_articles_only_as_whole_words() -> None:
    assert normalise("Theatre anthem") == "theatre anthem"  # 'the'/'an' inside words stay


def test_single_answers() -> None:
    assert is_correct("the Green Bay Packers.", "Green Bay Packers")
    assert not is_correct("Kansas City Chiefs", "Green Bay Packers")
    assert is_correct(["Yes"], "yes")  # a one-item list is one answer
    assert not is_correct(["yes", "no"], "yes")
    assert not is_correct(None, "yes")


def test_list_answers_are_sets() -> None:
    gold = ["Tara Moreau", "Alice Lindqvist"]
    assert is_correct(["alice lindqvist", "Tara Moreau."], gold)
    assert is_correct(["Tara Moreau", "Alice Lindqvist", "tara moreau"], gold)  # repeats ignored
    assert not is_correct(["Tara Moreau"], gold)  # a subset is wrong
    assert not is_correct(["Tara Moreau", "Alice Lindqvist", "Sven Rossi"], gold)  # a superset too
    assert is_correct("Tara Moreau", ["Tara Moreau"])


@pytest.mark.parametrize("updates, bucket", [(0, "0"), (-1, "0"), (1, "1"), (2, "2+"), (7, "2+")])
def test_updates_bucket(updates: int, bucket: str) -> None:
    assert updates_bucket(updates) == bucket


def _row(correct: bool, updates: int, changed: bool, time: str, kind: str = "single") -> dict:
    return {"correct": correct, "updates": updates, "changed": changed, "time": time, "kind": kind}


def test_summarise_breakdowns_and_checkpoints() -> None:
    rows = [
        _row(True, 0, False, "2022-01-01"),
        _row(False, 1, True, "2022-01-01"),
        _row(True, 1, False, "2022-06-01", "list"),
        _row(True, 2, True, "2022-06-01"),
        _row(False, 3, True, "2022-06-01", "list"),
    ]
    s = summarise(rows)
    assert s["overall"] == {"n": 5, "correct": 3, "accuracy": 0.6}
    assert s["by_updates"]["0"]["n"] == 1 and s["by_updates"]["1"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["by_updates"]["2+"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert s["by_changed"]["changed"]["n"] == 3 and s["by_changed"]["unchanged"]["accuracy"] == 1.0
    assert s["by_kind"]["list"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    cps = s["checkpoints"]
    assert [c["time"] for c in cps] == ["2022-01-01", "2022-06-01"]
    assert cps[0]["accuracy"] == 0.5 and cps[1]["accuracy"] == round(2 / 3, 4)
    assert cps[1]["cumulative"] == 0.6


def test_summarise_empty() -> None:
    s = summarise([])
    assert s["overall"] == {"n": 0, "correct": 0, "accuracy": None} and s["checkpoints"] == []

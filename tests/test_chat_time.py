"""Reading the time a question is about (graphs/time_intent.py) and filtering by it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from graphs.retrieval import true_during
from graphs.text import content_terms
from graphs.time_intent import parse_time_intent, parse_when
from stores.types import Fact, HistoryEntry

NOW = datetime(2024, 7, 15, 12, tzinfo=timezone.utc)


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def end_of(day: str) -> datetime:
    return t(day).replace(hour=23, minute=59, second=59, microsecond=999999)


@pytest.mark.parametrize("question,mode,start,end", [
    ("Who was CEO of Northwind in March 2022?", "as_of", t("2022-03-01"), end_of("2022-03-31")),
    ("Who is CEO as of 2021-05-01?", "as_of", end_of("2021-05-01"), end_of("2021-05-01")),
    ("Who led Acme in 2020?", "as_of", t("2020-01-01"), end_of("2020-12-31")),
    ("What happened on 5 May 2021?", "as_of", t("2021-05-05"), end_of("2021-05-05")),
    ("CEO on May 5th, 2021?", "as_of", t("2021-05-05"), end_of("2021-05-05")),
    ("Who was CEO before 2020?", "as_of", end_of("2019-12-31"), end_of("2019-12-31")),
    ("Who was CEO at the start of 2020?", "as_of", t("2020-01-01"), t("2020-01-01")),
    ("Who was CEO by the end of 2019?", "as_of", end_of("2019-12-31"), end_of("2019-12-31")),
    ("Who was CEO in Q2 2023?", "as_of", t("2023-04-01"), end_of("2023-06-30")),
    ("Who was CEO in late 2021?", "as_of", t("2021-09-01"), end_of("2021-12-31")),
    ("Who was CEO at 2021-03-04T10:00:00Z?", "as_of", t("2021-03-04T10:00:00"), t("2021-03-04T10:00:00")),
    ("Who was CEO last year?", "as_of", t("2023-01-01"), end_of("2023-12-31")),
    ("Who was CEO two years ago?", "as_of", t("2022-07-15"), end_of("2022-07-15")),
    ("What changed about Northwind?", "history", None, None),
    ("How has the CEO of Acme changed?", "history", None, None),
    ("Who was CEO before John Smith?", "history", None, None),
    ("What changed since 2021?", "history", t("2021-01-01"), NOW),
    ("Who is CEO now?", "now", None, None),
    ("Who won the 2022 World Cup?", "now", None, None),  # a year as a name, not a time
    ("Who may lead Acme?", "now", None, None),  # 'may' the verb, not the month
    ("Who is CEO as of today?", "now", None, None),
])
def test_parse_time_intent(question, mode, start, end):
    it = parse_time_intent(question, NOW)
    assert (it.mode, it.start, it.end) == (mode, start, end)


def test_explicit_flags_and_labels():
    assert not parse_time_intent("Who is the CEO of Acme?", NOW).explicit
    assert parse_time_intent("Who is the CEO of Acme now?", NOW).explicit
    assert parse_time_intent("Who was CEO in March 2022?", NOW).describe() == "in March 2022"
    assert parse_time_intent("And in 2019?", NOW).label == "in 2019"


def test_parse_when_for_asof_commands():
    assert parse_when("2021-05-01", NOW).end == end_of("2021-05-01")
    assert parse_when("March 2022", NOW).end == end_of("2022-03-31")
    assert parse_when("2022", NOW).end == end_of("2022-12-31")
    assert parse_when("now", NOW).mode == "now"
    assert parse_when("2030-01-01", NOW).mode == "now"  # the future is now, as far as facts go
    for bad in ("bogus", "", "2021-13-45", "May"):
        with pytest.raises(ValueError):
            parse_when(bad, NOW)


def test_true_during_a_window():
    f = Fact("f", "x", history=[HistoryEntry(t("2020-01-01"), True, "a", "extract"), HistoryEntry(t("2022-06-01"), False, "b", "make_false")])
    assert true_during(f, None, t("2021-01-01"))
    assert not true_during(f, None, t("2023-01-01"))
    assert true_during(f, t("2022-01-01"), t("2022-12-31"))  # true for part of 2022
    assert not true_during(f, t("2019-01-01"), t("2019-12-31"))
    assert not true_during(f, None, None)  # not true now


def test_content_terms_drop_question_words():
    assert content_terms("Who is the CEO of Northwind now?") == ["ceo", "northwind"]

"""Benchmark streams: parsing, the paper's question selection, document subsets."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bench.harness.runner import BenchOptions, prepare
from bench.harness.stream import (
    Question,
    Stream,
    parse_stream,
    read_stream,
    select_questions,
    subset_by_entities,
    subset_by_time,
    write_stream,
)
from agent.errors import InputError
from stores.types import Document

T0 = datetime(2022, 1, 1, tzinfo=timezone.utc)


def q(i: int, changed: bool, day: int = 0, text: str | None = None) -> Question:
    return Question(f"q{i}", T0 + timedelta(days=day), text or f"Question {i}?", ["no", "yes"], "yes", int(changed), changed)


def d(i: str, day: int, text: str) -> Document:
    return Document(id=i, text=text, published_at=T0 + timedelta(days=day), source="t")


def test_parse_orders_and_roundtrips(tmp_path: Path) -> None:
    lines = [
        json.dumps({"type": "question", "id": "q1", "time": "2022-02-01T00:00:00Z", "question": "Who?", "choices": ["A", "B"], "answer": ["A"], "updates": 1, "changed": True}),
        json.dumps({"type": "document", "id": "d1", "time": "2022-02-01T00:00:00Z", "text": "A did it.", "title": "t"}),
        json.dumps({"type": "document", "id": "d0", "time": "2022-01-01", "text": "Before."}),
    ]
    s = parse_stream(lines)
    assert [x.id for x in s.documents] == ["d0", "d1"]
    assert s.questions[0].answer == ["A"] and s.questions[0].is_list and s.questions[0].changed
    # documents come before questions at the same time
    assert [type(e).__name__ for e in s.events()] == ["Document", "Document", "Question"]
    write_stream(s, tmp_path / "s.jsonl")
    again = read_stream(tmp_path / "s.jsonl")
    assert [e.id for e in again.events()] == [e.id for e in s.events()]
    assert again.questions[0].updates == 1


@pytest.mark.parametrize(
    "line, msg",
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"type": "note"}), "type 'document' or 'question'"),
        (json.dumps({"type": "document", "id": "x", "time": "2022-01-01", "text": " "}), "no text"),
        (json.dumps({"type": "question", "id": "x", "time": "2022-01-01", "question": "?", "choices": [], "answer": "a"}), "no choices"),
        (json.dumps({"type": "document", "id": "x", "time": "yesterday", "text": "t"}), "not an ISO date"),
    ],
)
def test_bad_lines_name_the_line(line: str, msg: str) -> None:
    with pytest.raises(InputError, match=rf"s.jsonl:2: .*{msg}"):
        parse_stream(["", line], "s.jsonl")


def test_select_questions_changed_first_then_equal_unchanged() -> None:
    qs = [q(i, changed=i % 5 == 0, day=i) for i in range(40)]  # 8 changed, 32 unchanged
    sel = select_questions(qs, 10, seed=3)
    assert sum(x.changed for x in sel) == 5 and sum(not x.changed for x in sel) == 5
    assert [x.time for x in sel] == sorted(x.time for x in sel)  # time order kept
    assert [x.id for x in sel] == [x.id for x in select_questions(qs, 10, seed=3)]  # seeded
    assert [x.id for x in sel] != [x.id for x in select_questions(qs, 10, seed=4)]
    # few changed questions: all of them, and only as many unchanged ones
    few = select_questions(qs, 30, seed=1)
    assert sum(x.changed for x in few) == 8 and len(few) == 16
    assert select_questions(qs, None, 0) == qs and select_questions(qs, 100, 0) == qs


def test_select_questions_without_changed() -> None:
    qs = [q(i, changed=False) for i in range(10)]
    assert len(select_questions(qs, 4, seed=0)) == 4


def test_subset_by_time_keeps_questions_before_the_next_document() -> None:
    s = Stream([d("a", 0, "x"), d("b", 2, "y"), d("c", 4, "z")], [q(1, False, 1), q(2, False, 2), q(3, False, 3), q(4, False, 5)])
    sub = subset_by_time(s, 2)
    assert [x.id for x in sub.documents] == ["a", "b"]
    assert [x.id for x in sub.questions] == ["q1", "q2", "q3"]  # q4 comes after document c
    s2 = Stream(s.documents, [q(9, False, 4)])
    assert subset_by_time(s2, 2).questions == []  # asked at c's time: after c in replay order
    assert subset_by_time(s, None) is s


def test_subset_by_entities_keeps_relevant_documents_within_budget() -> None:
    filler = [d(f"f{i}", i, f"Weather report number {i} for the region.") for i in range(60)]
    docs = filler + [
        d("joel1", 1, "Joel King signed for Odense Boldklub."),
        d("joel2", 30, "Odense Boldklub released Joel King."),
        d("zahawi", 20, "Nadhim Zahawi became Chancellor of the Exchequer."),
        d("reif", 5, "Reif was elected president of MIT."),
    ]
    qs = [
        q(1, False, 10, "Is Joel King a member of Odense Boldklub?"),
        q(2, True, 40, "Is Joel King a member of Odense Boldklub?"),
        Question("q3", T0 + timedelta(days=40), "What government position does Nadhim Zahawi hold?",
                 ["Chancellor of the Exchequer", "Secretary of State for Education"], "Chancellor of the Exchequer", 1, True),
        Question("q4", T0 + timedelta(days=40), "Who is the president of Massachusetts Institute of Technology?",
                 ["L. Rafael Reif", "Sally Kornbluth"], "L. Rafael Reif", 0, False),
        q(5, False, 40, "Is the Region a Weather?"),  # only common words: never kept
    ]
    s = Stream(sorted(docs, key=lambda x: x.time), qs)
    sub = subset_by_entities(s, 3, seed=0)
    ids = {x.id for x in sub.documents}
    assert len(ids) <= 3
    kept = {x.question for x in sub.questions}
    # every kept question series has all of its relevant documents
    if "Is Joel King a member of Odense Boldklub?" in kept:
        assert {"joel1", "joel2"} <= ids
        assert sum(x.question.startswith("Is Joel") for x in sub.questions) == 2  # the whole series
    assert "Is the Region a Weather?" not in kept
    assert [x.time for x in sub.documents] == sorted(x.time for x in sub.documents)
    # changed series come first: with room for everything, all three named series are kept
    big = subset_by_entities(s, 4, seed=0)
    assert {x.id for x in big.documents} == {"joel1", "joel2", "zahawi", "reif"}
    assert len(big.questions) == 4
    assert subset_by_entities(s, None, 0) is s


def test_prepare_rejects_unknown_system_and_rule() -> None:
    s = Stream([d("a", 0, "x")], [q(1, False, 1)])
    with pytest.raises(InputError, match="unknown system"):
        prepare(s, BenchOptions(systems=["nope"]))
    with pytest.raises(InputError, match="subset rule"):
        prepare(s, BenchOptions(systems=["rag"], subset="random"))
    sub, info = prepare(s, BenchOptions(systems=["rag"], max_questions=5))
    assert info["questions"] == 1 and info["documents"] == 1 and sub.questions[0].id == "q1"

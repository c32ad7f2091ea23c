"""Synthetic worlds: invariants of the generated world, its text and its questions."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness.stream import read_stream, write_stream
from bench.harness.world import JOB_DOWNSTREAM, KINDS, WorldState, generate_world, money
from agent.errors import InputError


@pytest.fixture(scope="module", params=[1, 2, 7])
def worlds(request: pytest.FixtureRequest) -> dict:
    seed = request.param
    return {k: generate_world(k, seed, people=9, companies=3, changes=8) for k in KINDS}


def _expected(st: WorldState, template: str, p: str, other: str | None):  # noqa: ANN202
    """Answers recomputed from the state's raw tables, independently of the generator."""
    c = st.company[p]
    if template == "company":
        return c
    if template == "boss":
        return st.managers[c]
    if template == "salary":
        return money(st.pay[(c, st.role[p])])
    if template == "hours":
        return st.hours_of[c]
    if template == "coworkers":
        return sorted(o for o in st.company if o != p and st.company[o] == c)
    if template == "hobbies":
        return sorted(st.hobbies[p])
    if template == "works_with":
        return "yes" if st.company[other] == c else "no"
    raise AssertionError(template)


def test_coworkers_are_symmetric_at_every_time(worlds: dict) -> None:
    for _, st in worlds["multi-hop"].states:
        for p in st.people:
            assert p not in st.coworkers(p)
            for o in st.coworkers(p):
                assert p in st.coworkers(o)


def test_every_company_keeps_its_manager_and_staff(worlds: dict) -> None:
    for _, st in worlds["multi-hop"].states:
        for c, m in st.managers.items():
            assert st.company[m] == c and st.role[m] == "manager"
            assert any(st.company[p] == c and p != m for p in st.people)


def test_a_job_change_updates_every_listed_downstream_relation(worlds: dict) -> None:
    w = worlds["multi-hop"]
    jobs = [t for t in w.transitions if t.kind == "job"]
    assert jobs, "the world should contain job changes"
    for t in w.transitions:
        idx = [when for when, _ in w.states].index(t.time)
        before, after = w.states[idx - 1][1], w.states[idx][1]
        p = t.person
        if t.kind == "hobby":
            assert set(t.changes) == {(p, "hobbies")}
            continue
        old_c, new_c = t.detail["from"], t.detail["to"]
        assert before.company[p] == old_c and after.company[p] == new_c != old_c
        for rel in JOB_DOWNSTREAM:  # every one of the mover's downstream relations changed...
            assert before.relation(p, rel) != after.relation(p, rel), rel
            assert (p, rel) in t.changes
        # ...and so did the coworkers of everyone at the old and the new company
        affected = (before.coworkers(p) | after.coworkers(p))
        for o in affected:
            assert (o, "coworkers") in t.changes
            assert (p in after.coworkers(o)) == (after.company[o] == new_c)
        # and nothing else
        assert set(t.changes) == {(p, r) for r in JOB_DOWNSTREAM} | {(o, "coworkers") for o in affected}


def test_single_hop_states_all_changes_multi_hop_only_the_move(worlds: dict) -> None:
    single, multi = worlds["single-hop"], worlds["multi-hop"]
    for t, ds, dm in zip(single.transitions, single.stream.documents[-len(single.transitions):], multi.stream.documents[-len(multi.transitions):]):
        assert ds.time == dm.time == t.time
        if t.kind == "hobby":
            assert ds.text == dm.text
            continue
        idx = [when for when, _ in single.states].index(t.time)
        after = single.states[idx][1]
        p = t.person
        for text in (ds.text, dm.text):
            assert t.detail["from"] in text and t.detail["to"] in text
        for val in (after.boss(p), money(after.salary(p)), after.hours(p), *after.coworkers(p)):
            assert val in ds.text  # single-hop: every downstream value is stated
            assert val not in dm.text  # multi-hop: none is


def test_same_world_for_both_kinds(worlds: dict) -> None:
    s, m = worlds["single-hop"], worlds["multi-hop"]
    assert s.states == m.states
    assert [(q.question, q.answer, q.time) for q in s.stream.questions] == [(q.question, q.answer, q.time) for q in m.stream.questions]
    assert [d.text for d in s.stream.documents[:9]] == [d.text for d in m.stream.documents[:9]]  # the introductions


def test_answers_at_time_t_match_the_world_at_t(worlds: dict) -> None:
    w = worlds["multi-hop"]
    prev: dict[str, object] = {}
    count: dict[str, int] = {}
    for q in w.stream.questions:
        st = w.state_at(q.time)
        exp = _expected(st, q.meta["template"], q.meta["person"], q.meta.get("other"))
        assert q.answer == exp, q.question
        if isinstance(q.answer, list):
            assert set(q.answer) <= set(q.choices)
        else:
            assert q.answer in q.choices
        assert len(set(q.choices)) == len(q.choices)
        changed = q.question in prev and prev[q.question] != q.answer
        count[q.question] = count.get(q.question, 0) + changed
        assert q.changed == changed and q.updates == count[q.question]
        prev[q.question] = q.answer
    assert any(q.changed for q in w.stream.questions) and any(q.is_list for q in w.stream.questions)
    # every document precedes the questions that follow it; questions follow the last intro
    assert min(q.time for q in w.stream.questions) > w.stream.documents[8].time


def test_reproducible_with_the_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    write_stream(generate_world("multi-hop", 5).stream, a)
    write_stream(generate_world("multi-hop", 5).stream, b)
    write_stream(generate_world("multi-hop", 6).stream, c)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    s = read_stream(a)  # the output is a valid stream
    assert len(s.documents) == 7 + 4 and s.questions


@pytest.mark.parametrize("kw, msg", [
    ({"kind": "two-hop"}, "unknown world"), ({"companies": 2}, "companies"), ({"people": 5}, "people"), ({"changes": 0}, "changes"),
])
def test_bad_parameters(kw: dict, msg: str) -> None:
    args = {"kind": "multi-hop", "seed": 1, **kw}
    kind, seed = args.pop("kind"), args.pop("seed")
    with pytest.raises(InputError, match=msg):
        generate_world(kind, seed, **args)

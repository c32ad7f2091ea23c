"""Answers from the store's structure (graphs/lookup.py), alone and in the chat agent."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from agent.app import App
from graphs import lookup
from graphs.chat import ChatAgent
from graphs.ingest import ingest_document
from graphs.testing import FakeLLM
from graphs.time_intent import TimeIntent
from stores.testing import HashEmbedder
from tests.helpers import doc


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def K(id: str, text: str, s: str, r: str, o: str, *, now: bool = True, was: bool = True, ended: bool = False, since: float = 0.0) -> lookup.Known:  # noqa: E741
    return lookup.Known(id, text, s, r, o, ended, now, was, since)


FACTS = [
    K("1", "Elena Fischer works at Initech as an engineer.", "Elena Fischer", "works at", "Initech", now=False),
    K("2", "Elena Fischer started at Wonka Sweets this week.", "Elena Fischer", "works at", "Wonka Sweets", since=2),
    K("3", "Elena Fischer's boss is Sven Rossi.", "Elena Fischer", "has boss", "Sven Rossi", since=2),
    K("4", "Elena Fischer works with Sven Rossi.", "Elena Fischer", "works with", "Sven Rossi", since=2),
    K("5", "Elena Fischer works with Pablo Hughes.", "Elena Fischer", "works with", "Pablo Hughes", since=2),
    K("6", "Keiko Tanaka no longer works with Elena Fischer.", "Keiko Tanaka", "works with", "Elena Fischer", ended=True),
]


def test_a_choice_is_the_one_a_fact_true_then_names() -> None:
    d = lookup.decide("Where does Elena Fischer work?", ["Initech", "Wonka Sweets", "Hooli"], FACTS)
    assert d.answer == "Wonka Sweets" and d.support == ["2"]
    # the relation the question asks about wins over another true fact naming a choice
    d = lookup.decide("Who is Elena Fischer's boss?", ["Yara Ivanova", "Sven Rossi", "Pablo Hughes"], FACTS)
    assert d.answer == "Sven Rossi" and d.support == ["3"]


def test_list_answers_are_every_supported_choice_but_never_the_subject() -> None:
    d = lookup.decide("Who are Elena Fischer's coworkers?", ["Elena Fischer", "Sven Rossi", "Pablo Hughes", "Keiko Tanaka"], FACTS)
    assert d.answer == ["Sven Rossi", "Pablo Hughes"]


def test_yes_no_from_a_true_fact_an_ended_one_or_another_value() -> None:
    assert lookup.decide("Does Elena Fischer work with Pablo Hughes?", ["no", "yes"], FACTS).answer == "yes"
    assert lookup.decide("Does Elena Fischer work with Keiko Tanaka?", ["no", "yes"], FACTS).answer == "no"  # ended
    d = lookup.decide("Is Elena Fischer an employee of Hooli?", ["no", "yes"], FACTS)
    assert d.answer == "no" and "another works at" in d.reason  # one employer at a time, and it is Wonka Sweets
    d = lookup.decide("Is Elena Fischer an employee of Wonka Sweets Ltd?", ["no", "yes"], FACTS)
    assert d.answer == "yes"  # most of the words of the value: the same value


def test_designators_do_not_tell_names_apart() -> None:
    facts = [K("w", "Will Boyle signed with Cheltenham Town.", "Will Boyle", "works at", "Cheltenham Town")]
    assert lookup.decide("Is Will Boyle a member of Cheltenham Town F.C.?", ["no", "yes"], facts).answer == "yes"
    assert lookup.names_value("Will Boyle signed with Cheltenham Town.", "Cheltenham Town F.C.")
    assert not lookup.names_value("Will Boyle signed with Cheltenham Town.", "Huddersfield Town A.F.C.")


def test_the_store_leaves_what_it_does_not_know_to_the_model() -> None:
    assert lookup.decide("Where does Bo Li work?", ["Initech", "Hooli"], FACTS).answer is None
    assert lookup.decide("What are Elena Fischer's hobbies?", ["chess", "yoga"], FACTS).answer is None
    assert lookup.decide("Does Bo Li work with Sven Rossi?", ["no", "yes"], FACTS).answer is None


def test_closed_world_a_yes_no_about_an_unknown_subject_is_no() -> None:
    d = lookup.decide("Does Bo Li work with Sven Rossi?", ["no", "yes"], FACTS, closed_world=True)
    assert d.answer == "no" and "closed world" in d.reason
    # it decides only what nothing is known about: a known subject still goes by its facts
    assert lookup.decide("Does Elena Fischer work with Pablo Hughes?", ["no", "yes"], FACTS, closed_world=True).answer == "yes"


def test_names_of_a_question() -> None:
    assert lookup.names("Who runs Northwind's Lyon warehouse?") == ["Northwind", "Lyon"]
    assert lookup.names("Does Elena Fischer work with Keiko Tanaka?") == ["Elena Fischer", "Keiko Tanaka"]
    assert "chief executive of" in lookup.question_relations("Who is the CEO of Globex?")


def test_best_fact_for_a_factoid_question() -> None:
    facts = [K("a", "Northwind Logistics' board named Quinn Park as interim chief executive.", "Quinn Park", "chief executive of", "Northwind Logistics", since=2),
             K("b", "Northwind Logistics has appointed Maria Lopez as its chief executive.", "Maria Lopez", "chief executive of", "Northwind Logistics", now=False),
             K("c", "Northwind Logistics opened a warehouse in Lyon.", "Northwind Logistics", "open warehouse in", "Lyon", since=1)]
    b = lookup.best_fact("Who is the chief executive of Northwind Logistics?", facts)
    assert b is not None and b.fact_id == "a" and b.value == "Quinn Park" and b.strong
    assert lookup.best_fact("Who founded Northwind Logistics?", facts) is None  # nothing asks for it


# ----------------------------------------------------------------------------- in the chat agent
@pytest.fixture
def agent_store(keyed_cfg):  # noqa: ANN001
    llm = FakeLLM(responder=lambda p, s, st: "MODEL", choice_scorer=lambda p, cs: [float(i) for i in range(len(cs))])
    app = App(keyed_cfg, llm=llm, embedder=HashEmbedder())
    for d in (doc("a", "Northwind Logistics has appointed Maria Lopez as its chief executive.", "2024-01-15"),
              doc("b", "Maria Lopez has stepped down as chief executive of Northwind Logistics to become chief executive of its rival Globex Shipping.", "2024-07-08"),
              doc("c", "Northwind Logistics has made Quinn Park its chief executive.", "2024-08-16")):
        ingest_document(d, app.ingest_context())
    agent = ChatAgent(SimpleNamespace(store=app.store, index=app.index, llm=llm), keyed_cfg.chat)
    yield agent, llm
    app.close()


def test_chat_answers_a_factoid_from_the_fact_with_its_citation_and_no_model_call(agent_store) -> None:  # noqa: ANN001
    agent, llm = agent_store
    r = agent.ask("Who is the chief executive of Northwind Logistics?")
    assert r.answer == "Northwind Logistics has made Quinn Park its chief executive [1]." or "Quinn Park" in r.answer
    assert [c.text for c in r.citations] == ["Northwind Logistics has made Quinn Park its chief executive."]
    assert r.citations[0].sources[0].doc_id == "c"
    r = agent.ask("Who was the chief executive of Northwind Logistics in March 2024?")
    assert "Maria Lopez" in r.answer and r.citations[0].sources[0].doc_id == "a"
    assert llm.calls == []


def test_chat_choices_come_from_the_store_then_from_the_model(agent_store) -> None:  # noqa: ANN001
    agent, llm = agent_store
    r = agent.ask("Who is the chief executive of Globex Shipping?", mode="choice", choices=["Quinn Park", "Maria Lopez"])
    assert r.chosen == ["Maria Lopez"] and llm.calls == []
    r = agent.ask("Who founded Harbor Mutual?", mode="choice", choices=["Ann Wu", "Bo Li"],
                  default_time=TimeIntent("as_of", t("2024-09-01"), t("2024-09-01"), "2024-09-01"))
    assert r.chosen == ["Bo Li"] and [c.step for c in llm.calls][:1] == ["answer"]  # nothing known: the model's likelihood

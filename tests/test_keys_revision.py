"""Ingest with `revision: keys` (the default): deterministic revision by keys, on a real
store, with a fake LLM that must never be called."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agent.app import App
from graphs import keyed
from graphs.ingest import ingest_document
from graphs.keyed.keys import Key, norm
from graphs.keyed.names import NameIndex
from graphs.testing import FakeLLM
from stores.errors import InputError
from stores.testing import HashEmbedder
from tests.helpers import doc, snapshot


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


@pytest.fixture
def kapp(keyed_cfg):  # noqa: ANN001
    """An App on config.yaml's defaults; the model raises if anything calls it."""
    llm = FakeLLM(responder=lambda p, s, st: (_ for _ in ()).throw(AssertionError(f"model called: {st}")))
    a = App(keyed_cfg, llm=llm, embedder=HashEmbedder())
    yield a
    assert llm.calls == []  # revision by keys never asks the model
    a.close()


def ingest(app: App, *docs) -> list:  # noqa: ANN002
    return [ingest_document(d, app.ingest_context()) for d in docs]


def texts(app: App, when: datetime | None = None) -> list[str]:
    return sorted(f.text for f in app.store.list_facts(as_of=when))


def test_a_new_holder_of_a_one_holder_role_replaces_the_old(kapp) -> None:  # noqa: ANN001
    r = ingest(kapp,
               doc("a", "Northwind Logistics has appointed Maria Lopez as its chief executive.", "2024-01-15"),
               doc("b", "Northwind Logistics has made Quinn Park its chief executive.", "2024-08-16"))
    assert [x.status for x in r] == ["done", "done"] and r[1].calls == 0
    old = kapp.store.find_by_norm("Northwind Logistics has appointed Maria Lopez as its chief executive.")
    assert old.truth_at(t("2024-03-01")) is True and old.truth_at(t("2024-09-01")) is False
    assert texts(kapp) == ["Northwind Logistics has made Quinn Park its chief executive."]
    assert texts(kapp, t("2024-03-01")) == ["Northwind Logistics has appointed Maria Lopez as its chief executive."]
    ops = [(o.op, o.detail or "") for o in kapp.store.operations("b")]
    assert ops[0][0] == "make_false" and "replaced by: Northwind Logistics has made Quinn Park" in ops[0][1]
    assert "key [Quinn Park | chief executive of | Northwind Logistics]" in ops[1][1]


def test_a_new_value_of_a_one_value_slot_replaces_only_that_slot(kapp) -> None:  # noqa: ANN001
    ingest(kapp, doc("a", "Elena Fischer: I earn 90,000 dollars a year and I enjoy chess.", "2023-01-01"),
           doc("b", "Elena Fischer: I earn 95,000 dollars a year and I enjoy sailing.", "2023-06-01"))
    assert texts(kapp) == ["Elena Fischer earns 95,000 dollars a year.", "Elena Fischer enjoys chess.", "Elena Fischer enjoys sailing."]


def test_an_ended_statement_ends_its_fact_and_is_kept(kapp) -> None:  # noqa: ANN001
    ingest(kapp, doc("a", "Maria Lopez is the chief executive of Northwind Logistics.", "2024-01-15"),
           doc("b", "Maria Lopez has stepped down as chief executive of Northwind Logistics.", "2024-07-08"))
    assert texts(kapp) == ["Maria Lopez has stepped down as chief executive of Northwind Logistics."]


def test_the_same_value_again_reinforces_and_other_documents_do_not(kapp) -> None:  # noqa: ANN001
    ingest(kapp, doc("a", "Maria Lopez is the chief executive of Northwind Logistics.", "2024-01-15"),
           doc("b", "Harbor City's ferry runs every 20 minutes.", "2024-02-01"),
           doc("c", "Northwind Logistics' chief executive is Maria Lopez.", "2024-03-01"))
    f = kapp.store.find_by_norm("Maria Lopez is the chief executive of Northwind Logistics.")
    assert [(h.doc_id, h.op) for h in f.history] == [("a", "extract"), ("c", "reinforce")]
    assert kapp.store.find_by_norm("Northwind Logistics' chief executive is Maria Lopez.") is None  # not stored twice


def test_a_replacement_rewrites_the_old_fact_in_its_own_words_from_its_date(kapp) -> None:  # noqa: ANN001
    ingest(kapp, doc("a", "The Gull Island ferry is operated by BlueWake Lines.", "2024-04-10"),
           doc("b", "The council has awarded the Gull Island ferry contract to Tidewater Transit, replacing BlueWake Lines from 1 October.", "2024-08-28"))
    old = kapp.store.find_by_norm("The Gull Island ferry is operated by BlueWake Lines.")
    new = kapp.store.find_by_norm("The Gull Island ferry is operated by Tidewater Transit.")
    assert new is not None and new.supersedes == old.id
    assert old.truth_at(t("2024-09-15")) is True and old.truth_at(t("2024-10-02")) is False  # announced: from its date
    assert new.truth_at(t("2024-09-15")) is None and new.truth_at(t("2024-10-02")) is True
    assert [o.op for o in kapp.store.operations("b") if o.fact_id in (old.id, new.id)] == ["make_false", "rewrite"]


def test_a_changed_employer_ends_what_followed_from_it_and_derives_the_new(kapp) -> None:  # noqa: ANN001
    world = [
        doc("1", "Yara Ivanova: I run Initech, so I am the boss of everyone there: Elena Fischer and Keiko Tanaka.\n"
                 "Yara Ivanova: Everyone at Initech works from 8 to 16. We pay engineers 107,000 dollars a year.", "2023-01-01"),
        doc("2", "Sven Rossi: I run Wonka Sweets, so I am the boss of everyone there: Pablo Hughes.\n"
                 "Sven Rossi: Everyone at Wonka Sweets works from 10 to 18. We pay engineers 92,000 dollars a year.", "2023-01-02"),
        doc("3", "Elena Fischer: I work at Initech as an engineer.\nElena Fischer: My coworkers are Keiko Tanaka and Yara Ivanova.\n"
                 "Elena Fischer: I earn 107,000 dollars a year and I work from 8 to 16.", "2023-01-03"),
        doc("4", "Pablo Hughes: I work at Wonka Sweets as a designer.", "2023-01-04"),
        # multi-hop: only the move is said; boss, coworkers, hours and pay follow from it
        doc("5", "Elena Fischer: Big news! I left Initech and started at Wonka Sweets this week.", "2023-02-01"),
    ]
    ingest(kapp, *world)
    now = texts(kapp)
    for stale in ("Elena Fischer's coworkers are Keiko Tanaka.", "Elena Fischer earns 107,000 dollars a year.",
                  "Elena Fischer works at Initech as an engineer.", "Yara Ivanova is the boss of Elena Fischer.",
                  "Elena Fischer works from 8 to 16."):
        assert stale not in now, stale
    for derived in ("Elena Fischer's boss is Sven Rossi.", "Elena Fischer works with Pablo Hughes.",
                    "Elena Fischer works with Sven Rossi.", "Elena Fischer works from 10 to 18.",
                    "Elena Fischer earns 92,000 dollars a year."):
        assert derived in now, derived
    ops = {o.after: o for o in kapp.store.operations("5") if o.op == "derive"}
    assert "Sven Rossi runs Wonka Sweets" in ops["Elena Fischer's boss is Sven Rossi."].detail
    assert texts(kapp, t("2023-01-15")).count("Elena Fischer's coworkers are Keiko Tanaka.") == 1  # history kept


def test_revert_undoes_the_supersessions_a_document_caused(kapp) -> None:  # noqa: ANN001
    ingest(kapp, doc("a", "Maria Lopez is the chief executive of Northwind Logistics.", "2024-01-15"))
    before = snapshot(kapp.store)
    ingest(kapp, doc("b", "Quinn Park is the chief executive of Northwind Logistics.", "2024-08-16"))
    assert texts(kapp) == ["Quinn Park is the chief executive of Northwind Logistics."]
    kapp.store.revert_document("b")
    assert texts(kapp) == ["Maria Lopez is the chief executive of Northwind Logistics."]
    after = snapshot(kapp.store)
    live = lambda s: sorted(h for h in s["history"] if not h[5])  # noqa: E731
    assert live(after) == live(before)


def test_empty_and_unparseable_text(kapp) -> None:  # noqa: ANN001
    with pytest.raises(InputError):
        ingest(kapp, doc("e", "   ", "2024-01-01"))
    r = ingest(kapp, doc("x", "\x00\x01 ??? ---- 12 34", "2024-01-01"), doc("y", "ok.", "2024-01-02"))
    assert [x.status for x in r] == ["done", "done"]  # nothing to say is not an error
    assert texts(kapp) == []
    assert kapp.store.document_status("x")["status"] == "done"


class MemoryFacts:
    """The `Facts` protocol over a list of held facts: the keys engine needs no store."""

    def __init__(self, held: list[keyed.Held]):
        self.held = held

    def by_subject(self, subject: str, relation: str) -> list[keyed.Held]:
        return [h for h in self.held if h.key.holds and h.key.relation == relation and norm(h.key.subject) == subject]

    def by_object(self, relation: str, obj: str) -> list[keyed.Held]:
        return [h for h in self.held if h.key.holds and h.key.relation == relation and norm(h.key.object) == obj]

    def of_subject(self, subject: str) -> list[keyed.Held]:
        return [h for h in self.held if norm(h.key.subject) == subject]

    ever_of_subject = of_subject


def test_the_keys_engine_is_a_library_over_any_view_of_the_facts() -> None:
    """graphs/keyed's front door: text, title, time, held facts and names in; propositions
    and changes out, with no store, no graph and no model."""
    held = [keyed.Held("f1", "Maria Lopez is the chief executive of Northwind Logistics.",
                       Key("Maria Lopez", "chief executive of", "Northwind Logistics"))]
    props, changes = keyed.revise_document("Quinn Park is the chief executive of Northwind Logistics.", None,
                                           t("2024-08-16"), MemoryFacts(held), NameIndex())
    assert [p.text for p in props] == ["Quinn Park is the chief executive of Northwind Logistics."]
    assert [(c.op, c.fact_id) for c in changes] == [("make_false", "f1"), ("extract", None)]
    assert changes[0].time == t("2024-08-16") and "replaced by: Quinn Park" in changes[0].detail

"""The ERASE ingest graph (graphs/ingest/erase_graph.py) with a fake LLM: every branch, as-of
queries, garbage output. Every test asks for the ERASE path by name (`erase_app`, `erase_cfg`)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from graphs.ingest import chunk_text, ingest_document
from tests.helpers import doc, extracted, fact, snapshot

D1 = doc("d1", "Maria Lopez is CEO of Northwind.", "2020-01-01")
D2 = doc("d2", "John Smith replaced Maria Lopez as CEO of Northwind.", "2022-06-01")


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


def current_texts(store, when=None) -> list[str]:  # noqa: ANN001
    return sorted(f.text for f in store.list_facts(as_of=when))


def test_contradiction_makes_old_fact_false_and_as_of_returns_each(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    r1 = ingest_document(D1, erase_app.ingest_context())
    assert r1.status == "done" and r1.counts["extract"] == 1
    assert [c.step for c in fake_llm.calls] == ["extract"]  # empty store: nothing to classify

    fake_llm.queue(
        extracted(fact("John Smith", "is CEO of", "Northwind")),
        {"1": "make_false"},  # classify: the only candidate is Maria's fact
        {"retire": True},  # rewrite: nothing replaces it
    )
    r2 = ingest_document(D2, erase_app.ingest_context())
    assert r2.status == "done", r2.error
    assert [c.step for c in fake_llm.calls] == ["extract", "extract", "classify", "rewrite"]
    # the candidate reached the classify prompt; the rewrite saw the new fact as still true
    assert "1. Maria Lopez is CEO of Northwind." in fake_llm.calls[2].prompt
    assert "John Smith is CEO of Northwind." in fake_llm.calls[3].prompt

    store = erase_app.store
    maria = store.find_by_norm("Maria Lopez is CEO of Northwind.")
    assert maria.truth_at(t("2021-01-01")) is True
    assert maria.truth_at(t("2022-06-01")) is False and not maria.is_current
    assert [(h.truth, h.doc_id, h.op) for h in maria.history] == [(True, "d1", "extract"), (False, "d2", "make_false")]
    assert current_texts(store, t("2021-03-01")) == ["Maria Lopez is CEO of Northwind."]
    assert current_texts(store, t("2019-01-01")) == []
    assert current_texts(store) == ["John Smith is CEO of Northwind."]
    assert r2.counts == {**r2.counts, "extract": 1, "make_false": 1, "retire": 1}


def test_rewrite_creates_superseding_fact(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Mary Lee", "works with", "Bob Stone")))
    ingest_document(doc("a", "Mary Lee works with Bob Stone at Google.", "2021-01-01"), erase_app.ingest_context())
    fake_llm.queue(
        extracted(fact("Mary Lee", "works at", "Amazon")),
        {"1": "make_false"},
        fact("Mary Lee", "works with", "Quinn Park"),
    )
    r = ingest_document(doc("b", "Mary Lee left Google and joined Amazon, where Quinn Park works.", "2022-02-01"), erase_app.ingest_context())
    assert r.counts["rewrite"] == 1 and r.counts["make_false"] == 1
    new = erase_app.store.find_by_norm("Mary Lee works with Quinn Park")
    assert new.is_current and new.supersedes == erase_app.store.find_by_norm("Mary Lee works with Bob Stone").id
    assert [h.op for h in new.history] == ["rewrite"]
    ops = [o.op for o in erase_app.store.operations("b")]
    assert ops.count("rewrite") == 1 and ops.count("extract") == 1


def test_each_operation_refers_to_the_model_call_it_came_from(erase_app, fake_llm):
    """Model calls are records with ids, not list positions: commit maps each change's call
    id to the stored row, so every operation points at the call that decided it."""
    fake_llm.queue(extracted(fact("Mary Lee", "works with", "Bob Stone")))
    ingest_document(doc("a", "Mary Lee works with Bob Stone at Google.", "2021-01-01"), erase_app.ingest_context())
    fake_llm.queue(
        extracted(fact("Mary Lee", "works at", "Amazon")),
        {"1": "make_false"},
        fact("Mary Lee", "works with", "Quinn Park"),
    )
    ingest_document(doc("b", "Mary Lee left Google and joined Amazon, where Quinn Park works.", "2022-02-01"), erase_app.ingest_context())
    store = erase_app.store
    calls = {c["id"]: c for c in store.model_calls("b")}
    assert sorted(c["step"] for c in calls.values()) == ["classify", "extract", "rewrite"]
    step_of = {o.op: calls[o.model_io_ref]["step"] for o in store.operations("b")}
    assert step_of == {"make_false": "classify", "rewrite": "rewrite", "extract": "extract"}


def test_reinforce_no_change_and_duplicate(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Odense Boldklub", "is based in", "Odense"), fact("Joel King", "plays for", "Odense Boldklub")))
    ingest_document(doc("a", "Joel King plays for Odense Boldklub, based in Odense.", "2021-01-01"), erase_app.ingest_context())
    fake_llm.queue(
        extracted(fact("Joel King", "plays for", "Odense Boldklub")),  # exact duplicate of a current fact
        {"1": "reinforce", "2": "no_change"},
    )
    r = ingest_document(doc("b", "Joel King scored twice for Odense Boldklub.", "2021-05-01"), erase_app.ingest_context())
    assert r.counts["duplicate"] == 1 and r.counts["extract"] == 0
    assert r.counts["reinforce"] + r.counts["no_change"] == 2
    joel = erase_app.store.find_by_norm("Joel King plays for Odense Boldklub")
    assert [h.op for h in joel.history][0] == "extract"
    assert len(joel.history) >= 2 and all(h.truth for h in joel.history)
    assert erase_app.store.count_facts() == {"total": 2, "current": 2, "not_current": 0}


def test_classify_is_batched(erase_app, fake_llm):
    erase_app.cfg.ingest.classify_batch = 3
    fake_llm.queue(extracted(*[fact(f"Person {i}", "lives in", "Paris") for i in range(5)]))
    text = " ".join(f"Person {i} lives in Paris." for i in range(5))
    ingest_document(doc("a", text, "2021-01-01"), erase_app.ingest_context())
    fake_llm.queue(extracted(), {"1": "no_change", "2": "no_change", "3": "no_change"}, {"1": "no_change", "2": "no_change"})
    ingest_document(doc("b", "Paris is in France.", "2021-02-01"), erase_app.ingest_context())
    classify = [c for c in fake_llm.calls if c.step == "classify"]
    assert len(classify) == 2  # 5 candidates in batches of 3
    assert classify[0].schema["required"] == ["1", "2", "3"]


def test_invalid_json_fails_document_without_touching_store(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    before = snapshot(erase_app.store)
    fake_llm.queue("{not json at all")
    r = ingest_document(D2, erase_app.ingest_context())
    assert r.status == "failed" and "not valid JSON" in r.error
    assert r.transient is False  # the same output would fail the same way: not worth a retry
    after = snapshot(erase_app.store)
    assert after["facts"] == before["facts"] and after["history"] == before["history"]
    assert erase_app.store.document_status("d2")["status"] == "failed"
    ops = erase_app.store.operations("d2")
    assert [o.op for o in ops] == ["reject"]
    assert erase_app.store.model_call(ops[0].model_io_ref)["output"] == "{not json at all"
    # retried later with a sane model, it succeeds
    fake_llm.queue(extracted(fact("John Smith", "is CEO of", "Northwind")), {"1": "make_false"}, {"retire": True})
    assert ingest_document(D2, erase_app.ingest_context()).status == "done"
    assert erase_app.store.document_status("d2")["status"] == "done"


def test_wrong_ids_and_empty_strings_are_rejected_and_logged(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    fake_llm.queue(
        extracted(fact("", "is", "x"), fact("she", "runs", "Northwind"), fact("John Smith", "is CEO of", "Northwind")),
        {"1": "reinforce", "7": "make_false", "x": "reinforce"},  # 7 was never shown, x is no id
    )
    r = ingest_document(D2, erase_app.ingest_context())
    assert r.status == "done"
    rejects = [o.detail for o in erase_app.store.operations("d2") if o.op == "reject"]
    assert any("empty part" in d for d in rejects)
    assert any("pronoun" in d for d in rejects)
    assert any("fact number 7 was not shown" in d for d in rejects)
    assert any("unknown fact number 'x'" in d for d in rejects)
    assert erase_app.store.find_by_norm("Maria Lopez is CEO of Northwind").is_current  # fact 7 touched nothing
    assert current_texts(erase_app.store) == ["John Smith is CEO of Northwind.", "Maria Lopez is CEO of Northwind."]


def test_invalid_label_and_malformed_rewrite_fail_cleanly(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    before = snapshot(erase_app.store)
    fake_llm.queue(extracted(), {"1": "make_false"}, {"subject": "", "relation": "", "object": ""})
    r = ingest_document(D2, erase_app.ingest_context())
    assert r.status == "failed" and "rewrite" in r.error
    assert snapshot(erase_app.store)["history"] == before["history"]
    fake_llm.queue(extracted(), ["not", "an", "object"])
    r = ingest_document(D2, erase_app.ingest_context())
    assert r.status == "failed" and "classify" in r.error
    assert erase_app.store.document_status("d2")["attempts"] == 2


def test_truncated_output_keeps_complete_facts(erase_app, fake_llm):
    from graphs.testing import FakeLLM

    cut = '{"facts": [{"subject": "Maria Lopez", "relation": "is CEO of", "object": "Northwind"}, {"subject": "Maria Lo'
    fake_llm.queue(FakeLLM.Truncated(cut))
    r = ingest_document(D1, erase_app.ingest_context())
    assert r.status == "done" and current_texts(erase_app.store) == ["Maria Lopez is CEO of Northwind."]


def test_raw_control_character_in_a_string_is_kept_as_space(erase_app, fake_llm):
    """A tab or newline inside a JSON string (allowed by some servers' grammars) must not
    fail the document; the llama.cpp grammar no longer allows it at all."""
    from agent.llama_decode import _JSON_CHAR, schema_to_gbnf
    from graphs.prompts import extract as extract_prompt

    fake_llm.queue('{"facts": [{"subject": "Maria\tLopez", "relation": "is CEO\nof", "object": "Northwind"}]}')
    r = ingest_document(D1, erase_app.ingest_context())
    assert r.status == "done"
    assert current_texts(erase_app.store) == ["Maria Lopez is CEO of Northwind."]
    assert any(line.startswith(_JSON_CHAR) for line in schema_to_gbnf(extract_prompt.schema(2)).splitlines())


def test_close_truncated_json():
    from graphs.llm import close_truncated_json

    assert close_truncated_json('{"a": [1, 2, {"b": "x') == {"a": [1, 2]}
    assert close_truncated_json(r'{"a": ["x\"y", "z') == {"a": ['x"y']}  # escaped quote inside a string
    assert close_truncated_json('{"a": "unterminated') is None
    assert close_truncated_json('{"facts": []') == {"facts": []}


def test_backend_error_is_recorded(erase_app, fake_llm):
    from agent.errors import BackendError

    fake_llm.queue(BackendError("server down"))
    r = ingest_document(D1, erase_app.ingest_context())
    assert r.status == "failed" and "server down" in r.error
    assert r.transient is True  # the backend may be back later: worth a retry
    assert [o.op for o in erase_app.store.operations("d1")] == ["reject"]


def test_revert_restores_previous_history(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    fake_llm.queue(extracted(fact("John Smith", "is CEO of", "Northwind")), {"1": "make_false"}, {"retire": True})
    ingest_document(D2, erase_app.ingest_context())
    assert current_texts(erase_app.store) == ["John Smith is CEO of Northwind."]
    n = erase_app.store.revert_document("d2")
    erase_app.index.sync(erase_app.store)
    assert n == 2
    assert current_texts(erase_app.store) == ["Maria Lopez is CEO of Northwind."]
    assert erase_app.store.document_status("d2")["status"] == "reverted"
    assert all(o.reverted for o in erase_app.store.operations("d2") if o.op != "revert")
    # the index agrees: John's fact is no longer returned as current
    hits = erase_app.index.query("CEO of Northwind", 5)
    assert {erase_app.store.get_fact(fid).text for fid, _ in hits} == {"Maria Lopez is CEO of Northwind."}


def test_same_document_twice_is_skipped(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    assert ingest_document(D1, erase_app.ingest_context()).status == "skipped"
    assert len(fake_llm.calls) == 1


def test_long_document_is_chunked(erase_app, fake_llm):
    erase_app.cfg.ingest.chunk_tokens = 40
    para = " ".join(["Northwind sells tea to many shops in the north of England."] * 3)
    text = "\n\n".join([para] * 6)
    fake_llm.responder = lambda prompt, schema, step: extracted() if step == "extract" else {}
    r = ingest_document(doc("long", text, "2021-01-01"), erase_app.ingest_context())
    assert r.status == "done"
    n_chunks = len(chunk_text(text, 40, fake_llm.count_tokens))
    assert n_chunks > 3
    assert sum(c.step == "extract" for c in fake_llm.calls) == n_chunks
    for c in fake_llm.calls:
        chunk = c.prompt.rsplit("Text (2021-01-01", 1)[1]
        assert fake_llm.count_tokens(chunk) < 40 + 20


def test_chunk_text_never_exceeds_budget():
    words = lambda s: len(s.split())  # noqa: E731
    text = "word " * 1000 + "\n\nshort para.\n\n" + "A sentence here. " * 200
    for ch in chunk_text(text, 50, words):
        assert words(ch) <= 50


def test_explicit_negation_overrides_a_wrong_reinforce(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is the CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    fake_llm.queue(
        extracted(fact("John Smith", "is the CEO of", "Northwind"), fact("Maria Lopez", "is no longer CEO of", "Northwind")),
        {"1": "reinforce"},  # wrong: the document itself says she no longer is
        {"retire": True},
    )
    r = ingest_document(D2, erase_app.ingest_context())
    assert r.counts["make_false"] == 1
    assert not erase_app.store.find_by_norm("Maria Lopez is the CEO of Northwind").is_current
    assert any("overridden" in (o.detail or "") for o in erase_app.store.operations("d2"))


def test_make_false_needs_a_link_to_the_document(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind"), fact("Oslo", "is the capital of", "Norway")))
    ingest_document(doc("a", "Maria Lopez is CEO of Northwind. Oslo is the capital of Norway.", "2020-01-01"), erase_app.ingest_context())
    fake_llm.queue(extracted(fact("John Smith", "is CEO of", "Northwind")), {"1": "make_false", "2": "make_false"}, {"retire": True})
    r = ingest_document(doc("b", "John Smith is now CEO of Northwind.", "2022-01-01"), erase_app.ingest_context())
    assert r.counts["make_false"] == 1  # Maria's fact (shares Northwind); Oslo's is unrelated
    assert erase_app.store.find_by_norm("Oslo is the capital of Norway").is_current
    assert any("shares no entity" in (o.detail or "") for o in erase_app.store.operations("b"))


def test_negation_rule():
    from graphs.ingest.guards import negates

    assert negates(("A", "is no longer the CEO of", "B"), ("A", "is CEO of", "B"))
    assert negates(("A", "formerly worked at", "B"), ("a", "worked at", "b"))
    assert not negates(("A", "is the CEO of", "B"), ("A", "is CEO of", "B"))
    assert not negates(("A", "is no longer CEO of", "C"), ("A", "is CEO of", "B"))
    assert not negates(("A", "is not CEO of", "B"), ("A", "is not CEO of", "B"))


@pytest.mark.parametrize("bad, why", [
    # entities copied from the few-shot examples, not from the text
    (fact("Maria Lopez", "is a", "midfielder"), "not grounded"),
    # out of facts, the small model repeats a name: "Northwind is a Northwind"
    (fact("Northwind", "is a", "the Northwind"), "subject and object are the same"),
])
def test_bad_extractions_are_rejected(erase_app, fake_llm, bad, why):  # noqa: ANN001
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind"), bad))
    r = ingest_document(D1, erase_app.ingest_context())
    assert current_texts(erase_app.store) == ["Maria Lopez is CEO of Northwind."]
    assert r.counts["reject"] == 1
    assert why in [o.detail for o in erase_app.store.operations("d1") if o.op == "reject"][0]


def test_model_calls_are_logged_with_the_operations(erase_app, fake_llm):
    fake_llm.queue(extracted(fact("Maria Lopez", "is CEO of", "Northwind")))
    ingest_document(D1, erase_app.ingest_context())
    calls = erase_app.store.model_calls("d1")
    assert len(calls) == 1 and calls[0]["step"] == "extract"
    assert json.loads(calls[0]["output"]) == extracted(fact("Maria Lopez", "is CEO of", "Northwind"))
    (op,) = erase_app.store.operations("d1")
    assert op.model_io_ref == calls[0]["id"]


@pytest.mark.parametrize("route", ["same-entity", "second-hop"])
def test_retrieval_routes_find_related_facts(erase_app, fake_llm, route):
    """A fact that shares no words with the chunk is still a candidate via entities."""
    erase_app.cfg.ingest.top_k_doc = 0
    erase_app.cfg.ingest.top_k_per_fact = 0
    fake_llm.queue(extracted(fact("Olivia Chen", "works at", "Initech"), fact("Initech", "opens", "9 to 17")))
    ingest_document(doc("a", "Olivia Chen works at Initech, which opens 9 to 17.", "2021-01-01"), erase_app.ingest_context())
    new = fact("Olivia Chen", "works at", "Globex") if route == "same-entity" else fact("Globex", "hired", "Olivia Chen")
    fake_llm.queue(extracted(new), {"1": "no_change", "2": "no_change"})
    erase_app.cfg.ingest.same_subject = True
    erase_app.cfg.ingest.second_hop = route == "second-hop"
    ingest_document(doc("b", "Olivia Chen changed jobs: Globex hired her.", "2022-01-01"), erase_app.ingest_context())
    prompt = [c for c in fake_llm.calls if c.step == "classify"][0].prompt
    assert "Olivia Chen works at Initech." in prompt
    if route == "second-hop":  # Initech's hours are reached through Olivia's job
        assert "Initech opens 9 to 17." in prompt


# ----------------------------------------------------------------------------- extract_unit: sentence
CHAT = doc(
    "chat1",
    "Pablo Hughes: Hi Elena, how is work these days?\n"
    "Elena Fischer: I work at Initech as an engineer.\n"
    "Elena Fischer: My boss is Yara Ivanova. I earn 107,000 dollars a year.",
    "2023-01-03",
)


def test_sentences_resolve_speakers_and_drop_questions():
    from graphs.sentences import resolve_speaker, sentences

    assert sentences(CHAT.text) == [
        "Elena Fischer work at Initech as an engineer.",
        "Elena Fischer's boss is Yara Ivanova.",
        "Elena Fischer earn 107,000 dollars a year.",
    ]
    # chat-log connector lines carry a stamp; continuation lines belong to the speaker
    assert sentences("[2024-01-02 10:00] Bob Stone: I'm moving to Oslo.\nmy cat comes with me.") == [
        "Bob Stone is moving to Oslo. Bob Stone's cat comes with Bob Stone."
    ]
    # hard-wrapped prose is joined before it is cut into sentences; no speaker, no change
    assert sentences("Acme said its chief, Jane\nDoe, will step down. I think so.") == [
        "Acme said its chief, Jane Doe, will step down.", "I think so."
    ]
    assert resolve_speaker("No label here: I stay.") == "No label here: I stay."  # lower case: not a name


def test_sentence_mode_makes_one_call_per_sentence(erase_cfg, fake_llm):
    from agent.app import App
    from stores.testing import HashEmbedder

    erase_cfg.ingest.extract_unit = "sentence"
    app = App(erase_cfg, llm=fake_llm, embedder=HashEmbedder())
    fake_llm.queue(
        extracted(fact("Elena Fischer", "works at", "Initech")),
        extracted(fact("Elena Fischer", "has the boss", "Yara Ivanova"), fact("Elena Fischer", "has the boss", "Kim Park")),
        extracted(fact("Elena Fischer", "earns", "107,000 dollars a year"), fact("Elena Fischer", "works at", "Initech")),
    )
    r = ingest_document(CHAT, app.ingest_context())
    assert r.status == "done"
    prompts = [c.prompt for c in fake_llm.calls if c.step == "extract"]
    assert len(prompts) == 3 and all(p.rstrip().endswith("Facts:") for p in prompts)
    assert "Text: Elena Fischer's boss is Yara Ivanova.\nFacts:" in prompts[1]
    assert "how is work" not in "".join(prompts)  # the question was never sent
    assert sorted(current_texts(app.store)) == [
        "Elena Fischer earns 107,000 dollars a year.", "Elena Fischer has the boss Yara Ivanova.", "Elena Fischer works at Initech.",
    ]
    # grounding is checked against each fact's own sentence (Initech is not in the third)
    rej = sorted(o.detail for o in app.store.operations("chat1") if o.op == "reject")
    assert len(rej) == 2 and "Kim Park" in rej[0] and "works at Initech" in rej[1]
    assert len([c for c in app.store.model_calls("chat1") if c["step"] == "extract"]) == 3
    app.close()

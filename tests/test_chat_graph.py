"""The chat graph with a fake LLM: which facts reach the prompt for now / as-of / history
questions, citations, the nothing-known path, answer modes and per-session memory."""
from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timezone

import pytest

from agent.views import citation_lines
from graphs.chat import ChatAgent, ChatError, Turn, is_follow_up, named_terms
from graphs.prompts import chat as chat_prompt
from graphs.time_intent import parse_when
from stores.types import Document

MARIA = "Maria Lopez is CEO of Northwind."
JOHN = "John Smith is CEO of Northwind."
OSLO = "Northwind is based in Oslo."
JOEL = "Joel King plays for Odense Boldklub."


def t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


NOW = t("2024-01-01")


def seed_northwind(app) -> dict[str, str]:  # noqa: ANN001
    """Maria Lopez was CEO of Northwind from 2020-01-01 until John Smith replaced her on
    2022-06-01 (a rewrite); Northwind is in Oslo; plus an unrelated football fact.
    Written straight to the store (as ingest would), then indexed."""
    st = app.store
    docs = [
        ("d1", "2020-01-01", "Northwind names Maria Lopez CEO"),
        ("d2", "2022-06-01", "John Smith replaces Maria Lopez at Northwind"),
        ("d3", "2019-03-01", "Northwind moves to Oslo"),
        ("d4", "2021-01-01", "Joel King signs for OB"),
        ("d5", "2021-03-01", "Lopez reaffirmed as Northwind CEO"),
    ]
    for did, day, title in docs:
        st.put_document(Document(id=did, text=title, published_at=t(day), title=title, url=f"https://news.example/{did}", source="test"), status="done")
    ids: dict[str, str] = {}
    with st.transaction() as c:
        ids["maria"] = m = st.insert_fact(c, MARIA, "Maria Lopez", "is CEO of", "Northwind")
        st.add_history(c, m, t("2020-01-01"), True, "d1", "extract", None)
        st.add_history(c, m, t("2021-03-01"), True, "d5", "reinforce", None)
        st.add_history(c, m, t("2022-06-01"), False, "d2", "make_false", None)
        ids["john"] = j = st.insert_fact(c, JOHN, "John Smith", "is CEO of", "Northwind", supersedes=m)
        st.add_history(c, j, t("2022-06-01"), True, "d2", "rewrite", None)
        ids["oslo"] = o = st.insert_fact(c, OSLO, "Northwind", "is based in", "Oslo")
        st.add_history(c, o, t("2019-03-01"), True, "d3", "extract", None)
        ids["joel"] = k = st.insert_fact(c, JOEL, "Joel King", "plays for", "Odense Boldklub")
        st.add_history(c, k, t("2021-01-01"), True, "d4", "extract", None)
    app.index.sync(app.store)
    return ids


def facts_in(prompt: str) -> dict[str, int]:
    """Fact text -> its number, from the last facts block of a chat prompt."""
    block = prompt.rsplit("\nFacts (", 1)[1]
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"^\[(\d+)\] (.+?\.)(?: \(|$)", block, re.M)}


def answer_citing(*texts: str):  # noqa: ANN201
    """A responder that answers by citing the given facts by their number in the prompt."""
    def respond(prompt: str, schema, step: str) -> str:  # noqa: ANN001
        nums = facts_in(prompt)
        return " ".join(f"{x} [{nums[x]}]" for x in texts if x in nums) or "I don't know."
    return respond


@pytest.fixture
def agent(app):  # noqa: ANN001
    seed_northwind(app)
    return ChatAgent(app, app.cfg.chat, now=lambda: NOW)


@pytest.fixture
def model_agent(app):  # noqa: ANN001
    """The agent with the store's structure out of the way (chat.lookup off): the model answers."""
    seed_northwind(app)
    return ChatAgent(app, app.cfg.chat.model_copy(update={"lookup": False}), now=lambda: NOW)


def last_prompt(fake_llm) -> str:  # noqa: ANN001
    return fake_llm.calls[-1].prompt


def test_now_question_sees_current_facts_and_cites_their_source(agent, fake_llm):
    fake_llm.responder = answer_citing(JOHN)
    r = agent.ask("Who is the CEO of Northwind?")
    prompt = last_prompt(fake_llm)
    assert [c.step for c in fake_llm.calls] == ["chat"]
    shown = facts_in(prompt)
    assert JOHN in shown and OSLO in shown
    assert MARIA not in prompt  # stale: never in a "now" prompt
    assert "Facts (true now):" in prompt and f"[{shown[JOHN]}] {JOHN} (since 2022-06-01)" in prompt
    assert r.intent.mode == "now" and r.known
    assert [c.text for c in r.citations] == [JOHN]
    (src,) = r.citations[0].sources
    assert (src.doc_id, src.title, src.url, src.date) == ("d2", "John Smith replaces Maria Lopez at Northwind", "https://news.example/d2", "2022-06-01")
    assert r.answer == f"{JOHN} [{shown[JOHN]}]"
    assert citation_lines(r.citations) == [
        f'[{shown[JOHN]}] {JOHN} (since 2022-06-01) — "John Smith replaces Maria Lopez at Northwind" <https://news.example/d2>, 2022-06-01'
    ]


@pytest.mark.parametrize("question", [
    "Who is the CEO of Northwind?",
    "Is Maria Lopez the CEO of Northwind?",  # names the stale fact outright
    "Maria Lopez Northwind CEO",
    "What does Maria Lopez do?",
    "Who runs Northwind now?",
])
def test_stale_facts_never_reach_a_now_prompt(agent, fake_llm, question):
    fake_llm.responder = answer_citing(JOHN)
    r = agent.ask(question)
    for call in fake_llm.calls:
        assert MARIA not in call.prompt
    assert all(u.true_now for u in r.facts)


@pytest.mark.parametrize("question,when", [
    ("Who was the CEO of Northwind in March 2021?", "true in March 2021"),
    ("Who was CEO of Northwind as of 2021-05-01?", "true as of 2021-05-01"),
    ("Who was the CEO of Northwind on 1 June 2021?", "true on 2021-06-01"),
])
def test_as_of_question_sees_facts_true_then(agent, fake_llm, question, when):
    fake_llm.responder = answer_citing(MARIA)
    r = agent.ask(question)
    prompt = last_prompt(fake_llm)
    assert f"Facts ({when}):" in prompt
    assert MARIA in facts_in(prompt) and JOHN not in prompt  # John became CEO later
    assert r.intent.mode == "as_of"
    (cited,) = r.citations
    assert cited.text == MARIA and cited.note == "since 2020-01-01"
    # sources: the document that made it true, and the reinforcement before the asked time
    assert [s.doc_id for s in cited.sources] == ["d1", "d5"]


def test_as_of_window_spanning_a_change_sees_both_versions(agent, fake_llm):
    fake_llm.responder = answer_citing(MARIA, JOHN)
    r = agent.ask("Who was the CEO of Northwind in 2022?")
    shown = facts_in(last_prompt(fake_llm))
    assert MARIA in shown and JOHN in shown
    notes = {u.text: u.note for u in r.facts}
    assert notes[MARIA] == "from 2020-01-01 until 2022-06-01" and notes[JOHN] == "since 2022-06-01"


def test_default_time_applies_unless_the_question_names_one(agent, fake_llm):
    fake_llm.responder = answer_citing(MARIA, JOHN)
    agent.ask("Who is the CEO of Northwind?", default_time=parse_when("2021-05-01", NOW), session="s")
    assert MARIA in last_prompt(fake_llm) and JOHN not in last_prompt(fake_llm)
    agent.ask("Who is the CEO of Northwind in 2023?", default_time=parse_when("2021-05-01", NOW))
    assert JOHN in last_prompt(fake_llm) and MARIA not in last_prompt(fake_llm)
    # the session default is dropped (/asof now): a follow-up does not inherit it
    agent.ask("And who is its CEO?", session="s")
    shown = facts_in(last_prompt(fake_llm))
    assert JOHN in shown and MARIA not in shown and "Facts (true now):" in last_prompt(fake_llm)


def test_history_question_sees_stale_facts_with_their_history(agent, fake_llm):
    fake_llm.responder = answer_citing(MARIA, JOHN)
    r = agent.ask("What changed about the CEO of Northwind?")
    prompt = last_prompt(fake_llm)
    assert "Facts (with their history):" in prompt
    shown = facts_in(prompt)
    assert f"[{shown[MARIA]}] {MARIA} (true from 2020-01-01; false from 2022-06-01)" in prompt
    assert f"[{shown[JOHN]}] {JOHN} (true from 2022-06-01)" in prompt
    assert shown[MARIA] < shown[JOHN]  # oldest first
    assert r.intent.mode == "history"
    assert [c.text for c in r.citations] == [MARIA, JOHN]
    maria = r.citations[0]
    assert not maria.true_now
    assert [(s.doc_id, s.truth, s.op) for s in maria.sources] == [("d1", True, "extract"), ("d5", True, "reinforce"), ("d2", False, "make_false")]
    assert "[no longer true]" in citation_lines([maria])[0]


def test_history_question_finds_superseded_versions_by_subject(agent, fake_llm, app):
    """'Who was CEO before John Smith?' matches John's fact; Maria's comes with it."""
    app.cfg.chat.top_k = 1
    fake_llm.responder = answer_citing(MARIA)
    agent.ask("Who was CEO before John Smith?")
    shown = facts_in(last_prompt(fake_llm))
    assert JOHN in shown and MARIA in shown


def test_citations_match_the_facts_used(agent, fake_llm):
    def respond(prompt: str, schema, step: str) -> str:  # noqa: ANN001
        n = facts_in(prompt)
        # right numbers; numbers naming no fact ([7], [9]); a real fact's number closing
        # text that has nothing to do with it (small models miscount)
        return f"It is John Smith [{n[JOHN]}] [9], in Oslo [{n[OSLO]}, 7]; Joel King [{n[OSLO]}]."

    fake_llm.responder = respond
    r = agent.ask("Who is the CEO of Northwind and where is it based?")
    by_text = {u.text: u.n for u in r.facts}
    assert set(by_text) == {JOHN, OSLO}  # the unrelated football fact stays out of the prompt
    j, o = by_text[JOHN], by_text[OSLO]
    assert r.answer == f"It is John Smith [{j}], in Oslo [{o}]; Joel King."
    assert [c.text for c in r.citations] == [JOHN, OSLO]
    prompt = last_prompt(fake_llm)
    for c in r.citations:  # each citation is a fact the model was shown, under its number
        assert f"[{c.n}] {c.text}" in prompt


def test_a_wrong_citation_number_is_pointed_at_the_supporting_fact(agent, fake_llm):
    """Small models copy the example's numbers or miscount: the marker is re-pointed at
    the fact that shares the most words with the text it closes."""
    def swapped(prompt: str, schema, step: str) -> str:  # noqa: ANN001
        n = facts_in(prompt)
        return f"John Smith [{n[OSLO]}], based in Oslo [{n[JOHN]}]; it is big [{n[JOHN]}]."

    fake_llm.responder = swapped
    r = agent.ask("Who is the CEO of Northwind and where is it based?")
    n = {u.text: u.n for u in r.facts}
    assert r.answer == f"John Smith [{n[JOHN]}], based in Oslo [{n[OSLO]}]; it is big."
    assert [c.text for c in r.citations] == [JOHN, OSLO]


def test_unrelated_name_means_nothing_known(agent, fake_llm):
    """Close in meaning to Northwind's CEO, but nothing is known about Acme."""
    r = agent.ask("Who is the CEO of Acme Corp?")
    assert not r.known and fake_llm.calls == []
    fake_llm.responder = answer_citing(JOHN)
    assert agent.ask("Who is the CEO of northwind?").known  # case does not matter
    assert named_terms("Is Maria Lopez the CEO of Northwind in March? And Bob?") == {"maria", "lopez", "northwind", "bob"}


def test_answer_without_markers_is_attributed_by_overlap(agent, fake_llm):
    fake_llm.queue("John Smith is the CEO of Northwind.")
    r = agent.ask("Who is the CEO of Northwind?")
    assert [c.text for c in r.citations] == [JOHN]
    fake_llm.queue("I don't know.")
    assert agent.ask("Who is the CEO of Northwind?").citations == []


def test_nothing_known_says_so_without_calling_the_model(agent, fake_llm):
    r = agent.ask("What is the boiling point of liquid helium?")
    assert fake_llm.calls == []
    assert not r.known and r.citations == [] and r.answer.startswith("I don't know")
    tokens: list[str] = []
    r = agent.ask("What colour are flamingos?", on_token=tokens.append)
    assert fake_llm.calls == [] and "".join(tokens) == r.answer


def test_nothing_known_in_an_empty_store(app, fake_llm):
    r = ChatAgent(app, app.cfg.chat).ask("Who is the CEO of Northwind?")
    assert fake_llm.calls == [] and not r.known and r.facts == []


def test_streaming_sends_tokens_and_returns_the_same_answer(agent, fake_llm):
    fake_llm.responder = answer_citing(JOHN)
    tokens: list[str] = []
    r = agent.ask("Who is the CEO of Northwind?", on_token=tokens.append)
    assert len(tokens) > 3
    assert "".join(tokens).strip() == r.answer


def test_streaming_stops_when_asked(agent, fake_llm):
    fake_llm.queue("one two three four five six seven eight")
    tokens: list[str] = []
    polls = itertools.count()  # polled before each token, from the generating thread
    r = agent.ask("Who is the CEO of Northwind?", on_token=tokens.append, should_stop=lambda: next(polls) >= 3)
    assert tokens == ["one ", "two ", "three "]
    assert r.answer == "one two three"


def test_a_failing_consumer_stops_the_generation(agent, fake_llm, monkeypatch):
    """Ctrl-C in the REPL (or any error while tokens are handed out) must not wait for
    the rest of the answer: the generating thread stops at its next token."""
    produced = []

    def slow_stream(prompt, *, max_tokens=256, stop=None, route=None):  # noqa: ANN001, ANN202
        for i in range(200):
            time.sleep(0.01)
            produced.append(i)
            yield f"w{i} "

    monkeypatch.setattr(fake_llm, "stream", slow_stream)

    def on_token(tok: str) -> None:
        if tok.startswith("w2"):
            raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        agent.ask("Who is the CEO of Northwind?", on_token=on_token)
    assert time.monotonic() - t0 < 1.0 and len(produced) < 50


def test_multiple_choice_by_likelihood_sees_the_as_of_facts(model_agent, fake_llm):
    agent = model_agent
    def scorer(prompt: str, choices: list[str]) -> list[float]:
        return [1.0 if f"{c.strip()} is CEO" in prompt else 0.0 for c in choices]

    fake_llm.choice_scorer = scorer
    r = agent.ask("Who was the CEO of Northwind in 2021?", mode="choice", choices=["John Smith", "Maria Lopez"])
    assert r.answer == "Maria Lopez" and r.chosen == ["Maria Lopez"]
    assert [c.text for c in r.citations] == [MARIA]
    scored = [c for c in fake_llm.calls if c.step == "answer"]
    assert MARIA in scored[0].prompt and JOHN not in scored[0].prompt
    assert "(true on 2021-12-31)" in scored[0].prompt
    r = agent.ask("Who is the CEO of Northwind?", mode="choice", choices=["John Smith", "Maria Lopez"])
    assert r.answer == "John Smith"


def test_list_answers_choose_a_set(model_agent, fake_llm):
    agent = model_agent
    def scorer(prompt: str, choices: list[str]) -> list[float]:
        m = re.search(r'Is "(.+?)" one of the answers', prompt)
        if m is None:
            return [0.0] * len(choices)
        lines = prompt.rsplit("Facts", 1)[1].split("Question:")[0].splitlines()
        yes = any(m.group(1) in ln and "Northwind" in ln for ln in lines)
        return [1.0, 0.0] if yes else [0.0, 1.0]

    fake_llm.choice_scorer = scorer
    r = agent.ask("Which of these are facts about Northwind?", mode="set", choices=["Oslo", "John Smith", "Odense"])
    assert r.chosen == ["Oslo", "John Smith"]
    assert {c.text for c in r.citations} == {OSLO, JOHN}


def test_choice_mode_needs_choices(agent):
    with pytest.raises(ChatError):
        agent.ask("Who is the CEO of Northwind?", mode="choice")


def test_follow_up_uses_the_previous_question_per_session(agent, fake_llm):
    fake_llm.responder = answer_citing(JOHN, OSLO)
    agent.ask("Who is the CEO of Northwind?", session="a")
    r = agent.ask("And where is it based?", session="a")
    prompt = last_prompt(fake_llm)
    assert "Previous question: Who is the CEO of Northwind?" in prompt
    assert f"Previous answer: {JOHN}" in prompt
    assert OSLO in facts_in(prompt)
    assert [tn.question for tn in agent.turns("a")] == ["Who is the CEO of Northwind?", "And where is it based?"]
    assert r.known

    # another session has no memory of session a: the same follow-up alone knows nothing
    n = len(fake_llm.calls)
    r = agent.ask("And in March 2021?", session="b")
    assert len(fake_llm.calls) == n and not r.known
    assert agent.turns("b")[0].question == "And in March 2021?"


def test_follow_up_with_a_time_keeps_the_topic(agent, fake_llm):
    fake_llm.responder = answer_citing(JOHN, MARIA)
    agent.ask("Who is the CEO of Northwind?", session="s")
    r = agent.ask("And in March 2021?", session="s")
    prompt = last_prompt(fake_llm)
    assert "Facts (true in March 2021):" in prompt
    assert MARIA in facts_in(prompt) and JOHN not in facts_in(prompt)
    assert [c.text for c in r.citations] == [MARIA]
    # a follow-up without a time inherits the previous question's
    agent.ask("Where was it based?", session="s")
    assert "Facts (true in March 2021):" in last_prompt(fake_llm)


def test_forget_clears_a_session(agent, fake_llm):
    fake_llm.responder = answer_citing(JOHN)
    agent.ask("Who is the CEO of Northwind?", session="s")
    agent.forget("s")
    assert agent.turns("s") == []


def test_history_passed_in_works_like_memory(agent, fake_llm):
    fake_llm.responder = answer_citing(OSLO)
    agent.ask("Where is it based?", history=[Turn("Who is the CEO of Northwind?", "John Smith [1].")])
    prompt = last_prompt(fake_llm)
    assert "Previous question: Who is the CEO of Northwind?" in prompt and OSLO in facts_in(prompt)


def test_is_follow_up():
    assert is_follow_up("And in 2019?") and is_follow_up("Where is it based?") and is_follow_up("what about her?")
    assert not is_follow_up("Who is the CEO of Northwind?")


def test_questions_are_checked(agent):
    with pytest.raises(ChatError):
        agent.ask("   ")
    with pytest.raises(ChatError):
        agent.ask("x" * 5000)


def test_prompt_parse_keeps_the_first_line():
    assert chat_prompt.parse(" Bob [1][3].\nQuestion: next") == "Bob [1][3]."
    assert chat_prompt.parse("\n") == chat_prompt.DONT_KNOW

"""Closed-book chat (retrieval off): the model answers from its weights alone, asked
with the nightly trainer's own prompt, routed on the question; nothing is retrieved
or cited. Through the graph, the REPL and the HTTP API, with a FakeLLM."""
from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.chat import using_app
from agent.serve import start_server
from graphs.chat import ChatAgent
from graphs.prompts import closed_book
from tests.test_chat_graph import JOHN, MARIA, NOW, OSLO, answer_citing, seed_northwind
from trainer.prompts import answer as trainer_answer

QUESTIONS = ["Who is the CEO of Northwind?", "What is 2+2?", "Where is Kō Ōtani's café based?", ""]


@pytest.mark.parametrize("q", QUESTIONS)
def test_the_prompt_is_the_trainers_character_for_character(q):
    assert closed_book.build(q) == trainer_answer.build(q)
    assert tuple(closed_book.STOP) == trainer_answer.STOP


@pytest.fixture
def agent(app, fake_llm):  # noqa: ANN001
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)  # the retrieval path's answer
    return ChatAgent(app, app.cfg.chat, now=lambda: NOW)


def test_retrieval_off_asks_the_weights_with_the_trainer_prompt(agent, fake_llm):
    fake_llm.queue(" Hanna Berg\nQuestion: and more")
    r = agent.ask("Who is the CEO of Northwind?", retrieval=False)
    (call,) = fake_llm.calls
    assert call.prompt == trainer_answer.build("Who is the CEO of Northwind?")
    assert call.route == "Who is the CEO of Northwind?"  # the adapter's router decides on the question
    assert call.step == "closed_book"
    assert JOHN not in call.prompt and OSLO not in call.prompt  # no fact reached it
    assert r.answer == "Hanna Berg" and r.citations == [] and r.facts == []


def test_config_default_and_per_request_override(app, fake_llm):
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)
    cfg = app.cfg.chat.model_copy(update={"retrieval": False})
    agent = ChatAgent(app, cfg, now=lambda: NOW)
    fake_llm.queue("Hanna Berg")
    assert agent.ask("Who is the CEO of Northwind?").answer == "Hanna Berg"
    r = agent.ask("Who is the CEO of Northwind?", retrieval=True)  # the request wins
    assert r.answer.startswith(JOHN) and [c.text for c in r.citations] == [JOHN]


def test_a_closed_book_turn_inherits_no_facts_from_the_last_turn(agent, fake_llm):
    r1 = agent.ask("Who is the CEO of Northwind?", session="s")
    assert r1.citations
    fake_llm.queue("I am not sure")
    r2 = agent.ask("And where is it based?", session="s", retrieval=False)
    assert r2.facts == [] and r2.citations == []
    assert OSLO not in fake_llm.calls[-1].prompt


def test_closed_book_choice_is_scored_without_facts(agent, fake_llm):
    seen = []

    def scorer(prompt, choices):  # noqa: ANN001
        seen.append(prompt)
        return [1.0 if "Hanna" in c else 0.0 for c in choices]

    fake_llm.choice_scorer = scorer
    r = agent.ask("Who is the CEO of Northwind?", mode="choice", choices=["John Smith", "Hanna Berg"], retrieval=False)
    assert r.answer == "Hanna Berg"  # the facts say John Smith: they were not read
    assert seen and all(JOHN not in p and MARIA not in p for p in seen)


def test_repl_retrieval_command_and_option(app, fake_llm):
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)

    def run(*lines: str, args: tuple[str, ...] = ()) -> str:
        with using_app(app):
            out = CliRunner().invoke(cli, ["chat", *args], input="".join(ln + "\n" for ln in lines))
        assert out.exit_code == 0, out.output + repr(out.exception)
        return out.output

    fake_llm.queue("Hanna Berg")
    out = run("/retrieval off", "Who is the CEO of Northwind?", "/retrieval on", "Who is the CEO of Northwind?", "/retrieval maybe", "/quit")
    assert "retrieval off: closed book" in out and "retrieval on: answers from the facts" in out
    assert "knowd> Hanna Berg" in out and "(closed book: answered by the base model (no adapter is live))" in out
    assert f"knowd> {JOHN} [1]" in out and "usage: /retrieval on|off" in out
    fake_llm.queue("Hanna Berg")
    out = run("Who is the CEO of Northwind?", "/quit", args=("--closed-book",))
    assert "knowd> Hanna Berg" in out and JOHN not in out


def test_http_retrieval_field(app, fake_llm):
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)
    h = start_server(app, "127.0.0.1", 0)
    try:
        msgs = [{"role": "user", "content": "Who is the CEO of Northwind?"}]
        fake_llm.queue("Hanna Berg")
        r = httpx.post(h.url + "/v1/chat/completions", json={"model": "knowd", "messages": msgs, "retrieval": False}, timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Hanna Berg"
        assert fake_llm.calls[-1].prompt == trainer_answer.build("Who is the CEO of Northwind?")
        bad = httpx.post(h.url + "/v1/chat/completions", json={"model": "knowd", "messages": msgs, "retrieval": "no"}, timeout=20)
        assert bad.status_code == 400 and "retrieval" in bad.text
        ok = httpx.post(h.url + "/v1/chat/completions", json={"model": "knowd", "messages": msgs}, timeout=20)
        assert ok.json()["choices"][0]["message"]["content"].startswith(JOHN)
    finally:
        h.stop()

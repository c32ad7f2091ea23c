"""`knowd chat` driven through click's CliRunner with a FakeLLM (injected with using_app)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.chat import using_app
from tests.test_chat_graph import JOEL, JOHN, MARIA, OSLO, answer_citing, facts_in, seed_northwind


@pytest.fixture
def run(app, fake_llm):  # noqa: ANN001
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN, MARIA, OSLO)

    def go(*lines: str, args: tuple[str, ...] = ()) -> str:
        with using_app(app):
            r = CliRunner().invoke(cli, ["chat", *args], input="".join(ln + "\n" for ln in lines))
        assert r.exit_code == 0, r.output + repr(r.exception)
        return r.output

    return go


def test_answers_stream_with_cited_facts_under_them(run, fake_llm):
    out = run("Who is the CEO of Northwind?", "/quit")
    assert f"knowd> {JOHN} [1]" in out
    assert f'  [1] {JOHN} (since 2022-06-01) — "John Smith replaces Maria Lopez at Northwind" <https://news.example/d2>, 2022-06-01' in out
    assert MARIA not in out
    assert [c.step for c in fake_llm.calls] == ["stream"]  # one model call, streamed


def test_asof_command_changes_the_time(run, fake_llm):
    out = run("/asof 2021-05-01", "Who is the CEO of Northwind?", "/asof now", "Who is the CEO of Northwind?", "/quit")
    assert "answering as of 2021-05-01" in out and "answering as of now" in out
    first, second = [c.prompt for c in fake_llm.calls]
    assert MARIA in first and JOHN not in first
    assert JOHN in second and MARIA not in second
    assert "(as of 2021-05-01)" in out


def test_asof_option_and_bad_times(run):
    out = run("/asof someday", "/quit", args=("--as-of", "March 2021"))
    assert "not a date or time" in out


def test_facts_command(run):
    out = run("/facts", "/facts CEO", "/asof 2021-05-01", "/facts", "/quit")
    now_part, asof_part = out.split("answering as of 2021-05-01")
    assert JOHN in now_part and OSLO in now_part and JOEL in now_part and MARIA not in now_part
    assert MARIA in asof_part and JOHN not in asof_part


def test_history_command(run, fake_llm):
    out = run("/history CEO of Northwind", "/history", "/quit")
    assert MARIA in out and JOHN in out
    assert '2022-06-01  false  make_false "John Smith replaces Maria Lopez at Northwind" <https://news.example/d2>' in out
    assert "2020-01-01  true   extract    \"Northwind names Maria Lopez CEO\"" in out
    assert "usage: /history QUERY" in out
    assert fake_llm.calls == []  # listing needs no model


def test_follow_up_in_the_repl_and_forget(run, fake_llm):
    run("Who is the CEO of Northwind?", "Where is it based?", "/forget", "Where is it based?", "/quit")
    assert "Previous question: Who is the CEO of Northwind?" in fake_llm.calls[1].prompt
    assert all("Previous question" not in c.prompt for c in fake_llm.calls[2:])


def test_nothing_known_help_unknown_command_and_eof(run, fake_llm):
    out = run("/help", "/frobnicate", "What is the boiling point of helium?")  # no /quit: EOF ends it
    assert "/asof TIME" in out and "unknown command /frobnicate" in out
    assert "knowd> I don't know" in out and fake_llm.calls == []


def test_errors_do_not_end_the_session(run, fake_llm):
    out = run("x" * 5000, "Who is the CEO of Northwind?", "/quit")
    assert "error: question is over" in out and JOHN in out


def test_corrected_citations_are_shown(run, fake_llm):
    def swapped(prompt: str, schema, step: str) -> str:  # noqa: ANN001
        n = facts_in(prompt)
        return f"John Smith [{n[OSLO]}], based in Oslo [{n[JOHN]}]."

    fake_llm.responder = swapped
    out = run("Who is the CEO of Northwind and where is it based?", "/quit")
    n = facts_in(fake_llm.calls[0].prompt)
    assert f"(citations checked: John Smith [{n[JOHN]}], based in Oslo [{n[OSLO]}].)" in out

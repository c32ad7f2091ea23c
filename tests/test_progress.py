"""Progress bars: `knowd ingest` of several documents and `knowd reindex` draw a tqdm bar on
stderr when it is a terminal, and print exactly what they printed before when it is not."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.test_chat_graph import seed_northwind
from tests.test_cli import run
from tests.test_documents_api import extract_hires, hire


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch) -> Terminal:  # noqa: ANN001
    term = Terminal()
    monkeypatch.setattr("agent.cli.progress.bar_stream", lambda: term)
    return term


def jsonl(tmp_path: Path, n: int) -> Path:
    p = tmp_path / "hires.jsonl"
    p.write_text("".join(json.dumps(hire(i)) + "\n" for i in range(n)))
    return p


def test_ingest_of_several_documents_draws_a_bar_on_a_terminal(app, fake_llm, tmp_path, terminal):
    fake_llm.responder = extract_hires
    r = run(app, "ingest", str(jsonl(tmp_path, 3)))
    assert r.exit_code == 0, r.output
    assert [line.split(":")[0] for line in r.output.splitlines()] == ["hire-0", "hire-1", "hire-2"]  # lines intact
    drawn = terminal.getvalue()
    assert "ingest:" in drawn and "0/3" in drawn and "doc" in drawn
    assert "hire-0" not in drawn  # the documents' lines went to stdout, around the bar


def test_no_bar_off_a_terminal_or_for_one_document(app, fake_llm, tmp_path, monkeypatch):
    fake_llm.responder = extract_hires
    r = run(app, "ingest", str(jsonl(tmp_path, 3)))  # CliRunner's stderr is not a terminal
    assert r.exit_code == 0
    assert "\r" not in r.output and "it/s" not in r.output and len(r.output.splitlines()) == 3

    term = Terminal()
    monkeypatch.setattr("agent.cli.progress.bar_stream", lambda: term)
    (tmp_path / "one.txt").write_text("Person 7 joined Company 7.")
    assert run(app, "ingest", str(tmp_path / "one.txt")).exit_code == 0
    assert term.getvalue() == ""


def test_reindex_draws_a_bar_on_a_terminal(app, terminal):
    seed_northwind(app)
    r = run(app, "reindex")
    assert r.exit_code == 0 and r.output == "indexed 4 facts\n"
    drawn = terminal.getvalue()
    assert "reindex:" in drawn and "fact" in drawn
    assert app.index.count() == 4


def test_rebuild_reports_progress_batch_by_batch(app):
    seed_northwind(app)
    calls: list[tuple[int, int]] = []
    assert app.index.rebuild(app.store, progress=lambda n, total: calls.append((n, total)), batch=3) == 4
    assert calls == [(0, 4), (3, 4), (1, 4)]
    assert app.index.count() == 4 and app.index.query("CEO of Northwind", 1)

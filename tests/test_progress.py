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


def test_bench_progress_is_a_bar_per_system_and_phase_on_a_terminal(terminal, capsys):
    from bench.cli import BenchProgress

    bar = BenchProgress()
    assert bar.on_terminal
    for k in range(1, 4):
        bar(f"[knowd] doc {k}/3 d{k}: done (0 calls, 0.0s)")
    bar("[knowd] consolidation 1/2 at 2024-01-01: shipped")  # not a step: printed as it is
    for k in range(1, 3):
        bar(f"[knowd] question {k}/2: right (0.1s)")
    bar.close()
    drawn = terminal.getvalue()
    assert "knowd docs" in drawn and "/3" in drawn and "knowd questions" in drawn and "/2" in drawn
    err = capsys.readouterr().err
    assert "d1: done" not in drawn and "d1: done" not in err  # steps are the bar only
    assert err.splitlines() == ["[knowd] consolidation 1/2 at 2024-01-01: shipped"]


def test_bench_progress_prints_the_lines_off_a_terminal(capsys):
    from bench.cli import BenchProgress

    bar = BenchProgress()  # pytest's stderr is not a terminal
    assert not bar.on_terminal
    bar("[rag] doc 1/2 d1: done (1 calls, 0.2s)")
    bar("[rag] question 1/1: wrong (0.1s)")
    bar.close()
    assert capsys.readouterr().err.splitlines() == ["[rag] doc 1/2 d1: done (1 calls, 0.2s)", "[rag] question 1/1: wrong (0.1s)"]

"""Push ingest, `POST /v1/documents`: documents written to the durable inbox before the 202,
ingested by the daemon's worker exactly once; duplicates and new versions; every bad input
a 4xx naming what is wrong, with nothing queued and the server still serving; the token;
SIGKILL right after the 202 loses nothing (a daemon process, like tests/test_daemon_process.py).
"""
from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from agent.serve import start_server
from tests.helpers import daemon_serving_api
from tests.test_daemon_process import db_counts, wait_for, write_config

ROOT = Path(__file__).resolve().parent.parent


def hire(i: int) -> dict:
    """Document i: one fact, "Person i joined Company i", published a minute after i-1."""
    return {"id": f"hire-{i}", "title": f"Hire {i}", "text": f"Person {i} joined Company {i} as head of unit {i}.",
            "time": f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00Z", "url": f"https://hr.example/{i}", "desk": "hr"}


def extract_hires(prompt: str, schema, step: str):  # noqa: ANN001
    """FakeLLM responder for the ERASE path: the hire in the chunk; classify: nothing changes."""
    if step == "extract":
        m = re.search(r"(Person \d+) joined (Company \d+)", prompt.rsplit("Text (", 1)[-1])
        return {"facts": [{"subject": m.group(1), "relation": "joined", "object": m.group(2)}] if m else []}
    return {}


@pytest.fixture
def server(app) -> Iterator:  # noqa: ANN001
    h = start_server(app, "127.0.0.1", 0)
    yield h
    h.stop()


def post(url: str, body: object = None, *, content: bytes | None = None, headers: dict | None = None) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post(url + "/v1/documents", content=content, timeout=30,
                      headers={"content-type": "application/json", **(headers or {})})


def inbox(app) -> list[tuple]:  # noqa: ANN001
    return [tuple(r) for r in app.store._q("SELECT doc_id, content_hash, connector, status FROM inbox ORDER BY id")]


def still_serving(url: str, headers: dict | None = None) -> None:
    r = httpx.get(url + "/v1/status", headers=headers, timeout=10)
    assert r.status_code == 200, r.text


# ----------------------------------------------------------------------------- the endpoint
def test_one_document_or_an_array_is_queued_with_its_fields(server, app):
    r = post(server.url, hire(1))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["ids"] == ["hire-1"] and body["queued"] == 1 and body["duplicates"] == 0
    assert body["data"][0]["status"] == "queued" and len(body["data"][0]["content_hash"]) == 64

    r = post(server.url, [hire(2), {"text": "Person 3 joined Company 3."}])
    assert r.status_code == 202 and r.json()["queued"] == 2
    no_id = r.json()["ids"][1]
    assert re.fullmatch(r"api:[0-9a-f]{16}", no_id)  # an id from the content: posting it again is a duplicate
    assert [(d, c, s) for d, _, c, s in inbox(app)] == [
        ("hire-1", "api", "queued"), ("hire-2", "api", "queued"), (no_id, "api", "queued")]

    item = app.store.next_inbox_item()  # what the daemon's worker will ingest
    assert item is not None
    doc = item[1]
    assert (doc.id, doc.title, doc.url, doc.source) == ("hire-1", "Hire 1", "https://hr.example/1", "api")
    assert doc.published_at.isoformat() == "2024-01-01T00:01:00+00:00" and doc.meta == {"desk": "hr"}


def test_duplicates_are_stored_once_and_an_edit_is_a_new_version(server, app):
    assert post(server.url, [hire(1), hire(2)]).json()["queued"] == 2
    again = post(server.url, [hire(2), hire(1), hire(1)]).json()  # a retried post, and a repeat within it
    assert again["queued"] == 0 and again["duplicates"] == 3
    assert {d["status"] for d in again["data"]} == {"duplicate"}
    edited = dict(hire(1), text="Person 1 joined Company 99 as head of unit 1.")
    r = post(server.url, edited).json()
    assert r["queued"] == 1 and r["data"][0]["status"] == "queued"  # same id, new content hash
    rows = inbox(app)
    assert [d for d, *_ in rows] == ["hire-1", "hire-2", "hire-1"] and len({h for _, h, *_ in rows}) == 3
    # only the time or the url changing is not an edit: the content hash is over title and text
    assert post(server.url, dict(hire(2), time="2025-01-01")).json()["duplicates"] == 1


TOO_DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("name,send,status,needle,param", [
    ("malformed json", {"content": b'[{"text": "a"'}, 400, "not valid JSON", None),
    ("not utf-8", {"content": b'{"text": "\xff\xfe\xfa"}'}, 400, "not valid JSON", None),
    ("nested 100,000 deep", {"content": TOO_DEEP}, 400, "nested more than", None),
    ("a string", {"body": "Person 1 joined Company 1."}, 422, "document object", None),
    ("empty array", {"body": []}, 422, "no documents", None),
    ("not an object", {"body": [hire(1), 7]}, 422, "documents[1]: expected a JSON object", "documents[1]"),
    ("missing text", {"body": [hire(1), {"id": "x"}]}, 422, "'text' is required", "documents[1].text"),
    ("blank text", {"body": {"text": "  \n"}}, 422, "no 'text'", "document.text"),
    ("text a number", {"body": {"text": 42}}, 422, "'text' is required and must be a string, not a number", "document.text"),
    ("title an object", {"body": [hire(1), dict(hire(2), title={"x": 1})]}, 422, "'title' must be a string or null",
     "documents[1].title"),
    ("url a list", {"body": dict(hire(1), url=["a"])}, 422, "'url' must be a string", "document.url"),
    ("id a boolean", {"body": dict(hire(1), id=True)}, 422, "'id' must be a string or an integer", "document.id"),
    ("id with NUL", {"body": dict(hire(1), id="a\u0000b")}, 422, "'id' must be valid Unicode", "document.id"),
    ("time a number", {"body": dict(hire(1), time=1700000000)}, 422, "'time' must be an ISO date", "document.time"),
    ("time not a date", {"body": dict(hire(1), time="next tuesday")}, 422, "not an ISO date", "document.time"),
    ("a question", {"body": {"type": "question", "question": "?"}}, 422, "'type' must be \"document\"", "document.type"),
    ("20 MB body", {"content": json.dumps({"text": "x" * 20_000_000}).encode()}, 413, "server.max_documents_bytes", None),
])
def test_bad_input_gets_4xx_naming_the_problem_and_queues_nothing(server, app, name, send, status, needle, param):
    r = post(server.url, send.get("body"), content=send.get("content"))
    assert r.status_code == status, (name, r.text)
    err = r.json()["error"]
    assert needle in err["message"], (name, err)
    assert err["param"] == param, (name, err)
    assert inbox(app) == [], "a batch with a bad document queues none of it"
    still_serving(server.url)
    assert post(server.url, hire(1)).status_code == 202


def test_a_text_over_ingest_max_document_bytes_is_413(app, server):
    app.cfg.ingest.max_document_bytes = 1000
    r = post(server.url, [hire(1), {"id": "big", "text": "Person 2 joined Company 2. " * 100}])
    assert r.status_code == 413 and r.json()["error"]["param"] == "documents[1].text"
    assert "ingest.max_document_bytes" in r.json()["error"]["message"]
    assert inbox(app) == []


def test_nul_and_lone_surrogates_in_text_are_cleaned(server, app):
    body = json.dumps({"id": "odd", "title": "T\u0000", "text": "Person 1\u0000 joined \ud800Company 1."})
    assert post(server.url, content=body.encode()).status_code == 202
    doc = app.store.next_inbox_item()[1]
    assert doc.title == "T" and doc.text == "Person 1 joined \ufffdCompany 1."


def test_writes_need_the_token_once_one_is_set(app):
    app.cfg.server.token = "s3cret"
    h = start_server(app, "127.0.0.1", 0)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = post(h.url, hire(1), headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", headers
        r = post(h.url, content=TOO_DEEP)  # refused before the body is even read
        assert r.status_code == 401
        assert inbox(app) == []
        ok = {"Authorization": "Bearer s3cret"}
        assert post(h.url, hire(1), headers=ok).status_code == 202
        still_serving(h.url, ok)
    finally:
        h.stop()


# ----------------------------------------------------------------------------- with the daemon
@pytest.mark.slow
def test_100_documents_posted_while_the_daemon_runs_are_each_ingested_once(erase_app, fake_llm):
    # the ERASE path: one scripted extract call per ingest is the count that proves "exactly once"
    app = erase_app
    fake_llm.responder = extract_hires
    with daemon_serving_api(app) as url:
        batch = [hire(i) for i in range(100)]
        r = post(url, batch[:60])
        assert r.status_code == 202 and r.json()["queued"] == 60
        for i in range(60, 100, 10):  # the rest in smaller posts while the worker drains
            assert post(url, batch[i : i + 10]).json()["queued"] == 10
        assert post(url, batch[:30]).json()["duplicates"] == 30  # a client retrying mid-drain
        wait_for("all 100 ingested", lambda: app.store.inbox_counts() == {"done": 100}, None, timeout=60)
        assert post(url, batch).json()["duplicates"] == 100  # and after it
        time.sleep(1.5)  # a wrongly re-queued document would be picked up by now
    q = app.store._q
    assert q("SELECT count(*), count(DISTINCT doc_id) FROM inbox")[0][:] == (100, 100)
    assert app.store.inbox_counts() == {"done": 100}
    assert q("SELECT count(*) FROM documents WHERE status='done'")[0][0] == 100
    extracts = q("SELECT doc_id, count(*) FROM model_calls WHERE step='extract' GROUP BY doc_id")
    assert len(extracts) == 100 and {n for _, n in extracts} == {1}, "each document ingested exactly once"
    facts = app.store.list_facts()
    assert {f.text for f in facts} == {f"Person {i} joined Company {i}." for i in range(100)}
    assert all(len(f.history) == 1 for f in facts)


CHILD = textwrap.dedent(
    """
    import json, re, sys, time
    sys.path.insert(0, {root!r})
    from agent.app import App
    from agent.config import load_config
    from agent.daemon import run_daemon
    from agent.serve import start_server
    from graphs.testing import FakeLLM
    from stores.testing import HashEmbedder
    from tests.test_documents_api import extract_hires

    def slow(prompt, schema, step):
        time.sleep(0.03)
        return extract_hires(prompt, schema, step)

    def api(app):
        h = start_server(app)
        print(json.dumps({{"url": h.url}}), flush=True)
        return h

    cfg = load_config(sys.argv[1])
    app = App(cfg, llm=FakeLLM(responder=slow), embedder=HashEmbedder())
    sys.exit(run_daemon(app, config_path=sys.argv[1], extra_services=[api]))
    """
)


class ApiChild:
    """A `knowd run` process (FakeLLM, hashing embedder) serving the API on a free port."""

    def __init__(self, tmp: Path, config: Path, tag: str):
        script = tmp / "api_child.py"
        script.write_text(CHILD.format(root=str(ROOT)))
        self.log_path, self.out_path = tmp / f"{tag}.log", tmp / f"{tag}.out"
        with open(self.log_path, "w") as err, open(self.out_path, "w") as out:
            self.proc = subprocess.Popen([sys.executable, str(script), str(config)], stdout=out, stderr=err, cwd=str(ROOT))
        wait_for("the API", lambda: '"url"' in self.out_path.read_text(), self, timeout=60)  # type: ignore[arg-type]
        self.url = json.loads(self.out_path.read_text().splitlines()[0])["url"]

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_sigkill_right_after_the_202_loses_nothing(tmp_path: Path):
    config = write_config(tmp_path, [])
    cfg = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**cfg, "server": {"port": 0}}))
    data = tmp_path / "data"

    a = ApiChild(tmp_path, config, "a")
    r = post(a.url, [hire(i) for i in range(100)])
    a.proc.send_signal(signal.SIGKILL)  # the moment the client has its 202
    assert r.status_code == 202 and r.json()["queued"] == 100
    assert a.proc.wait(10) == -signal.SIGKILL
    counts = db_counts(data)
    assert counts["inbox"] == 100, "every document acknowledged was on disk"
    assert counts["done"] < 100, "the daemon had ingested everything before the kill: the test proves nothing"

    b = ApiChild(tmp_path, config, "b")
    assert post(b.url, [hire(i) for i in range(100)]).json()["duplicates"] == 100  # the client's retry is harmless
    wait_for("all 100 ingested", lambda: db_counts(data)["inbox_done"] == 100, b, timeout=120)  # type: ignore[arg-type]
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(15) == 0, b.log_path.read_text()[-3000:]
    assert any(ev["event"] == "documents_posted" for ev in a.events())

    c = sqlite3.connect(f"file:{data / 'knowd.sqlite'}?mode=ro", uri=True)
    try:
        q = lambda sql: c.execute(sql).fetchall()  # noqa: E731
        assert q("SELECT count(*), count(DISTINCT doc_id) FROM inbox") == [(100, 100)]
        assert q("SELECT status, count(*) FROM inbox GROUP BY status") == [("done", 100)]
        assert q("SELECT count(*) FROM documents WHERE status='done'") == [(100,)]
        extracts = q("SELECT doc_id, count(*) FROM model_calls WHERE step='extract' GROUP BY doc_id")
        assert len(extracts) == 100 and {n for _, n in extracts} == {1}, "each document ingested exactly once"
        assert q("SELECT count(*) FROM facts") == [(100,)]
    finally:
        c.close()

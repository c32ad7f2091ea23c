"""The HTTP API against a real uvicorn server on 127.0.0.1 (a free port): the official
`openai` client, streaming and not; bad requests get 4xx and the server keeps serving;
bearer tokens; JSON endpoints; a client leaving mid-stream does not wedge the model."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from agent.errors import BackendError
from graphs.testing import FakeLLM
from agent.security import Tokens, check_bind
from agent.serve import ServerError, start_server
from graphs.ingest import ingest_document
from tests.helpers import doc, extracted, fact
from tests.test_chat_graph import JOHN, MARIA, OSLO, answer_citing, seed_northwind

QUESTION = [{"role": "user", "content": "Who is the CEO of Northwind?"}]


@pytest.fixture
def seeded(app, fake_llm):  # noqa: ANN001
    ids = seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)
    return ids


@pytest.fixture
def server(app, seeded) -> Iterator:  # noqa: ANN001
    h = start_server(app, "127.0.0.1", 0)
    yield h
    h.stop()


@pytest.fixture
def client(server) -> OpenAI:  # noqa: ANN001
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def still_serving(url: str, headers: dict[str, str] | None = None) -> None:
    r = httpx.post(url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION}, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].startswith(JOHN)


def test_openai_client_non_streaming(client, fake_llm):
    r = client.chat.completions.create(model="knowd", messages=QUESTION)
    assert r.model == "knowd" and r.object == "chat.completion"
    content = r.choices[0].message.content
    answer, sources = content.split("\n\nSources:\n")
    assert answer == f"{JOHN} [1]"
    assert sources == f'[1] {JOHN} (since 2022-06-01) — "John Smith replaces Maria Lopez at Northwind" <https://news.example/d2>, 2022-06-01'
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.total_tokens > 0
    extra = r.model_extra["knowd"]
    assert extra["mode"] == "now" and [c["text"] for c in extra["citations"]] == [JOHN]
    assert MARIA not in fake_llm.calls[-1].prompt


def test_openai_client_streaming(client):
    stream = client.chat.completions.create(model="knowd", messages=QUESTION, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # token by token
    full = client.chat.completions.create(model="knowd", messages=QUESTION).choices[0].message.content
    assert text.split() == full.split()  # the stream has the raw tokens' spacing


def test_raw_sse_ends_with_done(server):
    with httpx.stream("POST", server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [ln for ln in r.iter_lines() if ln]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    last = json.loads(events[-2][6:])
    assert last["object"] == "chat.completion.chunk" and last["choices"][0]["finish_reason"] == "stop"


def test_conversation_comes_from_the_messages(client, fake_llm):
    fake_llm.responder = answer_citing(OSLO)
    msgs = [*QUESTION, {"role": "assistant", "content": f"{JOHN} [1]\n\nSources:\n[1] ..."},
            {"role": "user", "content": [{"type": "text", "text": "Where is it based?"}]}]
    r = client.chat.completions.create(model="knowd", messages=msgs)
    assert r.choices[0].message.content.startswith(OSLO)
    prompt = fake_llm.calls[-1].prompt
    assert "Previous question: Who is the CEO of Northwind?" in prompt and f"Previous answer: {JOHN} [1]\n" in prompt


def test_as_of_extension_field(client, fake_llm):
    fake_llm.responder = answer_citing(MARIA)
    r = client.chat.completions.create(model="knowd", messages=QUESTION, extra_body={"as_of": "2021-05-01"})
    assert r.choices[0].message.content.startswith(MARIA)
    assert r.model_extra["knowd"]["mode"] == "as_of"
    assert JOHN not in fake_llm.calls[-1].prompt


def test_nothing_known_makes_no_model_call(client, fake_llm):
    n = len(fake_llm.calls)
    r = client.chat.completions.create(model="knowd", messages=[{"role": "user", "content": "What is the boiling point of helium?"}])
    assert r.choices[0].message.content.startswith("I don't know")
    assert len(fake_llm.calls) == n


def test_models_report_the_live_adapter(client, server, app):
    (m,) = client.models.list().data
    assert m.id == "knowd" and m.model_extra["adapter"]["version"] is None
    live = app.cfg.data_path / "adapters" / "live.json"
    live.parent.mkdir(parents=True, exist_ok=True)
    live.write_text(json.dumps({"version": "v0003", "gguf": "/nowhere/adapter.gguf", "scale": 1.0}))
    m = client.models.retrieve("knowd")
    assert m.model_extra["adapter"]["version"] == "v0003"
    assert m.model_extra["adapter"]["live"]["gguf"] == "/nowhere/adapter.gguf"
    status = httpx.get(server.url + "/v1/status").json()
    assert status["adapter"]["version"] == "v0003"


@pytest.mark.parametrize("name,send,status,needle", [
    ("malformed json", {"content": b'{"model": "knowd", "messages": [', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("not an object", {"json": ["hi"]}, 400, "JSON object"),
    ("missing messages", {"json": {"model": "knowd"}}, 400, "'messages' is required"),
    ("empty messages", {"json": {"model": "knowd", "messages": []}}, 400, "'messages' is required"),
    ("last message not user", {"json": {"model": "knowd", "messages": [{"role": "assistant", "content": "hi"}]}}, 400, "last message"),
    ("bad role", {"json": {"model": "knowd", "messages": [{"role": "wizard", "content": "hi"}]}}, 400, "role"),
    ("bad content", {"json": {"model": "knowd", "messages": [{"role": "user", "content": 42}]}}, 400, "content"),
    ("bad max_tokens", {"json": {"model": "knowd", "messages": QUESTION, "max_tokens": -1}}, 400, "max_tokens"),
    ("bad as_of", {"json": {"model": "knowd", "messages": QUESTION, "as_of": "someday"}}, 400, "not a date"),
    ("unknown model", {"json": {"model": "gpt-4o", "messages": QUESTION}}, 404, "does not exist"),
    ("1 MB prompt", {"json": {"model": "knowd", "messages": [{"role": "user", "content": "x" * 1_000_001}]}}, 413, "byte limit"),
    ("long question", {"json": {"model": "knowd", "messages": [{"role": "user", "content": "why " * 2000}]}}, 400, "characters"),
])
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, name, send, status, needle):
    r = httpx.post(server.url + "/v1/chat/completions", timeout=20, **send)
    assert r.status_code == status, (name, r.text)
    err = r.json()["error"]
    assert needle in err["message"] and err["type"]
    still_serving(server.url)


def test_unknown_model_lookup_and_null_optional_fields(server):
    r = httpx.get(server.url + "/v1/models/gpt-4o")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION, "stream": None, "n": None, "max_tokens": None})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith(JOHN)
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION, "n": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


def test_unknown_route_and_bad_query_params(server):
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(server.url + "/v1/facts", params={"limit": "lots"})
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    still_serving(server.url)


def test_backend_failure_is_503_and_the_server_recovers(server, fake_llm):
    fake_llm.queue(BackendError("llama fell over"))
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION}, timeout=20)
    assert r.status_code == 503 and "llama fell over" in r.json()["error"]["message"]
    fake_llm.queue(BackendError("again"))
    with httpx.stream("POST", server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION, "stream": True}) as s:
        events = [ln for ln in s.iter_lines() if ln]
    assert "again" in json.loads(events[-2][6:])["error"]["message"] and events[-1] == "data: [DONE]"
    still_serving(server.url)


def test_token_is_required_once_configured(app, seeded):
    app.cfg.server.token = "s3cret"
    h = start_server(app, "127.0.0.1", 0)
    try:
        url = h.url + "/v1/chat/completions"
        body = {"model": "knowd", "messages": QUESTION}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}, {"Authorization": "Basic s3cret"}):
            r = httpx.post(url, json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", headers
        assert httpx.get(h.url + "/v1/status").status_code == 401
        still_serving(h.url, {"Authorization": "Bearer s3cret"})
        ok = OpenAI(base_url=h.url + "/v1", api_key="s3cret", max_retries=0).chat.completions.create(model="knowd", messages=QUESTION)
        assert ok.choices[0].message.content.startswith(JOHN)
    finally:
        h.stop()


def test_token_from_the_environment(app, seeded, monkeypatch):
    monkeypatch.setenv("KNOWD_TEST_TOKEN", "envtok")
    app.cfg.server.token_env = "KNOWD_TEST_TOKEN"
    h = start_server(app, "127.0.0.1", 0)
    try:
        assert httpx.get(h.url + "/v1/models").status_code == 401
        assert httpx.get(h.url + "/v1/models", headers={"Authorization": "Bearer envtok"}).status_code == 200
    finally:
        h.stop()


def test_public_address_needs_a_token(app, monkeypatch):
    monkeypatch.delenv("KNOWD_TOKEN", raising=False)
    with pytest.raises(ServerError, match="without a bearer token"):
        start_server(app, "0.0.0.0", 0)
    none, one = Tokens([]), Tokens.from_config(app.cfg.server.model_copy(update={"token": "tok"}))
    check_bind("127.0.0.1", none, "KNOWD_TOKEN")
    check_bind("::1", none, "KNOWD_TOKEN")
    check_bind("localhost", none, "KNOWD_TOKEN")
    check_bind("0.0.0.0", one, "KNOWD_TOKEN")
    with pytest.raises(ServerError):
        check_bind("example.org", none, "KNOWD_TOKEN")


def test_port_in_use_is_a_clear_error(app, server):
    with pytest.raises(ServerError, match="cannot listen"):
        start_server(app, "127.0.0.1", server.port)


def test_fact_endpoints(server, seeded, app, fake_llm):
    base = server.url + "/v1"
    now = {f["text"] for f in httpx.get(base + "/facts").json()["facts"]}
    assert JOHN in now and OSLO in now and MARIA not in now
    then = {f["text"] for f in httpx.get(base + "/facts", params={"as_of": "2021-05-01"}).json()["facts"]}
    assert MARIA in then and JOHN not in then
    every = httpx.get(base + "/facts", params={"all": "true"}).json()["facts"]
    assert {MARIA, JOHN, OSLO} <= {f["text"] for f in every}
    hits = httpx.get(base + "/facts", params={"query": "CEO of Northwind"}).json()["facts"]
    assert hits[0]["text"] == JOHN and MARIA not in {f["text"] for f in hits}
    hits = httpx.get(base + "/facts", params={"query": "CEO of Northwind", "all": "true"}).json()["facts"]
    assert {MARIA, JOHN} <= {f["text"] for f in hits}

    h = httpx.get(f"{base}/facts/{seeded['maria']}/history").json()
    assert h["text"] == MARIA and h["true"] is False
    assert [(e["truth"], e["doc_id"], e["op"]) for e in h["history"]] == [(True, "d1", "extract"), (True, "d5", "reinforce"), (False, "d2", "make_false")]
    assert h["history"][0]["document"]["title"] == "Northwind names Maria Lopez CEO"
    assert httpx.get(f"{base}/facts/f_nope").status_code == 404

    # a document ingested through the ERASE graph: its operations, with the model output behind them
    fake_llm.queue(extracted(fact("Northwind", "makes", "boats")), {str(i): "no_change" for i in range(1, 7)}, {"1": "no_change"})
    ctx = app.ingest_context()
    ctx.cfg = ctx.cfg.model_copy(update={"revision": "model", "extract_unit": "chunk"})
    r = ingest_document(doc("d9", "Northwind makes boats.", "2023-02-01", title="Boats"), ctx)
    assert r.status == "done", r.error
    ops = httpx.get(f"{base}/documents/d9/operations").json()
    assert ops["document"]["status"] == "done" and ops["document"]["title"] == "Boats"
    ext = [o for o in ops["operations"] if o["op"] == "extract"]
    assert ext[0]["after"] == "Northwind makes boats." and ext[0]["model_call"]["step"] == "extract"
    assert "prompt" not in ext[0]["model_call"]
    assert "prompt" in httpx.get(f"{base}/documents/d9/operations", params={"prompts": "true"}).json()["operations"][0]["model_call"]
    assert httpx.get(f"{base}/documents/nope/operations").status_code == 404

    st = httpx.get(base + "/status").json()
    assert st["facts"]["total"] == 5 and st["facts"]["not_current"] == 1
    assert st["inbox"] == {} and st["model"]["id"] == "knowd"


class SlowLockingLLM(FakeLLM):
    """Streams slowly while holding a lock, like LlamaCppLLM: a generator that is never
    finished or closed in its own thread would wedge every later request."""

    def __init__(self) -> None:
        super().__init__(responder=lambda p, s, st: " ".join(["word"] * 200))
        self.lock = threading.RLock()
        self.produced = 0

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None, route: str | None = None) -> Iterator[str]:
        with self.lock:
            for w in self.complete(prompt, max_tokens=max_tokens, step="stream").text.split(" "):
                time.sleep(0.02)
                self.produced += 1
                yield w + " "


def test_client_leaving_mid_stream_frees_the_model(cfg, tmp_path):
    from agent.app import App
    from stores.testing import HashEmbedder

    llm = SlowLockingLLM()
    app = App(cfg, llm=llm, embedder=HashEmbedder())
    seed_northwind(app)
    h = start_server(app, "127.0.0.1", 0)
    try:
        body = {"model": "knowd", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", h.url + "/v1/chat/completions", json=body, timeout=20) as r:
            for ln in r.iter_lines():
                if '"content": "word' in ln:
                    break  # leave after the first token
        t0 = time.monotonic()
        llm.responder = answer_citing(JOHN)
        still_serving(h.url)  # the next request is not stuck behind the abandoned one
        assert time.monotonic() - t0 < 3.5  # 200 tokens x 20 ms = 4 s if it ran on
        assert llm.produced < 150
        assert llm.lock.acquire(timeout=1)  # and the model lock is free
        llm.lock.release()
    finally:
        h.stop()
        app.close()


def test_concurrent_requests_are_serialised(server, fake_llm):
    active, peak = [0], [0]
    guard = threading.Lock()
    inner = fake_llm.responder

    def responder(prompt, schema, step):  # noqa: ANN001
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with guard:
            active[0] -= 1
        return inner(prompt, schema, step)

    fake_llm.responder = responder
    results: list[int] = []

    def one() -> None:
        results.append(httpx.post(server.url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION}, timeout=30).status_code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == [200] * 6 and peak[0] == 1


def test_knowd_serve_runs_in_the_foreground_and_stops_on_sigint(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    conf = tmp_path / "config.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nserver:\n  port: 0\n")
    knowd = Path(sys.executable).parent / "knowd"
    env = {**os.environ, "KNOWD_TOKEN": ""}
    p = subprocess.Popen([str(knowd), "--config", str(conf), "serve"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stderr.readline()
        m = re.search(r"serving (http://127\.0\.0\.1:\d+)/v1", line)
        assert m, line
        models = httpx.get(m.group(1) + "/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "knowd"
        assert httpx.get(m.group(1) + "/v1/status", timeout=10).json()["model"]["loaded"] is False  # no model loaded to report
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_knowd_serve_refuses_a_public_address_without_token(app, monkeypatch):
    from click.testing import CliRunner

    from agent.cli import cli
    from agent.cli.chat import using_app

    monkeypatch.delenv("KNOWD_TOKEN", raising=False)
    with using_app(app):
        r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without a bearer token" in r.output

"""knowd as an MCP server (agent/mcp_server.py), driven by the official SDK's own client.

Streamable HTTP: the endpoint at /mcp of the daemon's API (a real uvicorn on 127.0.0.1, a
Daemon draining the inbox): the tools are listed, search and history read the store,
`ask` goes through the ChatAgent on the model worker thread, a document added is
queued, ingested exactly once and then found; the API's bearer token guards /mcp too,
and without a token a foreign Host or Origin (DNS rebinding) is refused.

stdio: `python -m agent --config FILE mcp` as a subprocess. The FakeLLM and the hashing
embedder reach it the way tests/test_daemon_process.py's children get theirs: a child
script patches `agent.app.build_llm` / `build_embedder`, then runs the `agent` module as
`__main__` with the same argv. One more test runs the real command, unpatched, on calls
that load no model. stdout must carry nothing but the protocol: the SDK's client logs
every line it cannot parse, and no such line may appear.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agent.serve import start_server
from tests.helpers import daemon_serving_api
from tests.test_chat_graph import JOHN, MARIA, answer_citing, seed_northwind
from tests.test_daemon_process import wait_for
from tests.test_documents_api import extract_hires, hire

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"search_facts", "fact_history", "ask", "add_document"}
MODEL_THREADS: list[str] = []  # the threads the FakeLLM was called on (this process)


def respond(prompt: str, schema: Any, step: str) -> Any:
    """FakeLLM: chat answers cite the CEO facts in the prompt; ingest extracts the hire."""
    MODEL_THREADS.append(threading.current_thread().name)
    if step == "chat":
        return answer_citing(JOHN, MARIA)(prompt, schema, step)
    return extract_hires(prompt, schema, step)


def run(session: Any) -> None:
    """One client session, bounded: a server that stops answering fails the test, not the run."""
    asyncio.run(asyncio.wait_for(session, 120))


def structured(r: Any) -> dict:
    assert not r.is_error, r.content
    return r.structured_content


def no_garbage_on_stdout(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r.getMessage() for r in caplog.records if r.name.startswith("mcp.client") and r.levelno >= logging.WARNING]
    assert bad == [], "the server wrote something other than the protocol to stdout"


# ----------------------------------------------------------------------------- the calls both transports make
async def check_tools(c: Client) -> None:
    tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == TOOLS
    assert tools["search_facts"].input_schema["required"] == ["query"]
    assert set(tools["search_facts"].input_schema["properties"]) == {"query", "as_of", "limit", "include_stale"}
    assert tools["fact_history"].input_schema["required"] == ["fact_id"]
    assert tools["ask"].input_schema["required"] == ["question"]
    assert tools["add_document"].input_schema["required"] == ["text"]
    assert set(tools["add_document"].input_schema["properties"]) == {"text", "id", "title", "url", "time", "source"}
    assert all(tools[n].annotations.read_only_hint for n in ("search_facts", "fact_history", "ask"))
    assert tools["add_document"].annotations.read_only_hint is False
    assert tools["add_document"].annotations.idempotent_hint is True
    assert all(t.output_schema for t in tools.values())


async def check_search_and_history(c: Client, ids: dict[str, str]) -> None:
    now = structured(await c.call_tool("search_facts", {"query": "CEO of Northwind"}))
    assert now["as_of"] is None
    john = now["facts"][0]
    assert john["id"] == ids["john"] and john["text"] == JOHN and john["true"] is True
    assert john["valid_from"].startswith("2022-06-01") and john["valid_to"] is None
    assert [(s["doc_id"], s["title"], s["url"]) for s in john["sources"]] == [
        ("d2", "John Smith replaces Maria Lopez at Northwind", "https://news.example/d2")]
    assert MARIA not in [f["text"] for f in now["facts"]]  # no longer true: not found "now"

    then = structured(await c.call_tool("search_facts", {"query": "CEO of Northwind", "as_of": "2021-05-01"}))
    assert then["as_of"].startswith("2021-05-01")
    texts = [f["text"] for f in then["facts"]]
    assert MARIA in texts and JOHN not in texts
    maria = then["facts"][texts.index(MARIA)]
    assert maria["valid_from"].startswith("2020-01-01") and maria["valid_to"].startswith("2022-06-01")
    assert [s["doc_id"] for s in maria["sources"]] == ["d1", "d5"]  # named CEO, then reaffirmed

    stale = structured(await c.call_tool("search_facts", {"query": "Maria Lopez CEO", "include_stale": True}))
    assert MARIA in [f["text"] for f in stale["facts"]]

    h = structured(await c.call_tool("fact_history", {"fact_id": ids["maria"]}))
    assert h["id"] == ids["maria"] and h["text"] == MARIA and h["true"] is False
    assert [(e["time"][:10], e["truth"], e["op"], e["document"]["doc_id"]) for e in h["history"]] == [
        ("2020-01-01", True, "extract", "d1"), ("2021-03-01", True, "reinforce", "d5"),
        ("2022-06-01", False, "make_false", "d2")]
    assert h["history"][0]["document"]["title"] == "Northwind names Maria Lopez CEO"
    assert structured(await c.call_tool("fact_history", {"fact_id": ids["john"]}))["supersedes"] == ids["maria"]

    missing = await c.call_tool("fact_history", {"fact_id": "f_nope"})
    assert missing.is_error and "no fact 'f_nope'" in missing.content[0].text
    bad_time = await c.call_tool("search_facts", {"query": "CEO", "as_of": "whenever it was"})
    assert bad_time.is_error and "as_of" in bad_time.content[0].text


async def check_ask(c: Client, ids: dict[str, str]) -> None:
    r = await c.call_tool("ask", {"question": "Who is the CEO of Northwind?"})
    a = structured(r)
    assert a["answer"] == f"{JOHN} [1]" and a["mode"] == "now" and a["known"] is True
    assert [(x["n"], x["id"], x["true_now"]) for x in a["citations"]] == [(1, ids["john"], True)]
    assert a["citations"][0]["sources"][0]["doc_id"] == "d2"
    text = r.content[0].text  # what an MCP client's model reads: the answer, then its sources
    assert text.startswith(f"{JOHN} [1]\n\nSources:\n[1] {JOHN} (since 2022-06-01)")

    old = structured(await c.call_tool("ask", {"question": "Who is the CEO of Northwind?", "as_of": "2021-05-01"}))
    assert old["answer"] == f"{MARIA} [1]" and old["mode"] == "as_of" and old["as_of"].startswith("2021-05-01")
    assert old["citations"][0]["id"] == ids["maria"]

    empty = await c.call_tool("ask", {"question": "   "})
    assert empty.is_error and "empty question" in empty.content[0].text


async def add_hire(c: Client, i: int) -> tuple[dict, dict]:
    d = hire(i)
    args = {k: d[k] for k in ("id", "title", "text", "url", "time")}
    first = structured(await c.call_tool("add_document", args))
    again = structured(await c.call_tool("add_document", args))
    assert first["id"] == d["id"] and first["status"] == "queued" and len(first["content_hash"]) == 64
    assert again == {**first, "status": "duplicate"}
    bad = await c.call_tool("add_document", {"text": ""})
    assert bad.is_error and "text" in bad.content[0].text
    return first, d


def extracts(app, doc_id: str) -> int:  # noqa: ANN001
    return app.store._q("SELECT count(*) FROM model_calls WHERE step='extract' AND doc_id=?", (doc_id,))[0][0]


# ----------------------------------------------------------------------------- streamable HTTP
def test_streamable_http_on_the_daemon_api(erase_app, fake_llm):
    # the ERASE path: the fake model's scripted extract makes the fact and counts the ingests
    app = erase_app
    ids = seed_northwind(app)
    fake_llm.responder = respond
    with daemon_serving_api(app) as url:

        async def session() -> None:
            async with Client(url + "/mcp") as c:
                await check_tools(c)
                await check_search_and_history(c, ids)
                MODEL_THREADS.clear()
                await check_ask(c, ids)
                assert MODEL_THREADS and {n.split("_")[0] for n in MODEL_THREADS} == {"knowd-model"}, MODEL_THREADS

                doc, d = await add_hire(c, 7)
                wait_for("the document ingested", lambda: app.store.inbox_counts() == {"done": 1}, None, timeout=30)
                found = structured(await c.call_tool("search_facts", {"query": "Person 7 joined Company 7"}))
                fact = found["facts"][0]
                assert fact["text"] == "Person 7 joined Company 7." and fact["valid_from"].startswith(d["time"][:16])
                assert [(s["doc_id"], s["title"], s["url"]) for s in fact["sources"]] == [(d["id"], d["title"], d["url"])]
                assert structured(await c.call_tool("add_document", {"id": d["id"], "text": d["text"], "title": d["title"]}))[
                    "status"] == "duplicate"  # also after the ingest

        run(session())
        assert httpx.get(url + "/v1/status", timeout=10).status_code == 200  # the API serves on beside it
    assert app.store.inbox_counts() == {"done": 1}
    assert extracts(app, "hire-7") == 1, "ingested exactly once"
    assert app.store._q("SELECT connector FROM inbox")[0][0] == "api"  # the same intake as POST /v1/documents


def test_the_api_token_guards_mcp(app, fake_llm):
    seed_northwind(app)
    fake_llm.responder = respond
    app.cfg.server.token = "s3cret"
    h = start_server(app, "127.0.0.1", 0)
    try:
        init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = httpx.post(h.url + "/mcp", json=init, headers={"accept": "application/json, text/event-stream", **headers})
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]["code"] == "invalid_api_key"

        async def with_token() -> None:
            client = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"})
            async with client, Client(streamable_http_client(h.url + "/mcp", http_client=client)) as c:
                assert {t.name for t in (await c.list_tools()).tools} == TOOLS
                assert structured(await c.call_tool("add_document", {"text": "Person 3 joined Company 3."}))["status"] == "queued"

        run(with_token())
        assert app.store.inbox_counts() == {"queued": 1}

        async def without() -> None:
            async with Client(h.url + "/mcp") as c:
                await c.list_tools()

        with pytest.raises(ExceptionGroup) as refused:  # the SDK client, no token: the server's 401 is an error
            run(without())
        assert refused.group_contains(MCPError)
        assert app.store.inbox_counts() == {"queued": 1}
    finally:
        h.stop()


def test_without_a_token_only_loopback_hosts_and_origins(server_app):
    url = server_app.url + "/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=body, headers={**accept, "host": "evil.example:8321"}).status_code == 421
    assert httpx.post(url, json=body, headers={**accept, "origin": "http://evil.example"}).status_code == 403


@pytest.fixture
def server_app(app, fake_llm):  # noqa: ANN001
    h = start_server(app, "127.0.0.1", 0)
    yield h
    h.stop()


# ----------------------------------------------------------------------------- stdio
CHILD = textwrap.dedent(
    """
    import runpy, sys
    sys.path.insert(0, {root!r})
    import agent.app
    from graphs.testing import FakeLLM
    from stores.testing import HashEmbedder
    from tests.test_mcp import respond

    agent.app.build_llm = lambda cfg: FakeLLM(responder=respond)
    agent.app.build_embedder = lambda cfg: HashEmbedder()
    sys.argv = ["knowd", *sys.argv[1:]]
    runpy.run_module("agent", run_name="__main__", alter_sys=True)  # python -m agent ...
    """
)


def stdio_config(tmp: Path) -> Path:
    cfg = {
        "data_dir": str(tmp / "data"),
        "ingest": {"revision": "model", "extract_unit": "chunk"},  # the FakeLLM answers ERASE's extraction
        "chat": {"lookup": False},  # the model answers (the FakeLLM), not the store's structure
        "connectors": [],
        "daemon": {"consolidate_at": None},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def fake_app(config: Path):  # noqa: ANN201
    from agent.app import App
    from agent.config import load_config
    from graphs.testing import FakeLLM
    from stores.testing import HashEmbedder

    return App(load_config(config), llm=FakeLLM(responder=respond), embedder=HashEmbedder())


def child_env(tmp: Path) -> dict[str, str]:
    import os

    keep = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY", "HOME", "PATH", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"KNOWD_TOKEN": "", "PYTHONUNBUFFERED": "1"}


def test_stdio_knowd_mcp_then_the_daemon_ingests_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from agent.daemon import Daemon

    config = stdio_config(tmp_path)
    seeder = fake_app(config)
    ids = seed_northwind(seeder)
    seeder.close()
    script = tmp_path / "mcp_child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    params = StdioServerParameters(command=sys.executable, args=[str(script), "--config", str(config), "mcp"],
                                   cwd=str(ROOT), env=child_env(tmp_path))
    errlog = tmp_path / "stderr.log"

    async def session() -> None:
        with open(errlog, "w") as err, caplog.at_level(logging.WARNING, logger="mcp"):
            async with Client(_stdio(params, err)) as c:
                await check_tools(c)
                await check_search_and_history(c, ids)
                await check_ask(c, ids)
                await add_hire(c, 7)

    run(session())
    no_garbage_on_stdout(caplog)

    app = fake_app(config)  # the daemon, after the MCP session: the document waited in the inbox
    try:
        assert app.store.inbox_counts() == {"queued": 1}
        assert extracts(app, "hire-7") == 0
        Daemon(app).run_once()  # what `knowd run --once` does: poll (no connectors), drain the inbox
        assert app.store.inbox_counts() == {"done": 1}
        Daemon(app).run_once()  # nothing left to do: the document is not ingested again
        assert app.store.inbox_counts() == {"done": 1}
        assert extracts(app, "hire-7") == 1, "ingested exactly once"
        assert "Person 7 joined Company 7." in {f.text for f in app.store.list_facts()}
    finally:
        app.close()


def test_stdio_the_real_command_serves_store_calls_without_loading_a_model(tmp_path: Path, caplog):  # noqa: ANN001
    """`python -m agent --config FILE mcp`, nothing patched: list, history and add load no model.
    With -v and --log-file, the debug log goes to the file, not to stdout or stderr."""
    config = stdio_config(tmp_path)
    seeder = fake_app(config)
    ids = seed_northwind(seeder)
    seeder.close()
    log_file = tmp_path / "mcp.log"
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agent", "-v", "--config", str(config), "mcp", "--log-file", str(log_file)],
        cwd=str(ROOT), env=child_env(tmp_path))

    async def session() -> None:
        with open(tmp_path / "stderr.log", "w") as err, caplog.at_level(logging.WARNING, logger="mcp"):
            async with Client(_stdio(params, err)) as c:
                assert {t.name for t in (await c.list_tools()).tools} == TOOLS
                h = structured(await c.call_tool("fact_history", {"fact_id": ids["john"]}))
                assert h["text"] == JOHN and h["true"] is True
                assert structured(await c.call_tool("add_document", {"text": "Person 9 joined Company 9."}))["status"] == "queued"

    run(session())
    no_garbage_on_stdout(caplog)
    assert "documents_posted" in log_file.read_text()
    assert "documents_posted" not in (tmp_path / "stderr.log").read_text()


def test_knowd_mcp_reports_a_bad_config_on_stderr(tmp_path: Path):
    import subprocess

    bad = tmp_path / "config.yaml"
    bad.write_text("data_dir: data\nnot_a_key: 1\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "agent", "--config", str(bad), "mcp"], cwd=str(ROOT), input="",
                       capture_output=True, text=True, timeout=60, env=child_env(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("knowd: error:") and "not_a_key" in r.stderr


def _stdio(params: StdioServerParameters, errlog: Any) -> Any:
    from mcp.client.stdio import stdio_client

    return stdio_client(params, errlog=errlog)

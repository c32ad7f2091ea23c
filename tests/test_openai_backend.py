"""The OpenAI-compatible backend against a real server: llama-cpp-python's, on 127.0.0.1,
serving the bundled model. Also: a server error is a BackendError, not a crash."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from agent.errors import BackendError
from agent.llm import OpenAICompatLLM
from graphs.llm import complete_json


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_backend_error():
    llm = OpenAICompatLLM(f"http://127.0.0.1:{_free_port()}/v1", "m", timeout_s=2)
    with pytest.raises(BackendError, match="LLM server"):
        llm.complete("hello")


@pytest.mark.parametrize("status,transient", [(400, False), (401, False), (429, True), (503, True)])
def test_http_errors_say_whether_retrying_can_help(status, transient):
    """A 4xx is the server refusing this request (retrying cannot help: ModelLimitError);
    429 and 5xx may pass (BackendError, transient). A real HTTP server on loopback."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from agent.errors import ModelLimitError

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"error": "no"}')

        def log_message(self, *a) -> None:  # noqa: ANN002
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        llm = OpenAICompatLLM(f"http://127.0.0.1:{srv.server_address[1]}/v1", "m", timeout_s=5)
        with pytest.raises(BackendError if transient else ModelLimitError, match=f"HTTP {status}") as e:
            llm.complete("hello")
        assert e.value.transient is transient
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("starlette_context", reason="llama-cpp-python[server] extras not installed")
    from agent.models import ensure_gguf

    gguf = ensure_gguf(tmp_path_factory.mktemp("srv"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "1024", "--model_alias", "gemma", "--logits_all", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.integration
def test_constrained_completion_over_http(llama_server: str):
    from graphs.prompts import extract

    llm = OpenAICompatLLM(llama_server, "gemma", structured="grammar", n_ctx=1024, timeout_s=600)
    prompt = extract.build("Maria Lopez is CEO of Northwind.", "2020-01-01", None)
    obj, c = complete_json(llm, prompt, extract.schema(3), step="extract", max_tokens=extract.max_tokens(3))
    facts, _ = extract.parse(obj)
    assert c.prompt_tokens > 100 and c.completion_tokens > 0
    assert llm.meter.calls == 1 and llm.meter.by_step["extract"]["calls"] == 1
    assert all(f.subject and f.object for f in facts)


@pytest.mark.integration
def test_choice_scoring_over_http(llama_server: str):
    """Choice scoring by prompt log-probs (echo) against a real llama_cpp.server."""
    llm = OpenAICompatLLM(llama_server, "gemma", structured="grammar", n_ctx=1024, timeout_s=300)
    s = llm.score_choices("Question: What is the capital of France?\nAnswer:", [" Berlin", " Paris"])
    assert s[1] > s[0]
    assert llm.meter.by_step["choices"]["calls"] == 1

"""No input gives a 500: hypothesis posts random JSON, random bytes, deeply nested bodies
and strings with any code point (NUL, lone surrogates) to every endpoint of the HTTP API
(the review console's pages and forms, and MCP at /mcp, included),
and asserts a status below 500 (and no `server_error` inside a 200 event stream), and that
the server still answers a normal request afterwards.

The server runs on config.yaml's defaults, over doubles that are as strict as the real
backends about their input: the bundled MiniLM's tokeniser raises TypeError on a string
that is not valid UTF-8 (`StrictEmbedder` does the same; the last test checks that against
the real MiniLM), and llama.cpp's backend encodes each prompt to UTF-8 (`StrictLLM`).
Before `agent.api.body.parse_json_body` both of the issue's bodies were 500s: `[[[[...`
100,000 deep (RecursionError) and `"\\u0000\\ud800 Who?"` (TypeError), and this found both.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.serve import start_server
from graphs.testing import FakeLLM
from stores.testing import HashEmbedder
from tests.test_chat_graph import JOHN, answer_citing, seed_northwind

QUESTION = [{"role": "user", "content": "Who is the CEO of Northwind?"}]
# KNOWD_FUZZ_EXAMPLES=2000 (and KNOWD_FUZZ_RANDOM=1 for a new seed each run) searches longer
FUZZ = settings(max_examples=int(os.environ.get("KNOWD_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                derandomize=not os.environ.get("KNOWD_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class StrictEmbedder(HashEmbedder):
    """The hashing embedder, refusing what the bundled MiniLM's HF tokeniser refuses."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        for t in texts:
            if not isinstance(t, str):
                raise TypeError("TextInputSequence must be str")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]") from None
        return super().embed(texts)


class StrictLLM(FakeLLM):
    """The fake LLM, encoding each prompt to UTF-8 as the llama.cpp backend does."""

    def complete(self, prompt: str, **kw):  # noqa: ANN003, ANN201
        prompt.encode("utf-8")
        return super().complete(prompt, **kw)


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    from agent.app import App
    from agent.config import config_from_dict

    tmp = tmp_path_factory.mktemp("fuzz")
    app = App(config_from_dict({"data_dir": str(tmp / "data")}, base_dir=tmp),
              llm=StrictLLM(responder=answer_citing(JOHN)), embedder=StrictEmbedder())
    seed_northwind(app)
    h = start_server(app, "127.0.0.1", 0)
    yield h.url
    h.stop()
    app.close()


# ----------------------------------------------------------------------------- strategies
# any code point: hypothesis's characters() never yields surrogates, so they are added
CHAR = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "\ufffe"]) | st.integers(0xD800, 0xDFFF).map(chr)
TEXT = st.text(CHAR, max_size=40)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)


def nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "[" else (b'{"a":' * depth + b"1" + b"}" * depth)


DEEP = st.builds(nested, st.integers(0, 150_000), st.sampled_from("[{"))


def dumps(value: object) -> bytes:
    """JSON with \\uXXXX escapes, so lone surrogates travel (they have no UTF-8 form)."""
    return json.dumps(value).encode("ascii")


def field(values: st.SearchStrategy) -> st.SearchStrategy:
    """A field's value: usually one of `values`, sometimes anything at all."""
    return st.one_of(values, values, values, JSON)


WORDS = st.text(CHAR, min_size=1, max_size=40)
MESSAGE = st.fixed_dictionaries(
    {"role": field(st.sampled_from(["user", "assistant", "system", "tool"])),
     "content": field(TEXT | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}), max_size=2))})
OPTIONS = {"stream": field(st.booleans()), "max_tokens": field(st.integers(1, 50)), "as_of": field(TEXT),
           "retrieval": field(st.booleans()), "n": field(st.just(1)),
           "stream_options": field(st.just({"include_usage": True}))}
# a well-formed request whose strings are random (the question goes all the way to the model) ...
CHAT = st.builds(
    lambda earlier, question, opts: {"model": "knowd", "messages": [*earlier, {"role": "user", "content": question}], **opts},
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": TEXT}), max_size=2),
    WORDS, st.fixed_dictionaries({}, optional={k: v for k, v in OPTIONS.items() if k in ("stream", "as_of")}),
)
# ... and one whose every field may be of any type
CHAT_ANY = st.fixed_dictionaries(
    {"model": field(st.just("knowd")), "messages": field(st.lists(MESSAGE, min_size=1, max_size=3))}, optional=OPTIONS)
DOCUMENT = st.fixed_dictionaries(
    {"text": WORDS},
    optional={"id": TEXT | st.integers(), "title": TEXT, "url": TEXT, "author": TEXT, "source": TEXT,
              "time": st.dates().map(str) | TEXT, "extra": JSON},
)
DOCUMENT_ANY = st.fixed_dictionaries(
    {"text": field(WORDS)},
    optional={"id": field(TEXT | st.integers()), "title": field(TEXT), "url": field(TEXT), "author": field(TEXT),
              "source": field(TEXT), "time": field(st.dates().map(str) | TEXT), "type": field(st.just("document")),
              "extra": JSON},
)


def body(good: st.SearchStrategy, any_shape: st.SearchStrategy) -> st.SearchStrategy:
    """Request bodies: mostly well-formed with random strings, else mistyped fields, any
    JSON, nesting up to 150,000 deep, random bytes."""
    return st.one_of(good.map(dumps), good.map(dumps), good.map(dumps), any_shape.map(dumps),
                     JSON.map(dumps), DEEP, st.binary(max_size=64))


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        assert '"server_error"' not in r.text, r.text[-500:]  # an internal error inside a 200 stream
    elif r.status_code >= 400:
        assert r.json()["error"]["message"]


def still_serving(url: str) -> None:
    r = httpx.post(url + "/v1/chat/completions", json={"model": "knowd", "messages": QUESTION}, timeout=20)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith(JOHN), r.text


# ----------------------------------------------------------------------------- the properties
def test_chat_completions(url):
    @FUZZ
    @given(body(CHAT, CHAT_ANY | CHAT_ANY.map(lambda b: [b])))
    def prop(content: bytes) -> None:
        check(httpx.post(url + "/v1/chat/completions", content=content, timeout=20,
                         headers={"content-type": "application/json"}))

    prop()
    still_serving(url)


def test_documents(url):
    @FUZZ
    @given(body(DOCUMENT | st.lists(DOCUMENT, min_size=1, max_size=3), DOCUMENT_ANY | st.lists(DOCUMENT_ANY, max_size=3)))
    def prop(content: bytes) -> None:
        check(httpx.post(url + "/v1/documents", content=content, timeout=20, headers={"content-type": "application/json"}))

    prop()
    still_serving(url)


def segment(s: str) -> str:
    """A path segment or query value with every byte percent-encoded (lone surrogates
    become bytes that are not UTF-8, as a broken client would send)."""
    return quote(s.encode("utf-8", "surrogatepass"), safe="")


GETS = st.one_of(
    st.builds(lambda q, a, al, lim: f"/v1/facts?query={segment(q)}&as_of={segment(a)}&all={segment(al)}&limit={segment(lim)}",
              TEXT, TEXT, st.sampled_from(["true", "false"]) | TEXT, st.integers(-5, 2000).map(str) | TEXT),
    st.builds(lambda q: f"/v1/facts?query={segment(q)}", TEXT),
    st.builds(lambda i: f"/v1/facts/{segment(i)}", TEXT.filter(bool)),
    st.builds(lambda i: f"/v1/facts/{segment(i)}/history", TEXT.filter(bool)),
    st.builds(lambda i, p: f"/v1/documents/{segment(i)}/operations?prompts={segment(p)}", TEXT.filter(bool), TEXT),
    st.builds(lambda i: f"/v1/models/{segment(i)}", TEXT.filter(bool)),
    st.sampled_from(["/v1/status", "/v1/models", "/v1/facts?all=true", "/v1/nothing"]),
)


def test_get_endpoints(url):
    @FUZZ
    @given(GETS)
    def prop(path: str) -> None:
        check(httpx.get(url + path, timeout=20))

    prop()
    still_serving(url)


ADMIN_POSTS = st.one_of(
    st.builds(lambda i: f"/v1/documents/{segment(i)}/revert", TEXT.filter(bool)),
    st.builds(lambda i: f"/v1/inbox/{segment(i)}/retry", TEXT.filter(bool) | st.integers(-5, 10**30).map(str)),
)


def test_admin_posts(url):
    """Revert and retry with any id, with or without a body: below 500."""

    @FUZZ
    @given(ADMIN_POSTS, st.binary(max_size=64))
    def prop(path: str, content: bytes) -> None:
        check(httpx.post(url + path, content=content, timeout=20))

    prop()
    still_serving(url)


def test_the_issues_bodies_with_the_bundled_embedder(cfg, fake_llm):
    """The two bodies of the issue, against the real MiniLM embedder (the TypeError was its
    tokeniser's): 400 for the nesting, a normal answer for NUL + lone surrogate."""
    from agent.app import App
    from agent.embeddings import MiniLMEmbedder

    app = App(cfg, llm=fake_llm, embedder=MiniLMEmbedder())
    seed_northwind(app)
    fake_llm.responder = answer_citing(JOHN)
    h = start_server(app, "127.0.0.1", 0)
    try:
        r = httpx.post(h.url + "/v1/chat/completions", content=nested(100_000, "["), timeout=20)
        assert r.status_code == 400 and "nested more than 64 levels" in r.json()["error"]["message"]
        weird = dumps({"model": "knowd", "messages": [{"role": "user", "content": "\u0000\ud800 Who is the CEO of Northwind?"}]})
        r = httpx.post(h.url + "/v1/chat/completions", content=weird, timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"].startswith(JOHN)
        assert "\ufffd Who is the CEO of Northwind?" in fake_llm.calls[-1].prompt  # what reached the model
        still_serving(h.url)
    finally:
        h.stop()
        app.close()


# ----------------------------------------------------------------------------- console and MCP
CONSOLE_GETS = st.one_of(
    st.builds(lambda q, a, al: f"/console/facts?q={segment(q)}&as_of={segment(a)}&all={segment(al)}", TEXT, TEXT, TEXT),
    st.builds(lambda i: f"/console/facts/{segment(i)}", TEXT.filter(bool)),
    st.builds(lambda i: f"/console/document?id={segment(i)}", TEXT),
    st.builds(lambda i: f"/console/consolidation/runs/{segment(i)}/", TEXT.filter(bool)),
    st.builds(lambda i, n: f"/console/consolidation/runs/{segment(i)}/{segment(n)}", TEXT.filter(bool), TEXT.filter(bool)),
    st.sampled_from(["/console/", "/console/documents", "/console/connectors", "/console/consolidation", "/console/chat"]),
)
FORM = st.dictionaries(st.sampled_from(["id", "doc_id", "q", "question", "version", "name", "kind", "url", "csrf", "as_of"]),
                       TEXT, max_size=4)
CONSOLE_POSTS = st.sampled_from(["/console/document/revert", "/console/inbox/retry", "/console/connectors/add",
                                 "/console/connectors/test", "/console/connectors/pause", "/console/consolidation/ship",
                                 "/console/consolidation/rollback", "/console/chat", "/console/chat/forget", "/console/login"])


def test_console_pages_and_forms(url):
    """The review console: random paths, queries and form posts (no CSRF token, a wrong
    one, random fields) answer below 500; pages are HTML, so only the status is checked."""

    @FUZZ
    @given(CONSOLE_GETS, CONSOLE_POSTS, FORM | st.binary(max_size=64))
    def prop(path: str, post: str, form: dict[str, str] | bytes) -> None:
        r = httpx.get(url + path, timeout=20)
        assert r.status_code < 500, (path, r.text[:300])
        if isinstance(form, bytes):
            r = httpx.post(url + post, content=form, timeout=20, headers={"content-type": "application/x-www-form-urlencoded"})
        else:
            enc = {k: v.encode("utf-8", "surrogatepass") for k, v in form.items()}
            r = httpx.post(url + post, data=enc, timeout=20, headers={"origin": url})
        assert r.status_code < 500, (post, r.text[:300])

    prop()
    still_serving(url)


JSONRPC = st.fixed_dictionaries(
    {"jsonrpc": field(st.just("2.0")), "id": field(st.integers(0, 9)),
     "method": field(st.sampled_from(["initialize", "tools/list", "tools/call", "ping", "nothing"]))},
    optional={"params": field(st.fixed_dictionaries({"name": field(st.sampled_from(
        ["search_facts", "fact_history", "ask", "add_document", "nope"])), "arguments": JSON}))},
)


def test_mcp_endpoint(url):
    """Streamable HTTP MCP at /mcp: random JSON-RPC (any tool, any arguments), any JSON,
    deep nesting, random bytes: never a 500."""

    @FUZZ
    @given(body(JSONRPC, JSONRPC | st.lists(JSONRPC, max_size=3)))
    def prop(content: bytes) -> None:
        r = httpx.post(url + "/mcp", content=content, timeout=20,
                       headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
        assert r.status_code < 500, r.text[:500]

    prop()
    still_serving(url)

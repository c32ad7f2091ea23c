"""The HTTP API: OpenAI-compatible chat plus JSON endpoints over the fact store.

    POST /v1/chat/completions         OpenAI chat (stream true: SSE chunks, then `data: [DONE]`);
                                      extension fields: `as_of` (a date/period) in the body,
                                      `retrieval: false` (closed book: the model's weights alone)
    POST /v1/documents                push ingest: one document object or an array of them
                                      (the JSONL schema of `knowd ingest`), written to the
                                      durable inbox before the 202; the daemon ingests them
    GET  /v1/models, /v1/models/{id}  the served model, with the live LoRA adapter
    GET  /v1/facts?query=&as_of=&all= facts true now / at a time / all, optionally by relevance
    GET  /v1/facts/{id}[/history]     one fact and its true/false history with sources
    GET  /v1/documents/{id}/operations what a document changed, with the model output behind it
    GET  /v1/status                   fact and inbox counts, model, live adapter

Security: the server listens on 127.0.0.1 unless told otherwise; any other address
needs a bearer token (server.token, or the variable named by server.token_env),
and once a token is configured every request must carry it. Errors are OpenAI-style
JSON (`{"error": {"message", "type", "param", "code"}}`) with a 4xx status; no input
gives a 500 (JSON bodies are read by `parse_json_body`: bounded depth, clean text).

Model use is serialised on one worker thread: the LLM is not thread-safe, and the
llama backend's lock must be released by the thread that took it, which a streaming
generator advanced from Starlette's thread pool would not guarantee. A client that
disconnects mid-stream stops the generation at the next token.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.config import Config, ServerConfig
from agent.console import build_console
from agent.errors import BackendError, KnowdError
from agent.inputs import FieldError, clean_text, document_from_object
from agent.logging_setup import log_event
from graphs.chat import ChatAgent, ChatError, ChatResult, Turn, UsedFact, citation_lines
from graphs.time_intent import TimeIntent, parse_as_of
from stores.sqlite import Store, fmt_time
from stores.types import Document, Fact, utcnow

if TYPE_CHECKING:
    from agent.app import App

log = logging.getLogger(__name__)


class ServerError(KnowdError):
    """The server cannot start as configured (no token for a public address, port in use)."""


class ApiError(Exception):
    """An error answered to the client as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _error_response(e: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse(_error_body(e.message, e.type, e.code, e.param), status_code=e.status, headers=headers)


# ----------------------------------------------------------------------------- security
def resolve_token(cfg: ServerConfig) -> str | None:
    """The bearer token: config first, then the environment variable it names."""
    return cfg.token or os.environ.get(cfg.token_env) or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None, token_env: str) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ServerError(
            f"refusing to listen on {host} without a bearer token: set server.token in config.yaml "
            f"or the {token_env} environment variable (or listen on 127.0.0.1)"
        )


# ----------------------------------------------------------------------------- model worker
class ModelWorker:
    """One thread for everything that runs the LLM or the embedder (see module docstring)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowd-model")

    def submit(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Future:
        return self._pool.submit(fn, *args, **kw)

    async def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.wrap_future(self.submit(fn, *args, **kw))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------- request parsing
@dataclass
class ChatRequest:
    model: str
    question: str
    history: list[Turn]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    as_of: str | None
    retrieval: bool | None = None


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or a list of {"type": "text", "text": ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise ApiError(400, f"{where}: only text content parts are supported", param=where)
            parts.append(p["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise ApiError(400, f"{where}: content must be a string or a list of text parts", param=where)


def _strip_sources(answer: str) -> str:
    """An assistant message sent back by a client, without the sources block we appended."""
    return answer.split("\n\nSources:\n", 1)[0].strip()


def parse_chat_request(body: Any, served: str) -> ChatRequest:
    """Validate an OpenAI chat-completions body (400 on anything malformed)."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    model = body.get("model", served)
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' must be a non-empty string", param="model")
    if model != served:
        raise ApiError(404, f"The model '{model}' does not exist (this server serves '{served}')", code="model_not_found", param="model")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' is required and must be a non-empty list", param="messages")
    turns: list[Turn] = []
    pending: str | None = None
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
        role, text = m["role"], _text(m.get("content"), f"messages[{i}].content")
        if role == "user":
            if pending is not None:
                turns.append(Turn(pending, ""))
            pending = text
        elif role == "assistant":
            if pending is not None:
                turns.append(Turn(pending, _strip_sources(text)))
                pending = None
        elif role not in ("system", "developer", "tool", "function"):
            raise ApiError(400, f"messages[{i}].role {role!r} is not one of system, developer, user, assistant, tool", param=f"messages[{i}].role")
    if pending is None or not pending.strip():
        raise ApiError(400, "the last message must be a non-empty user message", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", param="stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise ApiError(400, "'max_tokens' must be a positive integer", param="max_tokens")
    as_of = body.get("as_of")
    if as_of is not None and not isinstance(as_of, str):
        raise ApiError(400, "'as_of' must be a date string such as 2021-05-01", param="as_of")
    retrieval = body.get("retrieval")
    if retrieval is not None and not isinstance(retrieval, bool):
        raise ApiError(400, "'retrieval' must be true or false (false: answer from the model's weights alone)", param="retrieval")
    return ChatRequest(model, pending, turns, stream, bool(opts.get("include_usage")), mt, as_of, retrieval)


MAX_JSON_DEPTH = 64  # arrays/objects inside each other; no body of this API needs a tenth of it


def parse_json_body(raw: bytes, *, clean: bool = True) -> Any:
    """A request body as JSON, or ApiError 400; with `clean`, every string in it (keys too)
    passed through `clean_text`.

    * Malformed JSON, a body that is not UTF-8 (or UTF-16/32), an integer past Python's
      4300-digit limit: 400 "not valid JSON".
    * Nesting: deeper than MAX_JSON_DEPTH levels is 400. Python's parser recurses per
      level, so `[[[[...` 100,000 deep raised RecursionError (a 500); the depth is checked
      again after parsing, iteratively, because a body just under the parser's limit would
      overflow later recursive code (`json.dumps` of a document's `meta`, pydantic).
    * NUL characters and lone surrogates (`"\\u0000\\ud800 Who?"`: valid JSON escapes) are
      sanitised, not refused: NULs are dropped and each lone surrogate becomes U+FFFD,
      and the request is answered normally. No consumer of the text can take them (SQLite,
      the MiniLM tokeniser, which raised TypeError, a 500; llama.cpp's UTF-8 tokeniser),
      yet they carry no meaning a client could want kept: a question pasted with a stray
      control byte is still the question. Refusing them would fail whole requests (or
      whole document batches) over one invisible character. `POST /v1/documents` reads
      its body with `clean=False`: `document_from_object` cleans each text field itself
      and refuses (422) such an id rather than change it, since two ids could become one.
    """
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"request body is nested more than {MAX_JSON_DEPTH} levels deep", code="too_deep") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ApiError(400, f"request body is not valid JSON: {e}") from None
    if isinstance(body, str):
        return clean_text(body) if clean else body
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"request body is nested more than {MAX_JSON_DEPTH} levels deep", code="too_deep")
        if isinstance(node, dict):
            if clean and any(clean_text(k) != k for k in node):
                items = [(clean_text(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            keys: Any = list(node)
        elif isinstance(node, list):
            keys = range(len(node))
        else:
            continue
        for k in keys:
            v = node[k]
            if isinstance(v, str):
                if clean:
                    node[k] = clean_text(v)
            elif isinstance(v, (dict, list)):
                stack.append((v, depth + 1))
    return body


def parse_documents(body: Any, max_document_bytes: int) -> list[Document]:
    """The documents of a `POST /v1/documents` body: one document object or a non-empty
    array of them, each read by `agent.inputs.document_from_object` (the JSONL schema of
    `knowd ingest`). All are checked before any is queued. 422 names the bad field
    (`documents[3].title`); a text over `ingest.max_document_bytes` is 413."""
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list):
        raise ApiError(422, "request body must be a document object or an array of document objects",
                       code="invalid_document")
    if not items:
        raise ApiError(422, "request body is an empty array: no documents", code="invalid_document")
    docs = []
    for i, obj in enumerate(items):
        where = "document" if single else f"documents[{i}]"
        try:
            doc = document_from_object(obj, where, source="api")
        except FieldError as e:
            raise ApiError(422, str(e), code="invalid_document", param=f"{where}.{e.field}" if e.field else where) from None
        if doc is None:  # a benchmark stream's question line: not something to post
            raise ApiError(422, f'{where}: \'type\' must be "document" (only documents can be posted)',
                           code="invalid_document", param=f"{where}.type")
        size = len(doc.text.encode("utf-8"))
        if size > max_document_bytes:
            raise ApiError(413, f"{where}: text of {size:,} bytes is over the {max_document_bytes:,}-byte limit "
                           "(ingest.max_document_bytes); split it", code="document_too_large", param=f"{where}.text")
        docs.append(doc)
    return docs


def enqueue_documents(store: Store, docs: list[Document]) -> list[bool]:
    """Write `docs` to the durable inbox in one transaction, committed (synchronous=FULL)
    before this returns; per document, whether it was new. The inbox is unique on
    (id, content hash): the same document again is a duplicate and not queued; the same
    id with another title or text is a new version, queued like an edited feed entry."""
    with store.transaction() as c:
        return [store.enqueue(c, d, "api") for d in docs]


async def _read_body(request: Request, limit: int, key: str = "server.max_request_bytes") -> bytes:
    """The request body, or 413 past `limit` bytes. An oversized body is drained (up to a
    hard cap) rather than cut off, so the client reads a clean 413 instead of a reset."""
    declared = request.headers.get("content-length")
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    hard_cap = 16 * limit
    buf = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > hard_cap:
            break
        if not too_big:
            buf += chunk
            too_big = seen > limit
    if too_big:
        raise ApiError(413, f"request body is over the {limit:,}-byte limit ({key})", code="request_too_large")
    return bytes(buf)


# ----------------------------------------------------------------------------- JSON views
def fact_json(f: Fact, as_of: datetime | None = None, docs: Callable[[str], Any] | None = None) -> dict[str, Any]:
    hist = []
    for h in f.history:
        e: dict[str, Any] = {"time": fmt_time(h.time), "truth": h.truth, "doc_id": h.doc_id, "op": h.op, "reverted": h.reverted}
        if docs is not None and h.doc_id:
            d = docs(h.doc_id)
            e["document"] = {"title": d.title, "url": d.url, "source": d.source} if d else None
        hist.append(e)
    return {
        "id": f.id, "text": f.text, "subject": f.subject, "relation": f.relation, "object": f.object,
        "true": f.truth_at(as_of), "supersedes": f.supersedes, "history": hist,
    }


def used_fact_json(u: UsedFact) -> dict[str, Any]:
    return {"n": u.n, "id": u.id, "text": u.text, "note": u.note, "true_now": u.true_now,
            "sources": [asdict(s) for s in u.sources]}


def adapter_status(app: App) -> dict[str, Any]:
    """The live adapter as the trainer published it (live.json), and as the loaded backend has it."""
    from trainer.adapters import live_path

    path = live_path(app.cfg.data_path)
    try:
        live = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        live = None
    except (OSError, json.JSONDecodeError) as e:
        live = {"error": f"unreadable live.json: {e}"}
    llm = app.__dict__.get("llm")  # never load the model just to report on it
    loaded = getattr(llm, "adapter", None) if llm is not None else None
    version = (loaded or {}).get("version") or (live or {}).get("version")
    return {"version": version, "live": live, "loaded": loaded, "model_loaded": llm is not None}


def _base_model(cfg: Config) -> str:
    if cfg.llm.backend == "openai":
        return cfg.llm.openai.model
    return os.path.basename(cfg.llm.model_path) if cfg.llm.model_path else "gemma-3-270m-q4_k_m.gguf (bundled)"


def _parse_as_of(value: str | None, now: datetime) -> TimeIntent | None:
    try:
        return parse_as_of(value, now)
    except ValueError as e:
        raise ApiError(400, str(e), param="as_of") from None


# ----------------------------------------------------------------------------- the app
def create_app(app: App) -> FastAPI:
    """The FastAPI application over `app` (its store, index and LLM)."""
    cfg = app.cfg
    scfg = cfg.server
    token = resolve_token(scfg)
    served = scfg.model_name
    worker = ModelWorker()
    agent = ChatAgent(app, cfg.chat)
    started = int(time.time())
    _ = app.store  # built here, once: lazy construction from several threads could race

    async def auth(request: Request) -> None:
        if token is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer ...)", "authentication_error", "invalid_api_key")

    api = FastAPI(title="knowd", version="0.1.0", dependencies=[Depends(auth)], docs_url=None, redoc_url=None, openapi_url=None)
    api.state.worker = worker
    api.state.agent = agent
    # the review console (HTML pages, its own login and CSRF checks): agent/console.py
    api.mount("/console", build_console(app, worker=worker, agent=agent, token=token))
    from agent.mcp_server import Backend, mount_mcp  # MCP over streamable HTTP at /mcp (docs/mcp.md)
    mount_mcp(api, Backend(app, agent, worker.run, parse_documents, enqueue_documents, ApiError), token)

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error_response(e)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return _error_response(ApiError(e.status_code, str(e.detail), kind))

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_response(ApiError(400, f"{where}: {first.get('msg', 'invalid request')}", param=where or None))

    @api.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(_error_body(f"internal error: {type(e).__name__}", "server_error"), status_code=500)

    def model_card() -> dict[str, Any]:
        return {"id": served, "object": "model", "created": started, "owned_by": "knowd",
                "base_model": _base_model(cfg), "adapter": adapter_status(app)}

    @api.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @api.get("/v1/models/{model_id}")
    def get_model(model_id: str) -> dict[str, Any]:
        if model_id != served:
            raise ApiError(404, f"The model '{model_id}' does not exist", "invalid_request_error", "model_not_found")
        return model_card()

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        raw = await _read_body(request, scfg.max_request_bytes)
        req = parse_chat_request(parse_json_body(raw), served)
        default_time = _parse_as_of(req.as_of, utcnow())
        if len(req.question) > cfg.chat.max_question_chars:
            raise ApiError(400, f"question is over {cfg.chat.max_question_chars:,} characters (chat.max_question_chars)",
                           code="context_length_exceeded", param="messages")
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        ask = dict(history=req.history, default_time=default_time, max_tokens=req.max_tokens, retrieval=req.retrieval)
        if not req.stream:
            try:
                r, usage = await worker.run(_answer, app, agent, req.question, ask, None, None)
            except ChatError as e:
                raise ApiError(400, str(e)) from None
            except BackendError as e:
                raise ApiError(503, f"the model backend failed: {e}", "server_error", "backend_error") from None
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": served,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(r, scfg.append_sources)},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": usage, "knowd": _extras(r, app),
            }
        return StreamingResponse(
            _sse(app, agent, worker, req, ask, cid, created, served, scfg.append_sources),
            media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.post("/v1/documents")
    async def post_documents(request: Request) -> JSONResponse:
        raw = await _read_body(request, scfg.max_documents_bytes, "server.max_documents_bytes")
        docs = parse_documents(parse_json_body(raw, clean=False), cfg.ingest.max_document_bytes)
        new = await asyncio.to_thread(enqueue_documents, app.store, docs)
        queued = sum(new)
        log_event(log, "documents_posted", documents=len(docs), queued=queued, duplicates=len(docs) - queued)
        return JSONResponse({
            "object": "list", "ids": [d.id for d in docs], "queued": queued, "duplicates": len(docs) - queued,
            "data": [{"id": d.id, "status": "queued" if n else "duplicate", "content_hash": d.content_hash}
                     for d, n in zip(docs, new)],
        }, status_code=202)

    @api.get("/v1/facts")
    async def list_facts(query: str | None = None, as_of: str | None = None, all: bool = False, limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000", param="limit")
        when = _parse_as_of(as_of, utcnow())
        t = when.end if when else None
        if query:
            from graphs.retrieval import hybrid_search

            hits = await worker.run(
                hybrid_search, app.store, app.index, query, limit,
                as_of=t, since=when.start if when else None, include_stale=all,
            )
            facts = [dict(fact_json(h.fact, t), score=h.score, similarity=h.dense) for h in hits]
        else:
            found = await asyncio.to_thread(app.store.list_facts, current_only=not all, as_of=None if all else t)
            facts = [fact_json(f, t) for f in found[:limit]]
        return {"as_of": fmt_time(t), "all": all, "query": query, "facts": facts}

    def _one_fact(fact_id: str) -> dict[str, Any]:
        f = app.store.get_fact(fact_id)
        if f is None:
            raise ApiError(404, f"no fact {fact_id!r}", "not_found_error", "fact_not_found")
        cache: dict[str, Any] = {}

        def doc(d: str) -> Any:
            if d not in cache:
                cache[d] = app.store.get_document(d)
            return cache[d]

        return fact_json(f, None, doc)

    @api.get("/v1/facts/{fact_id}")
    def get_fact(fact_id: str) -> dict[str, Any]:
        return _one_fact(fact_id)

    @api.get("/v1/facts/{fact_id}/history")
    def fact_history(fact_id: str) -> dict[str, Any]:
        f = _one_fact(fact_id)
        return {"id": f["id"], "text": f["text"], "true": f["true"], "history": f["history"]}

    @api.get("/v1/documents/{doc_id}/operations")
    def document_operations(doc_id: str, prompts: bool = False) -> dict[str, Any]:
        st = app.store.document_status(doc_id)
        if st is None:
            raise ApiError(404, f"no document {doc_id!r}", "not_found_error", "document_not_found")
        doc = app.store.get_document(doc_id)
        ops = []
        for o in app.store.operations(doc_id):
            e: dict[str, Any] = {"id": o.id, "op": o.op, "fact_id": o.fact_id, "before": o.before, "after": o.after,
                                 "time": fmt_time(o.time), "detail": o.detail, "reverted": o.reverted, "model_call": None}
            call = app.store.model_call(o.model_io_ref) if o.model_io_ref is not None else None
            if call:
                e["model_call"] = {"id": call["id"], "step": call["step"], "model": call["model"], "output": call["output"],
                                   "error": call["error"], **({"prompt": call["prompt"]} if prompts else {})}
            ops.append(e)
        meta = {"title": doc.title, "url": doc.url, "source": doc.source, "published_at": fmt_time(doc.published_at)} if doc else {}
        return {"document": {**st, **meta}, "operations": ops}

    @api.get("/v1/status")
    def status() -> dict[str, Any]:
        llm = app.__dict__.get("llm")
        return {
            "facts": app.store.count_facts(),
            "inbox": app.store.inbox_counts(),
            "adapter": adapter_status(app),
            "model": {"id": served, "base_model": _base_model(cfg), "loaded": llm is not None,
                      "usage": llm.meter.snapshot() if llm is not None else None},
            "time": fmt_time(utcnow()),
        }

    return api


def _answer(app: App, agent: ChatAgent, question: str, ask: dict[str, Any],
            on_token: Callable[[str], None] | None, should_stop: Callable[[], bool] | None) -> tuple[ChatResult, dict[str, int]]:
    """Runs on the model worker: the answer, and token usage for the OpenAI response."""
    r = agent.ask(question, on_token=on_token, should_stop=should_stop, **ask)
    llm = app.__dict__.get("llm")  # "I don't know" answers load no model; estimate instead

    def count(text: str) -> int:
        return (llm.count_tokens(text) if llm is not None else max(1, len(text) // 4)) if text else 0

    pt, ct = count(question), count(r.answer)
    return r, {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


def _content(r: ChatResult, with_sources: bool) -> str:
    if not with_sources or not r.citations:
        return r.answer
    return r.answer + _sources_block(r)


def _sources_block(r: ChatResult) -> str:
    return "\n\nSources:\n" + "\n".join(citation_lines(r.citations)) if r.citations else ""


def _extras(r: ChatResult, app: App) -> dict[str, Any]:
    """Non-OpenAI fields (clients ignore them): the time asked about and the citations."""
    return {
        "mode": r.intent.mode, "as_of": fmt_time(r.intent.end), "known": r.known,
        "citations": [used_fact_json(u) for u in r.citations],
        "adapter": adapter_status(app)["version"],
    }


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(body)}\n\n"


async def _sse(
    app: App, agent: ChatAgent, worker: ModelWorker, req: ChatRequest, ask: dict[str, Any],
    cid: str, created: int, model: str, with_sources: bool,
) -> AsyncIterator[str]:
    """OpenAI streaming: a role chunk, content chunks as tokens arrive, the sources, a
    finish chunk, optionally usage, then [DONE]. The generation runs on the model
    worker; tokens cross to the event loop through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (server shutting down): nobody is listening
            stop.set()

    def job() -> None:
        try:
            put(("done", _answer(app, agent, req.question, ask, lambda t: put(("token", t)), stop.is_set)))
        except BaseException as e:  # noqa: BLE001 - reported to the client, the worker lives on
            put(("error", e))

    yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
    worker.submit(job)
    try:
        while True:
            kind, val = await queue.get()
            if kind == "token":
                if val:
                    yield _chunk(cid, created, model, {"content": val})
                continue
            if kind == "error":
                msg = str(val) if isinstance(val, (KnowdError,)) else f"internal error: {type(val).__name__}"
                if not isinstance(val, KnowdError):
                    log.error("chat stream failed", exc_info=val)
                yield f"data: {json.dumps(_error_body(msg, 'server_error' if not isinstance(val, ChatError) else 'invalid_request_error'))}\n\n"
                yield "data: [DONE]\n\n"
                return
            r, usage = val
            if with_sources and r.citations:
                yield _chunk(cid, created, model, {"content": _sources_block(r)})
            yield _chunk(cid, created, model, {}, "stop", knowd=_extras(r, app))
            if req.include_usage:
                yield f"data: {json.dumps({'id': cid, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
            return
    finally:
        stop.set()  # the client went away (or we are done): stop generating at the next token


# ----------------------------------------------------------------------------- running
@dataclass
class ServerHandle:
    """A server running in a background thread; `stop()` shuts it down."""

    host: str
    port: int
    server: Any  # uvicorn.Server
    thread: threading.Thread
    api: FastAPI

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.api.state.worker.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise ServerError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _prepare(app: App, host: str | None, port: int | None) -> tuple[Any, socket.socket, FastAPI, str]:
    import uvicorn

    scfg = app.cfg.server
    host = host or scfg.host
    port = scfg.port if port is None else port
    check_bind(host, resolve_token(scfg), scfg.token_env)
    sock = _bind(host, port)
    api = create_app(app)
    config = uvicorn.Config(api, log_level="warning", access_log=False, timeout_graceful_shutdown=5, lifespan="off")
    return uvicorn.Server(config), sock, api, host


def start_server(app: App, host: str | None = None, port: int | None = None) -> ServerHandle:
    """Serve the API from a background thread (the daemon calls this). Port 0 = any free port."""
    server, sock, api, host = _prepare(app, host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="knowd-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise ServerError(f"the HTTP server did not start on {host}:{sock.getsockname()[1]}")
        time.sleep(0.02)
    return ServerHandle(host, sock.getsockname()[1], server, thread, api)


def serve_forever(app: App, host: str | None = None, port: int | None = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (`knowd serve`)."""
    server, sock, api, host = _prepare(app, host, port)
    port = sock.getsockname()[1]
    if on_ready is not None:
        on_ready(f"http://{f'[{host}]' if ':' in host else host}:{port}")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it shut down on; for `knowd serve` that is a normal stop
    finally:
        api.state.worker.shutdown()

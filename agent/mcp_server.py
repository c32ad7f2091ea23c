"""knowd as an MCP server (the Model Context Protocol, the official `mcp` SDK): four tools
over the fact store, for any MCP client (Claude Desktop, IDE agents, ...).

    search_facts   facts true now / at `as_of` for a query: id, text, valid from/to, sources
    fact_history   one fact's true/false timeline, each change with its document
    ask            the current-knowledge agent (graphs.chat.ChatAgent): an answer with citations
    add_document   push a document into the durable inbox, exactly as POST /v1/documents does

Two transports, one set of tools (`build_mcp`):

* stdio: `knowd mcp` (agent/cli/mcp.py) runs `run_stdio`; stdout carries only the protocol.
* streamable HTTP: `mount_mcp` puts the endpoint at `/mcp` on the daemon's FastAPI app
  (agent/server.py's `create_app`), on the API's port, behind the API's bearer token.

This module imports nothing of agent/server.py (which imports it): what the tools share
with the HTTP API comes in as a `Backend`: the App, the API's `ChatAgent`, the model
worker (one thread for everything that runs the LLM or the embedder) and the document
intake functions of `POST /v1/documents` (`parse_documents`, `enqueue_documents`).
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from agent.errors import BackendError
from agent.logging_setup import log_event
from graphs.chat import ChatAgent, ChatError, ChatResult, citation_lines, truth_runs
from graphs.time_intent import TimeIntent, parse_as_of
from stores.sqlite import Store, fmt_time
from stores.types import Document, Fact, utcnow

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agent.app import App

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
INSTRUCTIONS = (
    "knowd keeps a store of facts, each true or false over time, revised as documents arrive. "
    "search_facts finds facts true now (or at as_of); fact_history shows how one changed and why; "
    "ask answers a question from the facts, citing them; add_document queues a document for ingest."
)


# ----------------------------------------------------------------------------- what the tools run on
@dataclass
class Backend:
    """The pieces the tools share with the HTTP API.

    `run_model(fn, *args, **kw)` runs `fn` on the one model thread (agent.server.ModelWorker.run):
    the LLM is not thread-safe and the embedder is shared, so the tools that embed or
    generate go through it. `parse_documents` / `enqueue_documents` are agent.server's, the
    validation and the durable inbox write of `POST /v1/documents`; `parse_documents` raises
    `input_error` (agent.server.ApiError: `.status`, `.message`) for a bad document.
    """

    app: App
    agent: ChatAgent
    run_model: Callable[..., Awaitable[Any]]
    parse_documents: Callable[[Any, int], list[Document]]
    enqueue_documents: Callable[[Store, list[Document]], list[bool]]
    input_error: type[Exception]


# ----------------------------------------------------------------------------- tool results
class SourceOut(BaseModel):
    doc_id: str | None = Field(description="the document's id")
    title: str | None = None
    url: str | None = None
    date: str | None = Field(None, description="when the document made the change (ISO time)")
    truth: bool = Field(True, description="whether this document made the fact true (false: ended it)")


class FactOut(BaseModel):
    id: str = Field(description="the fact's id (fact_history takes it)")
    text: str
    true: bool | None = Field(description="true or false at the time asked about (null: not yet known then)")
    valid_from: str | None = Field(description="start of the period the fact is (or was last) true (ISO time)")
    valid_to: str | None = Field(description="end of that period; null: still true")
    sources: list[SourceOut] = Field(description="the documents that made the fact true in that period")
    score: float | None = Field(None, description="retrieval score (higher is more relevant)")


class SearchOut(BaseModel):
    query: str
    as_of: str | None = Field(description="the time searched (ISO); null: now")
    facts: list[FactOut]


class HistoryEntryOut(BaseModel):
    time: str = Field(description="since when the fact is `truth` (ISO time)")
    truth: bool
    op: str = Field(description="what changed it: add, supersede, end, reinforce, revert, ...")
    reverted: bool = Field(description="this change was undone (knowd revert) and no longer counts")
    document: SourceOut | None = Field(description="the document behind the change")


class HistoryOut(BaseModel):
    id: str
    text: str
    true: bool | None = Field(description="true or false now")
    supersedes: str | None = Field(description="the fact this one was rewritten from, if any")
    history: list[HistoryEntryOut] = Field(description="oldest first")


class CitationOut(BaseModel):
    n: int = Field(description="the [n] marker in the answer")
    id: str
    text: str
    note: str = Field(description="when the fact holds: 'since 2022-06-01', 'from ... until ...' or its history")
    true_now: bool
    sources: list[SourceOut]


class AnswerOut(BaseModel):
    answer: str
    mode: str = Field(description="the time asked about: now, as_of or history")
    as_of: str | None = Field(description="the end of the time asked about (ISO); null: now")
    known: bool = Field(description="false when nothing knowd knows is relevant (the answer says so)")
    citations: list[CitationOut]


class DocumentOut(BaseModel):
    id: str
    status: str = Field(description="queued (new, or a new version of the id) or duplicate (already queued)")
    content_hash: str


# ----------------------------------------------------------------------------- helpers
def _when(as_of: str | None) -> TimeIntent | None:
    """The time asked about, as `POST /v1/chat/completions`'s `as_of` reads it (None: now)."""
    try:
        return parse_as_of(as_of, utcnow())
    except ValueError as e:
        raise ToolError(f"as_of: {e}") from None


class _Docs:
    """Documents by id, read once per tool call."""

    def __init__(self, store: Store):
        self.store, self.cache = store, {}

    def source(self, doc_id: str | None, when: datetime | None, truth: bool = True) -> SourceOut | None:
        if doc_id is None:
            return None
        if doc_id not in self.cache:
            self.cache[doc_id] = self.store.get_document(doc_id)
        d = self.cache[doc_id]
        return SourceOut(doc_id=doc_id, title=d.title if d else None, url=d.url if d else None,
                         date=fmt_time(when), truth=truth)


def fact_out(f: Fact, docs: _Docs, start: datetime | None, end: datetime | None, score: float | None = None) -> FactOut:
    """A fact with the true period that overlaps [start, end] (end None: now), or else its
    latest true period, and the documents behind that period."""
    true_runs = [r for r in truth_runs(f) if r[0]]
    lo = start or end
    chosen = None
    for r in reversed(true_runs):
        _, s, u, _ = r
        if (end is None or s <= end) and (lo is None or u is None or u > lo):
            chosen = r
            break
    if chosen is None and true_runs:
        chosen = true_runs[-1]
    sources: list[SourceOut] = []
    if chosen is not None:
        seen: set[str] = set()
        for e in chosen[3]:
            if e.doc_id and e.doc_id not in seen:
                seen.add(e.doc_id)
                sources.append(docs.source(e.doc_id, e.time, e.truth))  # type: ignore[arg-type]
    return FactOut(
        id=f.id, text=f.text, true=f.truth_at(end),
        valid_from=fmt_time(chosen[1]) if chosen else None, valid_to=fmt_time(chosen[2]) if chosen else None,
        sources=sources, score=score,
    )


def answer_out(r: ChatResult) -> AnswerOut:
    return AnswerOut(
        answer=r.answer, mode=r.intent.mode, as_of=fmt_time(r.intent.end), known=r.known,
        citations=[CitationOut(n=u.n, id=u.id, text=u.text, note=u.note, true_now=u.true_now,
                               sources=[SourceOut(doc_id=s.doc_id, title=s.title, url=s.url, date=s.date, truth=s.truth)
                                        for s in u.sources])
                   for u in r.citations],
    )


# ----------------------------------------------------------------------------- the server
def build_mcp(backend: Backend) -> MCPServer:
    """The MCP server with knowd's tools over `backend` (either transport)."""
    app = backend.app
    store = app.store
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    mcp = MCPServer("knowd", title="knowd", version="0.1.0", instructions=INSTRUCTIONS, log_level="WARNING")
    root.setLevel(level)  # the SDK's constructor calls logging.basicConfig; knowd owns its logging
    root.handlers[:] = handlers
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @mcp.tool(annotations=read_only)
    async def search_facts(
        query: Annotated[str, Field(description="what to look for, e.g. 'CEO of Northwind'")],
        as_of: Annotated[str | None, Field(description="a date or period (2021-05-01, 'March 2022', 2022); default now")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="at most this many facts")] = 10,
        include_stale: Annotated[bool, Field(description="also facts no longer true")] = False,
    ) -> SearchOut:
        """Search knowd's facts (hybrid dense + keyword search): the facts true now, or at `as_of`,
        most relevant first, each with the period it is true and the documents behind it."""
        if not query.strip():
            raise ToolError("query: must not be empty")
        when = _when(as_of)
        start, end = (when.start, when.end) if when else (None, None)

        def run() -> SearchOut:
            from graphs.retrieval import hybrid_search

            hits = hybrid_search(store, app.index, query, limit, as_of=end, since=start, include_stale=include_stale)
            docs = _Docs(store)
            return SearchOut(query=query, as_of=fmt_time(end), facts=[fact_out(h.fact, docs, start, end, h.score) for h in hits])

        return await backend.run_model(run)  # embeds the query: the model thread

    @mcp.tool(annotations=read_only)
    async def fact_history(
        fact_id: Annotated[str, Field(description="a fact id, as search_facts or ask return it")],
    ) -> HistoryOut:
        """A fact's true/false timeline, oldest first: each change with the document that made it."""

        def run() -> HistoryOut:
            f = store.get_fact(fact_id)
            if f is None:
                raise ToolError(f"no fact {fact_id!r}")
            docs = _Docs(store)
            return HistoryOut(
                id=f.id, text=f.text, true=f.truth_at(None), supersedes=f.supersedes,
                history=[HistoryEntryOut(time=fmt_time(h.time), truth=h.truth, op=h.op, reverted=h.reverted,
                                         document=docs.source(h.doc_id, h.time, h.truth))
                         for h in sorted(f.history, key=lambda h: (h.time, h.op_id or 0))],
            )

        return await anyio.to_thread.run_sync(run)

    @mcp.tool(annotations=read_only)
    async def ask(
        question: Annotated[str, Field(description="a question about what knowd knows")],
        as_of: Annotated[str | None, Field(description="answer as of a date or period; default: the time the question names, else now")] = None,
    ) -> AnswerOut:
        """Ask knowd's current-knowledge agent: an answer from the facts true at the time asked
        about (a time in the question counts: 'in March 2022', 'what changed'), citing them as [n]."""
        when = _when(as_of)
        try:
            r = await backend.run_model(backend.agent.ask, question, default_time=when)
        except ChatError as e:
            raise ToolError(str(e)) from None
        except BackendError as e:
            raise ToolError(f"the model backend failed: {e}") from None
        out = answer_out(r)
        text = r.answer + ("\n\nSources:\n" + "\n".join(citation_lines(r.citations)) if r.citations else "")
        return CallToolResult(content=[TextContent(type="text", text=text)],  # type: ignore[return-value]
                              structured_content=out.model_dump(mode="json"))

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                          openWorldHint=False))
    async def add_document(
        text: Annotated[str, Field(description="the document's text")],
        id: Annotated[str | None, Field(description="a stable id; default api:<hash of the text>")] = None,
        title: str | None = None,
        url: str | None = None,
        time: Annotated[str | None, Field(description="ISO date or date-time its facts hold from; default: now")] = None,
        source: Annotated[str | None, Field(description="where it comes from; default 'api'")] = None,
    ) -> DocumentOut:
        """Queue a document for ingest, as POST /v1/documents does: it is in knowd's durable inbox
        when this returns, and the daemon (knowd run) revises the facts from it. The same id and
        text again is a duplicate and stores nothing; the same id with another text is a new version."""
        obj = {k: v for k, v in {"text": text, "id": id, "title": title, "url": url, "time": time,
                                 "source": source}.items() if v is not None}

        def run() -> tuple[Document, bool]:
            try:
                docs = backend.parse_documents(obj, app.cfg.ingest.max_document_bytes)
            except backend.input_error as e:
                raise ToolError(getattr(e, "message", str(e))) from None
            new = backend.enqueue_documents(store, docs)
            return docs[0], new[0]

        doc, new = await anyio.to_thread.run_sync(run)
        log_event(log, "documents_posted", documents=1, queued=int(new), duplicates=int(not new), via="mcp")
        return DocumentOut(id=doc.id, status="queued" if new else "duplicate", content_hash=doc.content_hash)

    return mcp


# ----------------------------------------------------------------------------- stdio
async def run_stdio(backend: Backend) -> None:
    """Serve the tools over stdin/stdout until the client closes stdin (`knowd mcp`).
    The SDK's stdio transport diverts file descriptor 1 to stderr while it runs, so a
    stray print (or a C library's) cannot corrupt the protocol."""
    await build_mcp(backend).run_stdio_async()


# ----------------------------------------------------------------------------- streamable HTTP
class McpEndpoint:
    """The ASGI app at /mcp: the API's bearer token, then the SDK's streamable HTTP handler.

    Stateless and JSON-answered: every POST carries one JSON-RPC message and gets its
    answer, no server-held session or open SSE stream (nothing to keep the daemon's
    shutdown waiting). The SDK's session manager needs a running task group, normally
    entered by the ASGI lifespan, which the daemon's uvicorn runs without
    (`lifespan="off"`): it is entered on the first request instead, in a task of the
    server's event loop, and cancelled with the loop when the server stops.
    """

    def __init__(self, mcp: MCPServer, token: str | None, max_body: int):
        self.token = token
        # DNS-rebinding protection: without a token the API listens on loopback only
        # (agent.server.check_bind), so a Host or Origin other than loopback is a web page's
        # trick. With a token, the token protects it and the daemon may have any host name.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ) if token is None else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        mcp.streamable_http_app(stateless_http=True, json_response=True, transport_security=security,
                                max_request_body_size=max_body)
        self.manager = mcp.session_manager
        self._started: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        got = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), "")
        scheme, _, value = got.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    async def _ensure_started(self) -> None:
        if self._started is None:  # first request; one event loop, so no lock is needed
            self._started = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._started), name="knowd-mcp")
        await self._started.wait()

    async def _run(self, started: asyncio.Event) -> None:
        try:
            async with self.manager.run():
                started.set()
                await asyncio.Event().wait()  # until the server's loop cancels this task
        finally:
            started.set()  # had it failed to start, requests would fail rather than wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorised(scope):  # before the body is read, like the API
            body = {"error": {"message": "missing or wrong bearer token (Authorization: Bearer ...)",
                              "type": "authentication_error", "param": None, "code": "invalid_api_key"}}
            await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self._ensure_started()
        await self.manager.handle_request(scope, receive, send)


def mount_mcp(api: FastAPI, backend: Backend, token: str | None) -> McpEndpoint:
    """Serve the tools over streamable HTTP at /mcp on `api` (agent.server.create_app calls this)."""
    scfg = backend.app.cfg.server
    endpoint = McpEndpoint(build_mcp(backend), token, max(scfg.max_documents_bytes, scfg.max_request_bytes))
    # A plain Starlette route: FastAPI's dependencies (the API's token check) do not run on
    # it, so the endpoint checks the same token itself.
    api.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    api.state.mcp = endpoint
    return endpoint

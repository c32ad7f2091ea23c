"""knowd's MCP tools over the service layer, and the scope each needs.

    search_facts   read    facts true now / at `as_of` for a query: id, text, valid from/to, sources
    fact_history   read    one fact's true/false timeline, each change with its document
    ask            read    the current-knowledge agent: an answer with citations
    add_document   write   push a document into the durable inbox, as POST /v1/documents does

`TOOL_SCOPES` is the one table both transports enforce: over HTTP the /mcp endpoint
refuses a call out of the token's scope with 403 before the SDK sees it (agent/mcp/http.py);
over stdio `knowd mcp --scope` fixes the caller's scope and each tool checks it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from agent.errors import BackendError, KnowdError
from agent.logging_setup import log_event
from agent.mcp.models import AnswerOut, DocumentOut, HistoryOut, SearchOut, answer_out, fact_out, history_out
from agent.security import Principal, Scope
from agent.service import Service
from agent.service import documents as documents_service
from agent.service import facts as facts_service
from agent.views import iso, sources_block
from graphs.chat import ChatError

log = logging.getLogger("agent.mcp")

INSTRUCTIONS = (
    "knowd keeps a store of facts, each true or false over time, revised as documents arrive. "
    "search_facts finds facts true now (or at as_of); fact_history shows how one changed and why; "
    "ask answers a question from the facts, citing them; add_document queues a document for ingest."
)
TOOL_SCOPES: dict[str, Scope] = {
    "search_facts": Scope.READ, "fact_history": Scope.READ, "ask": Scope.READ, "add_document": Scope.WRITE,
}

# Who is calling, for the scope check and the operations log, from the tool's context:
# over stdio the one fixed principal; over HTTP the token the /mcp endpoint checked.
CallerOf = Callable[[Context], Principal]


def _when(as_of: str | None):  # noqa: ANN202 - graphs.time_intent.TimeIntent | None
    try:
        return facts_service.when(as_of)
    except KnowdError as e:
        raise ToolError(f"as_of: {e}") from None


def _allowed(caller: CallerOf, ctx: Context, tool: str) -> Principal:
    who = caller(ctx)
    try:
        who.require(TOOL_SCOPES[tool], f"the {tool} tool")
    except KnowdError as e:
        raise ToolError(str(e)) from None
    return who


def build_mcp(svc: Service, caller: CallerOf) -> MCPServer:
    """The MCP server with knowd's tools over `svc` (either transport)."""
    app = svc.app
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    mcp = MCPServer("knowd", title="knowd", version="0.1.0", instructions=INSTRUCTIONS, log_level="WARNING")
    root.setLevel(level)  # the SDK's constructor calls logging.basicConfig; knowd owns its logging
    root.handlers[:] = handlers
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    @mcp.tool(annotations=read_only)
    async def search_facts(
        query: Annotated[str, Field(description="what to look for, e.g. 'CEO of Northwind'")],
        as_of: Annotated[str | None, Field(description="a date or period (2021-05-01, 'March 2022', 2022); "
                                                       "default now")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="at most this many facts")] = 10,
        include_stale: Annotated[bool, Field(description="also facts no longer true")] = False,
        ctx: Context = None,  # type: ignore[assignment]  # filled in by the SDK
    ) -> SearchOut:
        """Search knowd's facts (hybrid dense + keyword search): the facts true now, or at `as_of`,
        most relevant first, each with the period it is true and the documents behind it."""
        _allowed(caller, ctx, "search_facts")
        if not query.strip():
            raise ToolError("query: must not be empty")
        at = _when(as_of)
        found = await svc.model.run(facts_service.search, app, query, at=at, include_stale=include_stale,
                                    limit=limit, with_docs=True)  # embeds the query: the model thread
        return SearchOut(query=query, as_of=iso(at.end if at else None), facts=[fact_out(v) for v in found])

    @mcp.tool(annotations=read_only)
    async def fact_history(
        fact_id: Annotated[str, Field(description="a fact id, as search_facts or ask return it")],
        ctx: Context = None,  # type: ignore[assignment]
    ) -> HistoryOut:
        """A fact's true/false timeline, oldest first: each change with the document that made it."""
        _allowed(caller, ctx, "fact_history")
        try:
            v = await anyio.to_thread.run_sync(facts_service.get, app, fact_id)
        except KnowdError as e:
            raise ToolError(str(e)) from None
        return history_out(v)

    @mcp.tool(annotations=read_only)
    async def ask(
        question: Annotated[str, Field(description="a question about what knowd knows")],
        as_of: Annotated[str | None, Field(description="answer as of a date or period; default: the time the "
                                                       "question names, else now")] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> AnswerOut:
        """Ask knowd's current-knowledge agent: an answer from the facts true at the time asked
        about (a time in the question counts: 'in March 2022', 'what changed'), citing them as [n]."""
        _allowed(caller, ctx, "ask")
        at = _when(as_of)
        try:
            r = await svc.model.run(svc.agent.ask, question, default_time=at)
        except ChatError as e:
            raise ToolError(str(e)) from None
        except BackendError as e:
            raise ToolError(f"the model backend failed: {e}") from None
        return CallToolResult(content=[TextContent(type="text", text=r.answer + sources_block(r.citations))],  # type: ignore[return-value]
                              structured_content=answer_out(r).model_dump(mode="json"))

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True,
                                          openWorldHint=False))
    async def add_document(
        text: Annotated[str, Field(description="the document's text")],
        id: Annotated[str | None, Field(description="a stable id; default api:<hash of the text>")] = None,
        title: str | None = None,
        url: str | None = None,
        time: Annotated[str | None, Field(description="ISO date or date-time its facts hold from; "
                                                      "default: now")] = None,
        source: Annotated[str | None, Field(description="where it comes from; default 'api'")] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> DocumentOut:
        """Queue a document for ingest, as POST /v1/documents does: it is in knowd's durable inbox
        when this returns, and the daemon (knowd run) revises the facts from it. The same id and
        text again is a duplicate and stores nothing; the same id with another text is a new version."""
        who = _allowed(caller, ctx, "add_document")
        obj = {k: v for k, v in {"text": text, "id": id, "title": title, "url": url, "time": time,
                                 "source": source}.items() if v is not None}

        def run() -> tuple[object, bool]:
            try:
                docs = documents_service.parse_documents(obj, app.cfg.ingest.max_document_bytes)
            except KnowdError as e:
                raise ToolError(str(e)) from None
            return docs[0], documents_service.push(app, docs, who.name, "mcp")[0]

        doc, new = await anyio.to_thread.run_sync(run)
        log_event(log, "documents_posted", documents=1, queued=int(new), duplicates=int(not new), via="mcp",
                  actor=who.name)
        return DocumentOut(id=doc.id, status="queued" if new else "duplicate", content_hash=doc.content_hash)

    return mcp

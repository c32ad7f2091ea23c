"""MCP over streamable HTTP at /mcp on the API's port, behind the same tokens and scopes.

Stateless and JSON-answered: every POST carries JSON-RPC messages and gets their answer,
no server-held session or open SSE stream (nothing to keep the daemon's shutdown waiting).
The SDK's session manager needs a running task group, normally entered by the ASGI
lifespan, which the daemon's uvicorn runs without (`lifespan="off"`): it is entered on the
first request instead, in a task of the server's event loop, and cancelled with the loop
when the server stops.

Before the SDK sees a request, the endpoint checks the bearer token (401) and, for a
`tools/call`, that the token's scope covers the tool (agent/mcp/tools.py: TOOL_SCOPES);
a call out of scope is answered 403 and nothing runs.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from agent.mcp.tools import TOOL_SCOPES
from agent.security import Principal, Tokens

PRINCIPAL_KEY = "knowd_principal"  # in the ASGI scope's state: who called (the tools log the name)


def _error(status: int, message: str, type_: str, code: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}},
                        status_code=status, headers=headers)


def called_tools(body: bytes) -> list[str]:
    """The tool names of the `tools/call` messages in a JSON-RPC body (one message or a batch);
    a body that is not JSON is left to the SDK, which answers it with a JSON-RPC error."""
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return []
    msgs = msg if isinstance(msg, list) else [msg]
    out = []
    for m in msgs:
        if isinstance(m, dict) and m.get("method") == "tools/call":
            params = m.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            out.append(name if isinstance(name, str) else "")
    return out


class McpEndpoint:
    """The ASGI app at /mcp: the token and the tool's scope, then the SDK's handler."""

    def __init__(self, mcp: MCPServer, tokens: Tokens, max_body: int):
        self.tokens = tokens
        self.max_body = max_body
        # DNS-rebinding protection: without a token the API listens on loopback only
        # (agent.security.check_bind), so a Host or Origin other than loopback is a web page's
        # trick. With a token, the token protects it and the daemon may have any host name.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ) if not tokens.required else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        mcp.streamable_http_app(stateless_http=True, json_response=True, transport_security=security,
                                max_request_body_size=max_body)
        self.manager = mcp.session_manager
        self._started: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

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

    async def _read(self, receive: Receive) -> tuple[bytes, list[Message], bool]:
        """The request body (up to the size limit), the messages read, and whether it is whole."""
        body, messages, more = b"", [], True
        while more:
            m = await receive()
            messages.append(m)
            if m["type"] != "http.request":
                break
            body += m.get("body", b"")
            more = m.get("more_body", False)
            if len(body) > self.max_body:
                return body, messages, False
        return body, messages, True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        who: Principal | None = self.tokens.from_header(headers.get(b"authorization", b"").decode("latin-1"))
        if who is None:  # before the body is read, like the API
            await _error(401, "missing or wrong bearer token (Authorization: Bearer ...)", "authentication_error",
                         "invalid_api_key")(scope, receive, send)
            return
        if scope.get("method") == "POST":
            body, messages, whole = await self._read(receive)
            for tool in called_tools(body) if whole else []:
                needed = TOOL_SCOPES.get(tool)
                if needed is not None and not who.allows(needed):
                    msg = f"the {tool} tool needs a token with the {needed.label} scope; token {who.name!r} has " \
                          f"{who.scope.label}"
                    await _error(403, msg, "permission_error", "insufficient_scope")(scope, receive, send)
                    return
            receive = _replay(messages, receive)
        scope.setdefault("state", {})[PRINCIPAL_KEY] = who
        await self._ensure_started()
        await self.manager.handle_request(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the messages already read, then the rest of the stream."""
    pending = list(messages)

    async def again() -> Message:
        return pending.pop(0) if pending else await receive()

    return again


def principal_of(ctx: Any) -> Principal | None:
    """The caller of a tool running under this endpoint (from the request's ASGI state)."""
    req = getattr(getattr(ctx, "request_context", None), "request", None)
    state = getattr(req, "scope", {}).get("state", {}) if req is not None else {}
    return state.get(PRINCIPAL_KEY)

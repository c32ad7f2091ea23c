"""knowd as an MCP server (the Model Context Protocol, the official `mcp` SDK): four tools
over the fact store for any MCP client (Claude Desktop, IDE agents, ...). docs/mcp.md.

    tools.py    the tools (search_facts, fact_history, ask, add_document), each over the
                service layer, and the scope each needs
    models.py   their structured results, built from agent/views.py
    http.py     the /mcp endpoint (streamable HTTP): tokens and scopes, then the SDK

Two transports, one set of tools: `mount_mcp` serves them at /mcp on the API's port
(agent/serve.py calls it); `run_stdio` over stdin/stdout for `knowd mcp`, where stdout
carries only the protocol.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context
from starlette.routing import Route

from agent.mcp.http import McpEndpoint, principal_of
from agent.mcp.tools import TOOL_SCOPES, build_mcp
from agent.security import LOCAL, Principal, Scope
from agent.service import Service

if TYPE_CHECKING:
    from fastapi import FastAPI

MCP_PATH = "/mcp"
__all__ = ["MCP_PATH", "TOOL_SCOPES", "build_mcp", "mount_mcp", "run_stdio"]


def mount_mcp(api: FastAPI, svc: Service) -> McpEndpoint:
    """Serve the tools over streamable HTTP at /mcp on `api`."""

    def caller(ctx: Context) -> Principal:
        # the endpoint put the checked token's principal in the request; without it, read only
        return principal_of(ctx) or Principal("mcp", Scope.READ)

    scfg = svc.app.cfg.server
    endpoint = McpEndpoint(build_mcp(svc, caller), svc.tokens, max(scfg.max_documents_bytes, scfg.max_request_bytes))
    # A plain Starlette route: FastAPI's dependencies do not run on it, so the endpoint
    # checks the token and the tool's scope itself, with the same Tokens.
    api.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    api.state.mcp = endpoint
    return endpoint


async def run_stdio(svc: Service, scope: Scope = Scope.ADMIN) -> None:
    """Serve the tools over stdin/stdout until the client closes stdin. The SDK's stdio
    transport diverts file descriptor 1 to stderr while it runs, so a stray print (or a C
    library's) cannot corrupt the protocol."""
    who = Principal(LOCAL, scope)
    await build_mcp(svc, lambda ctx: who).run_stdio_async()

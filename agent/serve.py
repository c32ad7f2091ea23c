"""Serving knowd's faces: the one module that puts several of them together.

    create_app(app)      the HTTP application: the API (agent/api) at /v1, the review console
                         (agent/console) at /console, MCP (agent/mcp) at /mcp, one Service
                         (one model thread, one chat agent, one set of tokens) for all three
    start_server(app)    serve it from a background thread (the daemon's HTTP service)
    serve_forever(app)   serve it in the foreground (`knowd serve`)
    run_mcp_stdio(app)   MCP over stdin/stdout (`knowd mcp`)

No face imports another: this module is where they meet.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from agent.errors import ServerError
from agent.security import Scope, check_bind
from agent.service import Service

if TYPE_CHECKING:
    from agent.app import App

__all__ = ["ServerError", "ServerHandle", "create_app", "run_mcp_stdio", "serve_forever", "start_server"]


def create_app(app: App, svc: Service | None = None) -> FastAPI:
    """The FastAPI application over `app`: API, console and MCP over one Service."""
    from agent.api import create_api
    from agent.console import build_console
    from agent.mcp import mount_mcp

    svc = svc or Service(app)
    api = create_api(svc)
    api.mount("/console", build_console(svc))
    mount_mcp(api, svc)
    return api


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
        self.api.state.service.close()


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
    svc = Service(app)
    check_bind(host, svc.tokens, scfg.token_env)
    sock = _bind(host, port)
    api = create_app(app, svc)
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


def serve_forever(app: App, host: str | None = None, port: int | None = None,
                  on_ready: Callable[[str], None] | None = None) -> None:
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
        api.state.service.close()


def run_mcp_stdio(app: App, scope: Scope = Scope.ADMIN) -> None:
    """MCP over stdin/stdout until the client closes stdin (`knowd mcp`); the client is the
    local user, with `scope` (`knowd mcp --scope read` offers it only the read tools)."""
    import anyio

    from agent.mcp import run_stdio

    svc = Service(app)
    try:
        anyio.run(run_stdio, svc, scope)
    except KeyboardInterrupt:
        pass  # the client stopped us: a normal end
    finally:
        svc.close()

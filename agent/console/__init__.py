"""The review console: server-rendered HTML pages over the store, the inbox, the
connectors, the consolidation runs and the chat, mounted under `/console/` on the API's
port by agent/serve.py (same tokens, same bind rules).

    GET  /console/facts?q=&as_of=&all=        search, now or as of a date          facts.py
    GET  /console/facts/{id}                  a fact's true/false timeline
    GET  /console/documents[?status=]         documents, the inbox's failed ones    documents.py
    GET  /console/document?id=                what a document changed and why
    GET  /console/connectors                  status, last error                    connectors.py
    GET  /console/consolidation               runs, gate decisions, adapter versions consolidation.py
    GET  /console/consolidation/runs/{id}/    one run's report, its plots inline
    GET  /console/chat                        a chat pane over the same ChatAgent   chat.py
    POST ...                                  the actions, each a form post

Scopes (agent/security.py): every page and the chat need `read`; Revert, Retry, the
connector forms, Ship and Rollback need `admin`, and a read-only login sees none of
those forms. With no token configured (the server then listens on loopback only) the
pages are open. With tokens, a request needs `Authorization: Bearer TOKEN` or the
session cookie the login page sets for the token it was given (HttpOnly,
SameSite=Strict); a page asked for without either redirects to the login page, a POST
is 401. Every form carries a CSRF field and a cross-origin `Origin` is refused; bad
input is a 4xx page, never a 500.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.console import auth, chat, connectors, consolidation, documents, facts
from agent.console.pages import FormError, Pages, base
from agent.errors import BackendError, Conflict, Forbidden, KnowdError, NotFound
from agent.security import Unauthenticated
from agent.service import Service
from agent.service.errors import TooLarge

log = logging.getLogger("agent.console")


def _status(e: KnowdError) -> int:
    for kind, code in ((Forbidden, 403), (NotFound, 404), (Conflict, 409), (TooLarge, 413), (BackendError, 503)):
        if isinstance(e, kind):
            return code
    return 400


def _install_handlers(console: FastAPI, ui: Pages) -> None:
    def page(request: Request, code: int, message: str) -> Response:
        return ui.render(request, "error.html", code, status=code, message=message)

    @console.exception_handler(Unauthenticated)
    async def _need_login(request: Request, e: Unauthenticated) -> Response:
        if request.method in ("GET", "HEAD"):
            nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{base(request)}/login?{urlencode({'next': nxt})}", status_code=303)
        r = page(request, 401, "log in first: this console needs one of the server's tokens")
        r.headers["WWW-Authenticate"] = "Bearer"
        return r

    @console.exception_handler(FormError)
    async def _form_error(request: Request, e: FormError) -> Response:
        return page(request, e.status, e.message)

    @console.exception_handler(KnowdError)
    async def _knowd_error(request: Request, e: KnowdError) -> Response:
        code = _status(e)
        return page(request, code, f"the model backend failed: {e}" if code == 503 else str(e))

    @console.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        return page(request, e.status_code, str(e.detail))

    @console.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return page(request, 400, f"{where}: {first.get('msg', 'invalid request')}")

    @console.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> Response:
        log.exception("console: internal error on %s", request.url.path)
        return HTMLResponse(f"<h1>500</h1><p>internal error: {type(e).__name__}</p>", status_code=500)


def build_console(svc: Service) -> FastAPI:
    """The console as an ASGI app over the service `svc`, to be mounted at /console."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ui = Pages(svc.tokens)
    console.state.service = svc
    console.state.tokens = svc.tokens
    console.state.pages = ui
    console.state.session_reader = ui.session_principal
    _install_handlers(console, ui)
    for module in (auth, facts, documents, connectors, consolidation, chat):
        console.include_router(module.router)
    return console

"""The HTTP API: OpenAI-compatible chat plus JSON endpoints over the fact store.

Routers per resource: openai.py (models, chat completions), documents.py (push,
operations, revert, retry), facts.py (search, one fact, history), status.py. Each route
declares the scope it needs (agent/security.py: read, write, admin); the routers call the
service layer (agent/service) and render with agent/views.py.

Security: the server listens on 127.0.0.1 unless told otherwise; any other address
needs a token (agent/serve.py refuses to start without one), and once a token is
configured every request must carry one. Errors are OpenAI-style JSON with a 4xx status;
no input gives a 500 (agent/api/body.py).
"""
from __future__ import annotations

import logging
import time

from fastapi import FastAPI

from agent.api import documents, facts, openai, status
from agent.api.errors import install_handlers
from agent.service import Service

log = logging.getLogger("agent.api")


def create_api(svc: Service) -> FastAPI:
    """The API's FastAPI application over the service `svc`."""
    api = FastAPI(title="knowd", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    api.state.service = svc
    api.state.tokens = svc.tokens
    api.state.started = int(time.time())
    install_handlers(api, log)
    for module in (openai, documents, facts, status):
        api.include_router(module.router)
    return api

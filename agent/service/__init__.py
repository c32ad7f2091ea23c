"""The service layer: what every face of knowd does, in one place.

The faces — the CLI (agent/cli), the HTTP API (agent/api), the review console
(agent/console) and the MCP server (agent/mcp) — parse their own input, check the
caller's scope (agent/security.py), call these functions and render the result with
agent/views.py. Nothing here knows HTTP: failures are the project's own errors
(stores.errors: NotFound, Conflict, Forbidden, InputError, ...), which each face maps
to its own answer.

    facts.py          search, list, one fact and its timeline
    documents.py      push into the inbox, revert, retry, what a document changed
    connectors.py     list, add, test, pause / resume
    consolidation.py  runs, reports, adapter versions, ship / rollback
    chat.py           answers with usage, the console's transcripts
    status.py         daemon, model, counts
    model_thread.py   the one thread that runs the LLM and the embedder

`Service` bundles what a running server shares between its faces: the App, the model
thread, the chat agent, the tokens.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from agent.security import Tokens
from agent.service.chat import Transcripts
from agent.service.model_thread import ModelThread

if TYPE_CHECKING:
    from agent.app import App
    from graphs.chat import ChatAgent


class Service:
    """One per process: the App, the model thread, the ChatAgent, the configured tokens.

    Built once (agent/serve.py) and handed to every face served in the process, so the
    API, the console and MCP share one model thread and one chat agent."""

    def __init__(self, app: App, *, tokens: Tokens | None = None):
        from graphs.chat import ChatAgent

        self.app = app
        self.model = ModelThread()
        self.agent: ChatAgent = ChatAgent(app, app.cfg.chat)
        self.tokens = tokens if tokens is not None else Tokens.from_config(app.cfg.server)
        self.transcripts = Transcripts()
        _ = app.store  # built here, once: lazy construction from several threads could race

    def close(self) -> None:
        self.model.shutdown()

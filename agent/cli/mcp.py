"""knowd CLI command: `mcp`, knowd's tools for an MCP client over stdio (agent/mcp_server.py).

An MCP client (Claude Desktop, an IDE agent) starts `knowd --config FILE mcp` and talks
JSON-RPC over its stdin/stdout: stdout carries the protocol and nothing else; knowd's log
lines go to stderr (the client keeps them in its own log) or to `--log-file`. The command
reads the config like `knowd chat`, opens the store before the first message, and serves
until the client closes stdin. Model calls (the chat answer, the query embedding) run on
one worker thread, as in the HTTP server. Documents added here wait in the durable inbox
for the daemon (`knowd run`), which ingests them like pushed ones.

Tests hand the command a ready App (a FakeLLM) with `cli.main(..., obj={"app": app})`.
"""
from __future__ import annotations

import logging

import click

from agent.cli.context import get_app


@click.command("mcp")
@click.option("--log-file", type=click.Path(dir_okay=False), help="append log lines (info and up; debug with -v) to this file instead of stderr")
@click.pass_context
def mcp(ctx: click.Context, log_file: str | None) -> None:
    """Serve knowd to an MCP client over stdio: search_facts, fact_history, ask, add_document."""
    import anyio

    from agent.mcp_server import Backend, run_stdio
    from agent.server import ApiError, ModelWorker, enqueue_documents, parse_documents
    from graphs.chat import ChatAgent

    from agent.logging_setup import setup_logging

    if log_file:  # knowd's structured text lines, from info (debug with -v)
        verbose = logging.getLogger().level == logging.DEBUG
        setup_logging("text", logging.DEBUG if verbose else logging.INFO, open(log_file, "a", encoding="utf-8"))
    app = get_app(ctx)
    _ = app.store  # opened now: a bad data_dir is a one-line error, not a broken session
    worker = ModelWorker()
    backend = Backend(app, ChatAgent(app, app.cfg.chat), worker.run, parse_documents, enqueue_documents, ApiError)
    try:
        anyio.run(run_stdio, backend)
    except KeyboardInterrupt:
        pass  # the client stopped us: a normal end
    finally:
        worker.shutdown()


COMMANDS = [mcp]

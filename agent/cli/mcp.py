"""knowd CLI command: `mcp`, knowd's tools for an MCP client over stdio (agent/mcp/).

An MCP client (Claude Desktop, an IDE agent) starts `knowd --config FILE mcp` and talks
JSON-RPC over its stdin/stdout: stdout carries the protocol and nothing else; knowd's log
lines go to stderr (the client keeps them in its own log) or to `--log-file`. The command
reads the config like `knowd chat`, opens the store before the first message, and serves
until the client closes stdin. Model calls (the chat answer, the query embedding) run on
one worker thread, as in the HTTP server. Documents added here wait in the durable inbox
for the daemon (`knowd run`), which ingests them like pushed ones.

The client runs as the local user; `--scope read` limits it to the read tools (a client
that should never add documents).

Tests hand the command a ready App (a FakeLLM) with `cli.main(..., obj={"app": app})`.
"""
from __future__ import annotations

import logging

import click

from agent.cli.context import get_app


@click.command("mcp")
@click.option("--log-file", type=click.Path(dir_okay=False),
              help="append log lines (info and up; debug with -v) to this file instead of stderr")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default="admin", show_default=True,
              help="what the client may do: read (search, history, ask), write (+ add_document)")
@click.pass_context
def mcp(ctx: click.Context, log_file: str | None, scope: str) -> None:
    """Serve knowd to an MCP client over stdio: search_facts, fact_history, ask, add_document."""
    from agent.logging_setup import setup_logging
    from agent.security import Scope
    from agent.serve import run_mcp_stdio

    if log_file:  # knowd's structured text lines, from info (debug with -v)
        verbose = logging.getLogger().level == logging.DEBUG
        setup_logging("text", logging.DEBUG if verbose else logging.INFO, open(log_file, "a", encoding="utf-8"))
    app = get_app(ctx)
    _ = app.store  # opened now: a bad data_dir is a one-line error, not a broken session
    run_mcp_stdio(app, Scope.parse(scope))


COMMANDS = [mcp]

"""The `knowd` command line: one click group (agent/cli/context.py) and the commands
of each part, registered on it here.

    facts.py          ingest, facts, ops, revert, reindex
    daemon.py         run, status, connectors list|add|test
    chat.py           chat (the REPL), serve (the HTTP API)
    mcp.py            mcp (knowd's tools for an MCP client, over stdio)
    tokens.py         token add|list|remove (API tokens and their scopes)
    consolidation.py  consolidate, adapters, report

Plugins add more through the `knowd.commands` entry-point group, loaded by the group
when asked for (context.py): `knowd bench` is the knowd-bench distribution's (bench/).

Each command module depends on the context module only, never on this one, so
there is no import cycle; `knowd`, `python -m agent` and `python -m agent.cli`
all call `main`.
"""
from __future__ import annotations

from agent.cli import chat, consolidation, daemon, facts, mcp, tokens
from agent.cli.context import cli

for _module in (facts, daemon, chat, mcp, consolidation, tokens):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="knowd")


__all__ = ["cli", "main"]

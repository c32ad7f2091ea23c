"""knowd CLI commands: `token add|list|remove`, the API tokens and their scopes (agent/security.py)."""
from __future__ import annotations

import click

from agent.cli.context import config_file, get_config


@click.group("token")
def token() -> None:
    """API tokens: read (chat, search), write (+ push documents), admin (+ revert, connectors, ship)."""


@token.command("add")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), required=True,
              help="what the token may do")
@click.pass_context
def token_add(ctx: click.Context, name: str, scope: str) -> None:
    """Make a token NAME, keep its hash in config.yaml (server.tokens) and print it once.

    A running server reads its tokens at start: restart it (`knowd run`) to use the new one.
    """
    from agent.tokens_file import add_token

    path = config_file(ctx)
    secret = add_token(path, name, scope)
    click.echo(secret)
    click.echo(f"token {name!r} ({scope}) added to {path}; it is shown only now: keep it. "
               "Restart the server to use it.", err=True)


@token.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """The configured tokens: name and scope (the tokens themselves are not kept)."""
    from agent.security import Tokens

    cfg = get_config(ctx)
    names = Tokens.from_config(cfg.server).names()
    if not names:
        click.echo("no tokens: the server listens on loopback only, and every request is the local user (admin)")
    for name, scope in names:
        click.echo(f"{name:<24} {scope}")


@token.command("remove")
@click.argument("name")
@click.pass_context
def token_remove(ctx: click.Context, name: str) -> None:
    """Remove token NAME from config.yaml (a running server accepts it until restarted)."""
    from agent.tokens_file import remove_token

    remove_token(config_file(ctx), name)
    click.echo(f"token {name!r} removed from {config_file(ctx)}; restart the server to stop accepting it")


COMMANDS = [token]

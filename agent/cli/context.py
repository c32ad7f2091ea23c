"""What every `knowd` command shares: the one click group, its config and `App`, error lines.

Command modules (agent/cli/*.py) depend on this module only; agent/cli/__init__.py
registers their commands on `cli` with `add_command`. Nothing here imports a model
or a graph: `import agent.cli` stays fast (the daemon's start, `knowd --help`).

Every user error (bad config, bad input, unknown id) ends as one line on stderr
(`knowd: error: ...`) and a non-zero exit; tracebacks are for bugs only.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.config import DEFAULT_CONFIG, Config, load_config
from agent.errors import KnowdError

if TYPE_CHECKING:
    from agent.app import App


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KnowdError as e:
            click.echo(f"knowd: error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="KNOWD_CONFIG",
              help="config.yaml to use (default: the repository's, or $KNOWD_CONFIG)")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """knowd: keeps a language model's knowledge current."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)  # tests may pass obj={"app": ...} to inject components
    ctx.obj.setdefault("config_path", config_path)


def get_config(ctx: click.Context) -> Config:
    """The validated config.yaml, read once per command."""
    if "cfg" not in ctx.obj:
        ctx.obj["cfg"] = load_config(ctx.obj["config_path"])
    return ctx.obj["cfg"]


def get_app(ctx: click.Context) -> App:
    """The command's `App` (built from the config on first use, closed when the command ends)."""
    from agent.app import App

    if "app" not in ctx.obj:
        ctx.obj["app"] = App(get_config(ctx), config_path=config_file(ctx))
        ctx.call_on_close(ctx.obj["app"].close)
    return ctx.obj["app"]


def config_file(ctx: click.Context) -> Path:
    """The config.yaml in use (the same choice load_config makes)."""
    return Path(ctx.obj.get("config_path") or os.environ.get("KNOWD_CONFIG") or DEFAULT_CONFIG).resolve()


def fact_line(f: Any, as_of: Any) -> str:
    """One fact as the CLI and the chat REPL list it: id, text, and true/false since when."""
    truth = f.truth_at(as_of)
    state = "true" if truth else "false" if truth is False else "unknown"
    live = [h for h in f.history if not h.reverted and (as_of is None or h.time <= as_of)]
    since = live[-1].time.date().isoformat() if live else "-"
    return f"[{f.id}] {f.text}  ({state} since {since})"

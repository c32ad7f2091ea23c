"""What every `knowd` command shares: the one click group, its config and `App`, error lines.

Command modules (agent/cli/*.py) depend on this module only; agent/cli/__init__.py
registers their commands on `cli` with `add_command`. Nothing here imports a model
or a graph: `import agent.cli` stays fast (the daemon's start, `knowd --help`).

Plugins add commands through the `knowd.commands` entry-point group (the simonw/llm
pattern, like `knowd.connectors`): an entry point's name is the command's name, its
value a click command or group (`bench = "bench.cli:bench"`, bench/pyproject.toml).
They are looked up only when a command that is not built in is asked for, or the
commands are listed (`knowd --help`); built-ins win a clash; a plugin that cannot be
loaded costs one warning line, never the rest of the CLI.

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


PLUGIN_GROUP = "knowd.commands"

# commands that ship in a distribution of their own in this repository: how to get each
MISSING_PLUGIN = {
    "bench": "`knowd bench` is in the knowd-bench package: pip install -e ./bench "
             "(from a source checkout of knowd; `make install` does it)",
}


class _Group(click.Group):
    """The `knowd` group: its built-in commands, then those of installed plugins."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugins: dict[str, click.Command | None] = {}  # name -> loaded (None: could not be)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KnowdError as e:
            click.echo(f"knowd: error: {e}", err=True)
            ctx.exit(2)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(n for n, _ in _plugin_entry_points())})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            if cmd_name not in self._plugins:
                self._plugins[cmd_name] = _load_plugin(cmd_name)
            command = self._plugins[cmd_name]
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str],
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # here, not in get_command: running the command says how to get it; `--help` lists what there is
        if args and args[0] in MISSING_PLUGIN and self.get_command(ctx, args[0]) is None:
            raise KnowdError(MISSING_PLUGIN[args[0]])
        return super().resolve_command(ctx, args)


def _plugin_entry_points() -> list[tuple[str, Any]]:
    """(name, entry point) of every installed `knowd.commands` plugin. Read only when needed:
    importlib.metadata and the scan of the installed distributions are not `import agent.cli`'s."""
    from importlib.metadata import entry_points

    return [(ep.name, ep) for ep in entry_points(group=PLUGIN_GROUP)]


def _load_plugin(name: str) -> click.Command | None:
    """The plugin command `name`, or None (with one warning line) when it cannot be loaded."""
    for ep_name, ep in _plugin_entry_points():
        if ep_name != name:
            continue
        try:
            command = ep.load()
        except Exception as e:  # a broken plugin must not take the other commands with it
            reason = f"{type(e).__name__}: {e}".splitlines()[0]
        else:
            if isinstance(command, click.Command):
                return command
            reason = f"{type(command).__name__} is not a click command"
        click.echo(f"knowd: warning: plugin command {name!r} ({ep.value}) not loaded: {reason}", err=True)
    return None


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="KNOWD_CONFIG",
              help="config.yaml to use (default: the repository's, or $KNOWD_CONFIG)")
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """knowd: keeps a language model's knowledge current."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
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

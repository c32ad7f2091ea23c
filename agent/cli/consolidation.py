"""knowd CLI commands for consolidation: consolidate, adapters, report.

They call the trainer's functions in this process: the CLI is a process of its own,
separate from the daemon, which only ever starts `knowd consolidate` as a subprocess
and so never imports torch. The `consolidation:` section reaches the trainer as the
`TrainerConfig` validated with the rest of config.yaml (agent/config.py).
"""
from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

import click

from agent.cli.context import get_app, get_config
from agent.config import load_config
from trainer.adapters import ACTIONS


@click.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override one consolidation setting")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def consolidate(ctx: click.Context, sets: tuple[str, ...], no_progress: bool, as_json: bool) -> None:
    """Distil the facts changed since the last consolidation into a LoRA adapter now."""
    from agent.llama_log import route_llama_logs
    from agent.models import ensure_gguf
    from trainer.config import parse_sets
    from trainer.errors import RunBusyError
    from trainer.run import consolidate as run_consolidation

    # --set is validated as if it were written in config.yaml's consolidation: section
    cfg = load_config(ctx.obj.get("config_path"), overrides={"consolidation": parse_sets(sets)}) if sets else get_config(ctx)
    route_llama_logs()  # the trainer's llama.cpp (data and evaluation) logs to `llama_cpp`, not over the progress bars
    try:
        res = run_consolidation(
            cfg.consolidation, get_app(ctx).store, cfg.data_path, progress=not no_progress and sys.stderr.isatty(),
            base_gguf=lambda: ensure_gguf(cfg.data_path),  # the bundled model, assembled only if the run needs it
        )
    except RunBusyError as e:
        click.echo(f"knowd: error: {e}", err=True)
        ctx.exit(3)
    for line in res.lines(as_json):
        click.echo(line)
    if res.exit_code:
        ctx.exit(res.exit_code)


@click.command()
@click.argument("action", type=click.Choice(ACTIONS))
@click.argument("version", required=False)
@click.pass_context
def adapters(ctx: click.Context, action: str, version: str | None) -> None:
    """Adapter versions: list, use VERSION, rollback to the previous, clear (base model)."""
    from trainer.adapters import run_action

    for line in run_action(get_config(ctx).data_path, action, version):
        click.echo(line)


@click.command()
@click.option("--date", help="the report of this day (YYYY-MM-DD); default the latest")
@click.option("--html", "html_", is_flag=True, help="the HTML report instead of the Markdown one")
@click.option("--open", "open_", is_flag=True, help="open it in a browser")
@click.option("--path", "path_only", is_flag=True, help="print only the report's path")
@click.pass_context
def report(ctx: click.Context, date: str | None, html_: bool, open_: bool, path_only: bool) -> None:
    """Print (or open) the latest consolidation report."""
    from trainer.report import latest_report

    p = latest_report(str(get_config(ctx).data_path), date, html_=html_ or open_)
    if open_:
        webbrowser.open(Path(p).resolve().as_uri())
    if open_ or path_only:
        click.echo(str(p))
    else:
        click.echo(Path(p).read_text())


COMMANDS = [consolidate, adapters, report]

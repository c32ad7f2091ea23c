"""knowd CLI commands for consolidation: consolidate, adapters, report.

They hand over to `python -m trainer` (trainer/__main__.py) in this process: the
CLI is already a process of its own, separate from the daemon, which only ever
starts `knowd consolidate` as a subprocess and so never imports torch.
"""
from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

import click

from agent.cli import _cfg, cli


def _trainer(ctx: click.Context, argv: list[str]) -> None:
    from trainer.__main__ import main as trainer_main

    code = trainer_main(argv)
    if code:
        ctx.exit(code)


def _config_file(ctx: click.Context) -> str | None:
    cfg = _cfg(ctx)
    p = ctx.obj.get("config_path") or str(cfg.base_dir / "config.yaml")
    return p if Path(p).exists() else None


@cli.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override one consolidation setting")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def consolidate(ctx: click.Context, sets: tuple[str, ...], no_progress: bool, as_json: bool) -> None:
    """Distil the facts changed since the last consolidation into a LoRA adapter now."""
    cfg = _cfg(ctx)
    # the consolidation: section is validated by trainer.config.TrainerConfig
    argv = ["consolidate", "--data-dir", str(cfg.data_path), "--db", str(cfg.data_path / "knowd.sqlite")]
    cf = _config_file(ctx)
    if cf:
        argv += ["--config", cf]
    for s in sets:
        argv += ["--set", s]
    if no_progress or not sys.stderr.isatty():
        argv.append("--no-progress")
    if as_json:
        argv.append("--json")
    _trainer(ctx, argv)


@cli.command()
@click.argument("action", type=click.Choice(["list", "use", "rollback", "clear"]))
@click.argument("version", required=False)
@click.pass_context
def adapters(ctx: click.Context, action: str, version: str | None) -> None:
    """Adapter versions: list, use VERSION, rollback to the previous, clear (base model)."""
    argv = ["adapters", action] + ([version] if version else []) + ["--data-dir", str(_cfg(ctx).data_path)]
    _trainer(ctx, argv)


@cli.command()
@click.option("--date", help="the report of this day (YYYY-MM-DD); default the latest")
@click.option("--html", "html_", is_flag=True, help="the HTML report instead of the Markdown one")
@click.option("--open", "open_", is_flag=True, help="open it in a browser")
@click.option("--path", "path_only", is_flag=True, help="print only the report's path")
@click.pass_context
def report(ctx: click.Context, date: str | None, html_: bool, open_: bool, path_only: bool) -> None:
    """Print (or open) the latest consolidation report."""
    from agent.errors import KnowdError
    from trainer.errors import TrainerError
    from trainer.report import latest_report

    try:
        p = latest_report(str(_cfg(ctx).data_path), date, html_=html_ or open_)
    except TrainerError as e:
        raise KnowdError(str(e)) from None
    if open_:
        webbrowser.open(Path(p).resolve().as_uri())
    if open_ or path_only:
        click.echo(str(p))
    else:
        click.echo(Path(p).read_text())

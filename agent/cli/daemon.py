"""knowd CLI commands: the daemon (`run`, `status`) and its sources (`connectors list|add|test`)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from agent.cli.context import config_file, get_app, get_config
from agent.connectors_file import add_connector, add_connector_text, parse_option  # noqa: F401 (re-exported)
from agent.errors import KnowdError


# ----------------------------------------------------------------------------- run
@click.command()
@click.option("--once", is_flag=True, help="poll every connector once, ingest what is queued, exit")
@click.option("--no-api", is_flag=True, help="do not serve the HTTP API (server: in config.yaml)")
@click.pass_context
def run(ctx: click.Context, once: bool, no_api: bool) -> None:
    """Run the daemon: poll connectors, ingest their documents, consolidate nightly.

    Stops gracefully on SIGTERM or Ctrl-C (a second one exits at once, also safely).
    Logs one line per event on stderr (daemon.log_format: auto, the default, is
    readable text on a terminal and JSON lines otherwise; or json, text).
    """
    from agent.daemon import ServiceFactory, run_daemon

    app = get_app(ctx)
    # Services started and stopped with the daemon: each `factory(app) -> handle` with
    # `handle.stop()`. This is where the HTTP faces (agent.serve.start_server) are added.
    extra_services: list[ServiceFactory] = []
    if not (once or no_api):
        from agent.serve import start_server

        extra_services.append(start_server)
    code = run_daemon(app, config_path=config_file(ctx), extra_services=extra_services, once=once)
    ctx.exit(code)


# ----------------------------------------------------------------------------- status
def _when(value: str | None, now: datetime, short: bool = False) -> str:
    """'2024-06-01 10:00:03Z (5m ago)', or only '5m ago' when `short` (agent/views.py)."""
    from agent.views import ago, stamp

    return ago(value, now) if short else stamp(value, now)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Daemon, connectors (last poll, errors, items), inbox depth, facts, last consolidation."""
    from agent.service.status import daemon_status

    st = daemon_status(get_app(ctx))
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
        return
    now = datetime.now(timezone.utc)
    d = st["daemon"]
    if d["running"]:
        click.echo(f"daemon         running (pid {d['pid'] or '?'}, started {_when(d['started_at'], now)})")
    elif d["started_at"]:
        click.echo(f"daemon         not running (last stopped {_when(d['stopped_at'], now)})")
    else:
        click.echo("daemon         never run (start it with: knowd run)")
    inbox = st["inbox"]
    parts = [f"{inbox.get(k, 0)} {k}" for k in ("queued", "failed", "done")]
    click.echo(f"inbox          {', '.join(parts)}")
    f = st["facts"]
    click.echo(f"facts          {f['current']} true now, {f['not_current']} no longer true ({f['total']} total)")
    c = st["consolidation"]
    if c:
        reason = f": {c['reason']}" if c.get("reason") else ""
        at = c.get("finished_at") or c.get("started_at")
        click.echo(f"consolidation  {c.get('status')} {_when(at, now)}, run {c.get('id')}{reason}")
    else:
        click.echo("consolidation  none yet")
    if st["connectors"]:
        click.echo("connectors")
        rows = [["NAME", "KIND", "STATE", "LAST POLL", "NEXT POLL", "SEEN", "NEW"]]
        errors = []
        for x in st["connectors"]:
            fails = x.get("consecutive_failures") or 0
            state = ("disabled" if not x["enabled"] else "paused" if x.get("paused") else f"failing x{fails}" if fails
                     else "ok" if x.get("last_ok_at") else "error" if x.get("last_error") else "waiting")
            rows.append([
                x["name"], x["kind"], state, _when(x.get("last_poll_at"), now, short=True),
                _when(x.get("next_poll_at"), now, short=True) if x["enabled"] else "-",
                str(x.get("items_seen") or 0), str(x.get("items_new") or 0),
            ])
            if x.get("last_error"):
                errors.append(f"  {x['name']}: {_when(x.get('last_error_at'), now, short=True)}: {x['last_error']}")
        for line in _table(rows):
            click.echo(line)
        if errors:
            click.echo("connector errors (most recent per connector)")
            for line in errors:
                click.echo(line)
    else:
        click.echo("connectors     none configured (add one: knowd connectors add NAME KIND --option ...)")
    if st["failed"]:
        click.echo("failed documents (newest first; retried with backoff until ingest.max_attempts)")
        for item in st["failed"]:
            when = f"retry {_when(item['next_attempt_at'], now)}" if item["next_attempt_at"] else "gave up"
            click.echo(f"  {item['doc_id']}  attempts {item['attempts']}, {when}: {(item['error'] or '')[:160]}")


# ----------------------------------------------------------------------------- connectors
@click.group()
def connectors() -> None:
    """Document sources: list the configured ones, add one, test one."""


@connectors.command("list")
@click.pass_context
def connectors_list(ctx: click.Context) -> None:
    """Configured connectors and the connector kinds available (built-ins and plugins)."""
    from connectors.registry import list_connector_kinds

    cfg = get_config(ctx)
    if cfg.connectors:
        rows = [["NAME", "KIND", "EVERY", "ENABLED", "OPTIONS"]]
        for cc in cfg.connectors:
            opts = ", ".join(f"{k}={v}" for k, v in cc.options.items())
            rows.append([cc.name, cc.kind, f"{cc.interval_s:g}s", "yes" if cc.enabled else "no", opts[:100]])
        click.echo(f"connectors in {config_file(ctx)}:")
        for line in _table(rows):
            click.echo(line)
    else:
        click.echo(f"no connectors in {config_file(ctx)}")
    click.echo(f"available kinds: {', '.join(list_connector_kinds())}")


@connectors.command("add")
@click.argument("name")
@click.argument("kind")
@click.option("--interval", "interval", type=float, help="seconds between polls (default 900)")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="connector option (repeatable)")
@click.option("--disabled", is_flag=True, help="add it switched off")
@click.pass_context
def connectors_add(
    ctx: click.Context, name: str, kind: str, interval: float | None, options: tuple[str, ...], disabled: bool,
) -> None:
    """Add connector NAME of KIND to config.yaml (validated first; comments kept).

    \b
    knowd connectors add world-news feed --interval 600 -o url=https://example.org/rss.xml
    knowd connectors add team chatlog -o path=~/exports -o timezone=Europe/Berlin
    """
    from agent.security import LOCAL
    from agent.service import connectors as connectors_service

    path = config_file(ctx)
    item: dict[str, Any] = {"name": name, "kind": kind}
    if interval is not None:
        item["interval_s"] = interval
    if disabled:
        item["enabled"] = False
    opts = dict(parse_option(o) for o in options)
    if opts:
        item["options"] = opts
    connectors_service.add(get_app(ctx), item, LOCAL)
    click.echo(f"added connector {name!r} ({kind}) to {path}")
    click.echo(f"`knowd connectors test {name}` shows what it would ingest; a running daemon starts polling it "
               "within seconds (it watches config.yaml)")


@connectors.command("test")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="documents shown")
@click.option("--full", is_flag=True, help="show whole texts, not the first lines")
@click.pass_context
def connectors_test(ctx: click.Context, name: str, limit: int, full: bool) -> None:
    """Poll NAME once from its saved position and show what would be ingested.

    Nothing is ingested or queued and the position is not saved.
    """
    from agent.service import connectors as connectors_service
    from agent.views import when as fmt_when

    test = connectors_service.test(get_app(ctx), name, limit)
    if test["error"]:
        raise KnowdError(test["error"])
    for doc in test["docs"]:
        click.echo(f"- {doc['id']}{'  (already ingested)' if doc['seen'] else ''}")
        click.echo(f"  {fmt_when(doc['time'])}Z  {doc['title'] or '(no title)'}"
                   + (f"  by {doc['author']}" if doc["author"] else ""))
        flat = " ".join(doc["text"].split())
        body = doc["text"] if full else flat[:300] + ("…" if len(flat) > 300 else "")
        for line in body.splitlines() or [""]:
            click.echo(f"    {line}")
    if test["total"] > limit:
        click.echo(f"... and {test['total'] - limit} more (--limit)")
    for w in test["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"{test['total']} document(s) would be queued"
               + (f" ({test['known']} of those shown already ingested)" if test["known"] else "")
               + ("" if test["total"] or not test["polled_before"] else " (nothing new since the daemon's last poll of it)")
               + "; nothing ingested, position not saved")


COMMANDS = [run, status, connectors]

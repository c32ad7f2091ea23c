"""Connectors as every face manages them: list with status, add, test (a dry poll), pause.

Adding writes config.yaml's `connectors:` block (agent/connectors_file.py); a daemon in
this process reloads at once, one elsewhere notices the file change within seconds.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.service.errors import InvalidField
from stores.errors import Conflict, KnowdError, NotFound

if TYPE_CHECKING:
    from agent.app import App

_WRITE_LOCK = threading.Lock()  # config.yaml edits, one at a time
NAME = re.compile(r"[\w.-]+")


def kinds() -> list[str]:
    from connectors.registry import list_connector_kinds

    return list_connector_kinds()


def statuses(app: App) -> list[dict[str, Any]]:
    """Each configured connector with its poll status (agent/daemon/status.py)."""
    from agent.daemon import collect_status

    return collect_status(app)["connectors"]


def daemon_state(app: App) -> dict[str, Any]:
    """Where the daemon runs: here (this process), elsewhere (pid), or none."""
    from agent.daemon import daemon_pid

    if app.daemon is not None:
        return {"where": "here", "pid": None}
    pid = daemon_pid(app.cfg.data_path)
    return {"where": "elsewhere" if pid else "none", "pid": pid if pid and pid > 0 else None}


def config_path(app: App) -> Path | None:
    d = app.daemon
    p = (d.config_path if d is not None else None) or app.config_path
    return Path(p) if p else None


def item_from_fields(name: str, kind: str, interval: str = "", options: str = "") -> dict[str, Any]:
    """A `connectors:` entry from a form's text fields (options: one key=value per line)."""
    from agent.connectors_file import parse_option

    if not NAME.fullmatch(name):
        raise InvalidField("a connector name is letters, digits, '.', '-' and '_'", "name")
    item: dict[str, Any] = {"name": name, "kind": kind}
    if interval.strip():
        try:
            item["interval_s"] = float(interval)
        except ValueError:
            raise InvalidField(f"interval must be a number of seconds, not {interval.strip()[:40]!r}",
                               "interval_s") from None
    opts = {}
    for line in options.splitlines():
        if line.strip():
            try:
                k, v = parse_option(line.strip())
            except KnowdError as e:
                raise InvalidField(str(e).replace("--option", "option"), "options") from None
            opts[k] = v
    if opts:
        item["options"] = opts
    return item


def add(app: App, item: dict[str, Any], actor: str | None) -> tuple[bool, str]:
    """Append `item` to config.yaml (validated first: nothing is written if it is wrong) and
    have the daemon pick it up. (ok, message): ok is False when the write worked but the
    running daemon's reload did not."""
    from agent.config import load_config
    from agent.connectors_file import add_connector

    path = config_path(app)
    name = item["name"]
    if path is None:
        raise Conflict("this server was started without a config file; add the connector with "
                       "`knowd connectors add` instead")
    with _WRITE_LOCK:
        add_connector(path, item)  # ConfigError, ConnectorError: nothing was written
    app.store.log_action(actor, "connector_add", f"{name} ({item['kind']}) added to {path}")
    d = app.daemon
    if d is not None:
        try:
            d.reload_connectors()
        except KnowdError as e:
            return False, f"added {name} to {path}, but the reload failed: {e}"
        return True, f"added {name}; the daemon polls it now"
    try:
        app.cfg.connectors = load_config(path).connectors
    except KnowdError:
        pass
    where = ("a daemon running elsewhere picks it up within seconds" if daemon_state(app)["where"] == "elsewhere"
             else "no daemon is running: it is polled once `knowd run` starts")
    return True, f"added {name} to {path}; {where}"


def _configured(app: App, name: str) -> Any:
    cc = next((c for c in app.cfg.connectors if c.name == name), None)
    if cc is None:
        known = ", ".join(c.name for c in app.cfg.connectors) or "none"
        raise NotFound(f"no connector named {name!r} (configured: {known})")
    return cc


def test(app: App, name: str, limit: int = 20) -> dict[str, Any]:
    """Poll `name` once from its saved position, without queueing anything or moving the
    cursor: what would be ingested. A failing source is reported in `error`, not raised."""
    from agent.daemon import resolve_options
    from connectors.registry import build_connector

    cc = _configured(app, name)
    out: dict[str, Any] = {"name": name, "docs": [], "total": 0, "warnings": [], "error": None,
                           "polled_before": False, "known": 0}
    try:
        connector = build_connector(cc.kind, cc.name, resolve_options(app.cfg, cc))
        cursor = app.store.cursor(name)
        result = connector.poll(cursor)
    except KnowdError as e:
        return {**out, "error": str(e)}
    except Exception as e:  # a plugin's bug: shown, like the daemon logs it
        return {**out, "error": f"{type(e).__name__}: {e}"}
    for doc in result.documents[:limit]:
        st = app.store.document_status(doc.id)
        seen = st is not None and st["status"] == "done" and st["content_hash"] == doc.content_hash
        out["known"] += seen
        out["docs"].append({"id": doc.id, "title": doc.title, "time": doc.time, "author": doc.author,
                            "text": doc.text, "seen": seen})
    out.update(total=len(result.documents), warnings=list(result.warnings), polled_before=bool(cursor))
    return out


def set_paused(app: App, name: str, paused: bool, actor: str | None) -> str:
    """Pause or resume a connector; a running daemon skips its polls while paused."""
    from agent.daemon import set_paused as store_paused

    _configured(app, name)
    store_paused(app.store, name, paused)
    app.store.log_action(actor, "connector_pause" if paused else "connector_resume", name)
    return f"{name} {'paused' if paused else 'resumed'}"

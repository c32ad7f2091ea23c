"""What `knowd status` shows: the daemon's lock, the inbox, the facts, the connectors and the
last consolidation, read from the store and the data dir (works whether a daemon runs or not)."""
from __future__ import annotations

import fcntl
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.app import App
from agent.daemon.sources import is_paused
from agent.views import iso

LOCK_NAME = "daemon.lock"  # in data_dir; held by the running daemon (agent/daemon/lifecycle.py)


def daemon_pid(data_dir: Path) -> int | None:
    """The pid of the daemon holding `data_dir`, or None if none runs (a probe of its lock)."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fh = open(path)
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            words = fh.read().split()
            return int(words[1]) if len(words) > 1 and words[0] == "pid" and words[1].isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def last_consolidation(data_dir: Path) -> dict[str, Any] | None:
    """The newest consolidation run record (trainer/runs.py), if any."""
    from trainer.runs import latest_run

    rec = latest_run(data_dir)
    if rec is None:
        return None
    return {k: rec.get(k) for k in ("id", "status", "phase", "started_at", "finished_at", "reason")}


def collect_status(app: App) -> dict[str, Any]:
    """Everything `knowd status` shows, as JSON-able data (also for the HTTP API)."""
    store, cfg = app.store, app.cfg
    pid = daemon_pid(cfg.data_path)
    rows = store.connector_statuses()
    connectors = []
    for cc in cfg.connectors:
        row = rows.get(cc.name, {})
        connectors.append({
            "name": cc.name, "kind": cc.kind, "enabled": cc.enabled, "interval_s": cc.interval_s,
            "paused": is_paused(store, cc.name),
            **{k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items() if k not in ("kind",)},
        })
    return {
        "daemon": {
            "running": pid is not None, "pid": pid if pid and pid > 0 else None,
            "started_at": store.meta_get("daemon.started_at") or None,
            "stopped_at": store.meta_get("daemon.stopped_at") or None,
        },
        "inbox": store.inbox_counts(),
        "failed": store.inbox_items("failed", 10),
        "facts": store.count_facts(),
        "consolidation": last_consolidation(cfg.data_path),
        "connectors": connectors,
    }

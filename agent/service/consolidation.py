"""Consolidation runs and adapter versions as every face shows and changes them.

The trainer keeps runs (trainer/runs.py) and versions with a `live.json` pointer
(trainer/adapters.py); shipping a version or rolling back is a person's action,
recorded in the operations log with the token name behind it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stores.errors import Conflict, NotFound

if TYPE_CHECKING:
    from agent.app import App

RUN_ID = re.compile(r"^[\w.-]{1,100}$")
PNG = re.compile(r"^[\w.-]{1,100}\.png$")


def runs(app: App) -> list[dict[str, Any]]:
    """Run records, oldest first, each with `has_report`."""
    from trainer.runs import list_runs

    out = list_runs(app.cfg.data_path)
    for r in out:
        d = Path(r["dir"])
        r["has_report"] = (d / "report.html").is_file() or (d / "report.md").is_file()
    return out


def overview(app: App) -> dict[str, Any]:
    """Runs (newest first), adapter versions (newest first), the live one, ship history."""
    from trainer import adapters

    data = app.cfg.data_path
    versions = adapters.list_versions(data)
    return {
        "runs": list(reversed(runs(app))), "head": adapters.LIST_HEAD, "note": adapters.LIST_NOTE,
        "versions": [{"v": v, "row": v.row(), "shippable": v.gguf.is_file()} for v in reversed(versions)],
        "live": adapters.live(data), "history": list(reversed(adapters.history(data)))[:20],
    }


def run(app: App, run_id: str) -> dict[str, Any]:
    """One run's record; NotFound for an unknown or malformed id."""
    if not RUN_ID.match(run_id):
        raise NotFound(f"no run {run_id!r}")
    rec = next((r for r in runs(app) if r.get("id") == run_id and Path(r["dir"]).name == run_id), None)
    if rec is None:
        raise NotFound(f"no run {run_id!r}")
    return rec


def _report_body(run_dir: Path) -> str | None:
    """The <body> of the trainer's report.html (trainer/report.py escapes all it writes)."""
    try:
        text = (run_dir / "report.html").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r"<body[^>]*>(.*)</body>", text, re.S | re.I)
    return m.group(1) if m else text


@dataclass
class RunReport:
    rec: dict[str, Any]
    html_body: str | None  # the report's HTML body (trusted: the trainer escapes what it writes)
    markdown: str | None  # when there is no HTML report
    pngs: list[str]  # plots not already shown in the HTML body
    version: Any  # trainer.adapters.AdapterVersion this run produced, if it still exists
    live: str | None


def report(app: App, run_id: str) -> RunReport:
    from trainer import adapters

    rec = run(app, run_id)
    d = Path(rec["dir"])
    body = _report_body(d)
    md = None
    if body is None:
        try:
            md = (d / "report.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            md = None
    pngs = sorted(p.name for p in d.glob("*.png") if PNG.match(p.name))
    if body:
        pngs = [p for p in pngs if p not in body]
    version = rec.get("adapter_version")
    known = {v.version: v for v in adapters.list_versions(app.cfg.data_path)}
    return RunReport(rec, body, md, pngs, known.get(version) if version else None,
                     adapters.live_version(app.cfg.data_path))


def run_file(app: App, run_id: str, name: str) -> Path:
    """A plot of a run (a .png directly in its folder); NotFound for anything else."""
    rec = run(app, run_id)
    if not PNG.match(name):
        raise NotFound(f"no file {name!r} in run {run_id}")
    d = Path(rec["dir"]).resolve()
    p = (d / name).resolve()
    if p.parent != d or not p.is_file():
        raise NotFound(f"no file {name!r} in run {run_id}")
    return p


def ship(app: App, version: str, actor: str | None) -> str:
    """Make `version` live; the model loads it before its next call."""
    from trainer import adapters
    from trainer.errors import AdapterError

    try:
        v = adapters.use_version(app.cfg.data_path, version)
    except AdapterError as e:
        raise (NotFound if "no adapter version" in str(e) else Conflict)(str(e)) from None
    app.store.log_action(actor, "adapter_ship", f"{v.version} made live")
    return f"{v.version} is live; the model loads it before its next call"


def rollback(app: App, actor: str | None) -> str:
    """Make the previous version live again (or the base model)."""
    from trainer import adapters
    from trainer.errors import AdapterError

    try:
        now = adapters.rollback(app.cfg.data_path)
    except AdapterError as e:
        raise Conflict(str(e)) from None
    app.store.log_action(actor, "adapter_rollback", f"live is {now or 'the base model'}")
    return f"rolled back: live is {now or 'the base model (no adapter)'}"


def adapter_status(app: App) -> dict[str, Any]:
    """The live adapter as the trainer published it (live.json), and as the loaded backend has it."""
    from trainer.adapters import live_path

    path = live_path(app.cfg.data_path)
    try:
        live = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        live = None
    except (OSError, json.JSONDecodeError) as e:
        live = {"error": f"unreadable live.json: {e}"}
    llm = app.__dict__.get("llm")  # never load the model just to report on it
    loaded = getattr(llm, "adapter", None) if llm is not None else None
    v = (loaded or {}).get("version") or (live or {}).get("version")
    return {"version": v, "live": live, "loaded": loaded, "model_loaded": llm is not None}

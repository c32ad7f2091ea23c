"""Records of consolidation runs, under ``data_dir/consolidation/``.

::

    consolidation/
      state.json            last successful consolidation + ids of consolidated facts
      lock                  flock'ed by the running consolidation (released if it dies)
      runs/<run-id>/run.json  status running|failed|shipped|refused|interrupted|skipped
      runs/<run-id>/...     data.json, metrics, plots, report.md/.html, the LoRA (peft)

``run.json`` is written with status ``running`` (and the pid) before any work;
a SIGTERM marks it ``interrupted``; a run whose process died without a word is
found by the next start (pid gone) and marked ``failed``.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, IO

from trainer.errors import RunBusyError

FINAL = ("failed", "shipped", "refused", "interrupted", "skipped")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t else None


def parse_iso(s: str | None) -> datetime | None:
    if not s:
        return None
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file + os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def consolidation_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "consolidation"


def runs_dir(data_dir: str | os.PathLike) -> Path:
    return consolidation_dir(data_dir) / "runs"


# --- state ------------------------------------------------------------------


def load_state(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The consolidation state.

    ``last_success``: end of the last shipped run; ``since``: the store is asked for
    facts changed after this (not advanced while facts are left pending);
    ``consolidated``: fact id -> time of the fact's last change when it was
    consolidated (so the same version is not trained twice; replay draws from it).
    """
    st = read_json(consolidation_dir(data_dir) / "state.json", {}) or {}
    st.setdefault("last_success", None)
    st.setdefault("since", None)
    st.setdefault("last_run", None)
    st.setdefault("consolidated", {})
    return st


def save_state(data_dir: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write_json(consolidation_dir(data_dir) / "state.json", state)


def last_success(data_dir: str | os.PathLike) -> datetime | None:
    return parse_iso(load_state(data_dir)["last_success"])


# --- runs -------------------------------------------------------------------


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child) is not alive for this purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def list_runs(data_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All run records, oldest first (an unreadable run.json is left out)."""
    out = []
    d = runs_dir(data_dir)
    if d.is_dir():
        for p in d.iterdir():
            try:
                rec = read_json(p / "run.json")
            except (OSError, ValueError):
                continue  # damaged: not a record anyone can act on
            if isinstance(rec, dict) and rec:
                rec["dir"] = str(p)
                out.append(rec)
    return sorted(out, key=lambda r: (r.get("started_at") or "", r.get("started_mono", 0), r["dir"]))


def latest_run(data_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The newest run record, or None before the first run (`knowd status` shows it)."""
    records = list_runs(data_dir)
    return records[-1] if records else None


def mark_stale_runs(data_dir: str | os.PathLike) -> list[str]:
    """Mark every 'running' run whose process is gone as failed; return their ids."""
    stale = []
    for rec in list_runs(data_dir):
        if rec.get("status") == "running" and not _pid_alive(rec.get("pid")):
            path = Path(rec.pop("dir")) / "run.json"
            rec["status"] = "failed"
            rec["reason"] = f"process died (pid {rec.get('pid')} gone while running, phase {rec.get('phase')!r}); found by the next run"
            rec["finished_at"] = rec.get("finished_at") or iso(utcnow())
            atomic_write_json(path, rec)
            stale.append(rec["id"])
    return stale


@dataclass
class RunHandle:
    """The live record of one run; every `update` rewrites run.json atomically."""

    data_dir: Path
    id: str
    dir: Path
    record: dict[str, Any]
    _lock: IO[str] | None = field(default=None, repr=False)
    _t0: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> Path:
        return self.dir / "run.json"

    def update(self, **kw: Any) -> None:
        self.record.update(kw)
        atomic_write_json(self.path, self.record)

    def phase(self, name: str) -> None:
        times = self.record.setdefault("phase_times", {})
        times[name] = round(time.monotonic() - self._t0, 1)
        self.update(phase=name)

    def finish(self, status: str, reason: str = "", **kw: Any) -> None:
        assert status in FINAL, status
        self.record.update(kw)
        self.update(status=status, reason=reason, finished_at=iso(utcnow()), wall_s=round(time.monotonic() - self._t0, 1))
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
            finally:
                self._lock = None


def start_run(data_dir: str | os.PathLike, config: dict[str, Any] | None = None) -> RunHandle:
    """Take the lock, mark stale runs failed, and write run.json with status running."""
    data_dir = Path(data_dir)
    cdir = consolidation_dir(data_dir)
    cdir.mkdir(parents=True, exist_ok=True)
    lock = open(cdir / "lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip()
        lock.close()
        raise RunBusyError(f"another consolidation is running ({holder or 'unknown pid'})")
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    stale = mark_stale_runs(data_dir)
    now = utcnow()
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    rdir = runs_dir(data_dir) / run_id
    rdir.mkdir(parents=True)
    rec = {
        "id": run_id,
        "status": "running",
        "phase": "start",
        "pid": os.getpid(),
        "started_at": iso(now),  # microseconds: orders runs started in the same second
        "finished_at": None,
        "reason": "",
        "stale_runs_marked_failed": stale,
        "config": config or {},
    }
    h = RunHandle(data_dir, run_id, rdir, rec, lock)
    h.update()
    return h

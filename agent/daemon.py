"""`knowd run`: poll the connectors, drain the durable inbox into the ingest graph, consolidate nightly.

Three kinds of work, each on its own thread:

* **polls** (APScheduler, one interval job per enabled connector, the first at
  start): `connector.poll(cursor)` → `store.enqueue_batch(docs, name, state)`,
  which writes the documents to the inbox and advances the cursor in one
  transaction. A poll that dies before that commit is simply repeated; the
  inbox's UNIQUE(doc_id, content_hash) drops what was already queued. A failing
  connector is backed off (its wait doubles from `interval_s` up to
  `daemon.poll_backoff_max_s`), logged on its first failure and on recovery, and
  never stops the others.
* **the worker** drains the inbox one document at a time through
  `ingest_document`, oldest document first (by publication time, across
  connectors: facts are revised in the order things happened). Its commit is one transaction, so a document is either
  ingested or not; marking the inbox row done comes after it, and if the
  process dies in between, the restarted worker finds the row still queued and
  `ingest_document` skips the document it already committed (same id, same
  content hash): every item is ingested exactly once. Failed documents stay in
  the inbox with their error and are retried with exponential backoff
  (`daemon.retry_base_s` doubling up to `retry_max_s`) until
  `ingest.max_attempts`, then stay `failed`, visible in `knowd status`.
* **consolidation** runs `knowd consolidate` as a subprocess at
  `daemon.consolidate_at` (local time), so the daemon never imports torch,
  transformers or peft.

SIGTERM/SIGINT stop it gracefully: no new polls, the model call in flight is the
last one (a document not yet committed is rolled back and stays queued), the
consolidation subprocess gets SIGTERM. A second signal exits at once, which is
also safe: nothing is acknowledged before it is committed.
"""
from __future__ import annotations

import fcntl
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Protocol

from agent.app import App
from agent.config import Config, ConnectorConfig
from agent.errors import InputError, KnowdError
from agent.logging_setup import log_event, setup_logging
from connectors.base import Connector, ConnectorError, PollResult, one_line
from connectors.registry import build_connector
from stores.sqlite import fmt_time
from stores.types import utcnow

log = logging.getLogger("knowd.daemon")

ROOT = Path(__file__).resolve().parent.parent
IDLE_WAIT_S = 1.0  # an idle worker looks for due retries this often (new items wake it at once)
CONFIG_WATCH_S = 2.0  # config.yaml is checked for changes this often (connectors are reloaded)
RELOAD_HEADROOM = 16  # poll threads kept free for connectors added while the daemon runs
PAUSED_KEY = "connector.paused:"  # meta key prefix: a connector paused from the review console
LOCK_NAME = "daemon.lock"
PATH_OPTIONS = ("path", "url")  # connector options that may be file paths relative to config.yaml


def is_paused(store: Any, name: str) -> bool:
    """Whether connector `name` is paused (the console's Pause; kept in the store's meta)."""
    return bool(store.meta_get(PAUSED_KEY + name))


def set_paused(store: Any, name: str, paused: bool) -> None:
    """Pause or resume connector `name`; a running daemon skips its polls while paused."""
    store.meta_set(PAUSED_KEY + name, "1" if paused else "")


class DaemonError(KnowdError):
    """The daemon cannot start: another one holds the data dir, or a service failed to start."""


class Stopping(KnowdError):
    """Raised at the next model call once the daemon is stopping: the document in flight
    is rolled back (nothing is written before the ingest commit) and stays queued."""


class Service(Protocol):
    """Something started and stopped with the daemon (the HTTP API: agent/server.py)."""

    def stop(self) -> None: ...


# `factory(app) -> handle`, called after the store is open and before the first poll.
ServiceFactory = Callable[[App], Service]


# ----------------------------------------------------------------------------- helpers
def resolve_options(cfg: Config, cc: ConnectorConfig) -> dict[str, Any]:
    """The connector's options with relative file paths (`path`, `url` without a scheme)
    resolved against config.yaml's folder, so `knowd run` works from any directory."""
    out = dict(cc.options)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and value and "://" not in value:
            out[key] = str(cfg.path(value))
    return out


def poll_delay(interval_s: float, failures: int, cap_s: float) -> float:
    """Seconds until the next poll: the interval, doubled per consecutive failure, capped
    (never below the interval itself)."""
    if failures <= 0:
        return interval_s
    return max(interval_s, min(interval_s * 2.0 ** min(failures, 60), cap_s))


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Wait before retrying a document after its `attempts`-th failure (1, 2, ...)."""
    return min(base_s * 2.0 ** min(max(attempts - 1, 0), 60), max_s)


def consolidate_command(config_path: str | Path | None) -> list[str]:
    """The nightly consolidation: `knowd [--config PATH] consolidate` in a fresh interpreter
    (`python -m agent`, which does not depend on the console script being on PATH)."""
    cmd = [sys.executable, "-m", "agent"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    return cmd + ["consolidate"]


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


class _StopAwareLLM:
    """The LLM as the worker sees it: built on first use (in the worker thread, so a slow
    model load delays no poll), and refusing new calls once the daemon is stopping."""

    def __init__(self, app: App, stopping: threading.Event):
        self._app = app
        self._stopping = stopping

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app.llm, name)

    def _check(self) -> None:
        if self._stopping.is_set():
            raise Stopping("daemon stopping")

    def complete(self, prompt: str, **kw: Any) -> Any:
        self._check()
        return self._app.llm.complete(prompt, **kw)

    def score_choices(self, prompt: str, choices: list[str], **kw: Any) -> list[float]:
        self._check()
        return self._app.llm.score_choices(prompt, choices, **kw)

    def stream(self, prompt: str, **kw: Any) -> Iterator[str]:
        self._check()
        return self._app.llm.stream(prompt, **kw)


@dataclass
class _Source:
    """A configured connector and its in-memory poll bookkeeping (persisted as its status)."""

    cc: ConnectorConfig
    connector: Connector | None
    started: datetime  # first poll; later ones fall on started + n * interval
    failures: int = 0
    failing_since: datetime | None = None
    not_before: datetime | None = None  # backed off: polls before this are skipped
    polls: int = 0
    items_seen: int = 0
    items_new: int = 0
    warned: dict[str, None] = field(default_factory=dict)  # warnings already logged (bounded)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.cc.name

    @property
    def interval(self) -> float:
        return self.cc.interval_s

    def next_tick(self, after: datetime) -> datetime:
        """The first scheduled poll time at or after `after` (interval ticks from `started`)."""
        n = max(0, math.ceil((after - self.started).total_seconds() / self.interval - 1e-9))
        return self.started + timedelta(seconds=n * self.interval)


# ----------------------------------------------------------------------------- the daemon
class Daemon:
    """Polls connectors, drains the inbox, runs nightly consolidation. See the module docstring.

    `start()`/`stop()` run it in the background (tests, embedding); `run()` blocks until
    SIGTERM/SIGINT; `run_once()` polls every connector once and drains the inbox.
    `extra_services` are started after the store is open and stopped last: the HTTP API
    (`agent.server.start_server`) is plugged in there by `knowd run`.
    """

    def __init__(
        self, app: App, *, config_path: str | Path | None = None,
        extra_services: Sequence[ServiceFactory] = (),
        consolidate_cmd: Sequence[str] | None = None,
    ):
        self.app = app
        self.cfg: Config = app.cfg
        self.config_path = Path(config_path).resolve() if config_path else None
        self.extra_services = list(extra_services)
        self.consolidate_cmd = list(consolidate_cmd) if consolidate_cmd else consolidate_command(self.config_path)
        self.sources: dict[str, _Source] = {}
        self._stopping = threading.Event()
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._services: list[Service] = []
        self._scheduler: Any = None
        self._worker: threading.Thread | None = None
        self._lock_file: IO[str] | None = None
        self._inflight = 0
        self._inflight_cv = threading.Condition()
        self._consolidating = threading.Lock()
        self._consolidation: subprocess.Popen | None = None
        self._ctx: Any = None
        self._ingest_failures = 0  # consecutive failed ingests, over all documents
        self._ingest_streak_logged = False  # whether this run of failures was reported
        self._started = False
        self._stopped = False
        self._reload_lock = threading.RLock()
        self._config_stamp: tuple[int, int] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the data dir's lock, start the services, the scheduler and the worker."""
        try:
            self._setup()
            self._start_services()
            log_event(
                log, "daemon_started", pid=os.getpid(), data_dir=str(self.cfg.data_path),
                connectors=[s.name for s in self.sources.values() if s.connector is not None],
                consolidate_at=self.cfg.daemon.consolidate_at,
            )
            self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        self._worker = threading.Thread(target=self._work, name="knowd-worker", daemon=True)
        self._worker.start()

    def _setup(self) -> None:
        if self._started:
            raise DaemonError("daemon already started")
        self._take_lock()
        self._started = True  # from here on, stop() has something to undo
        if self.config_path is None and getattr(self.app, "config_path", None):
            self.config_path = Path(self.app.config_path).resolve()
        self.app.daemon = self  # the review console (agent/console.py) reloads connectors through it
        store = self.app.store  # built here, in one thread, before any other thread uses it
        store.meta_set("daemon.pid", str(os.getpid()))
        store.meta_set("daemon.started_at", fmt_time(utcnow()) or "")
        self._build_sources()

    def stop(self) -> bool:
        """Stop gracefully; True if the worker and every poll ended in time. False means a
        model call or a poll is still running in a thread: nothing of it will be committed
        (the caller may exit without waiting for it)."""
        if self._stopped or not self._started:
            return True
        self._stopped = True
        timeout = self.cfg.daemon.stop_timeout_s
        deadline = time.monotonic() + timeout
        log_event(log, "daemon_stopping", timeout_s=timeout)
        self._stopping.set()
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        proc = self._consolidation
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the trainer marks its run interrupted
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(max(0.0, deadline - time.monotonic()))
        # A poll still running throws its result away (the cursor does not move), so it
        # is waited for only briefly: a hung feed must not hold the stop for its timeout.
        with self._inflight_cv:
            self._inflight_cv.wait_for(lambda: self._inflight == 0, min(2.0, max(0.0, deadline - time.monotonic())))
        if proc is not None:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for svc in reversed(self._services):
            try:
                svc.stop()
            except Exception as e:  # one service failing to stop must not keep the others running
                log_event(log, "service_stop_failed", logging.ERROR, service=type(svc).__name__, error=one_line(e))
        worker_done = self._worker is None or not self._worker.is_alive()
        if worker_done:
            try:
                self.app.store.meta_set("daemon.stopped_at", fmt_time(utcnow()) or "")
            except Exception as e:  # the store may be what failed; the lock still goes
                log_event(log, "status_write_failed", logging.WARNING, error=one_line(e))
        self._release_lock()
        if getattr(self.app, "daemon", None) is self:
            self.app.daemon = None
        clean = worker_done and self._inflight == 0
        log_event(log, "daemon_stopped", clean=clean, worker_done=worker_done, polls_in_flight=self._inflight)
        return clean

    def request_stop(self) -> None:
        """Ask `run()` to stop (what SIGTERM/SIGINT do); safe from any thread or signal handler."""
        self._stop_requested.set()

    def run(self) -> bool:
        """Start, block until SIGTERM/SIGINT (or `request_stop()`), stop gracefully.
        Returns True if it stopped cleanly."""
        restore = self._install_signals()
        try:
            self.start()
            while not self._stop_requested.wait(0.5):
                pass
            return self.stop()
        finally:
            restore()

    def run_once(self) -> dict[str, float]:
        """Poll every connector once, ingest everything queued and due, stop. Returns how many
        documents were queued and processed, and the seconds spent polling and ingesting."""
        restore = self._install_signals()
        try:
            self._setup()
            t0 = time.monotonic()
            queued = 0
            for src in list(self.sources.values()):
                if src.connector is not None and not self._stop_requested.is_set() and not is_paused(self.app.store, src.name):
                    queued += self.poll(src.name)
            t1 = time.monotonic()
            processed = 0
            while not self._stop_requested.is_set() and self.process_next():
                processed += 1
            return {"queued": queued, "processed": processed, "poll_s": round(t1 - t0, 3),
                    "ingest_s": round(time.monotonic() - t1, 3)}
        finally:
            self.stop()
            restore()

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested.is_set():  # a second signal: hard stop, which is safe too
                log_event(log, "daemon_killed", logging.WARNING, signal=signal.Signals(signum).name)
                logging.shutdown()
                os._exit(128 + signum)
            log_event(log, "signal", signal=signal.Signals(signum).name)
            self._stop_requested.set()
            self._stopping.set()  # the worker's next model call aborts; run() does the rest

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for signum, previous in old.items():
                signal.signal(signum, previous)

        return restore

    def _take_lock(self) -> None:
        data = self.cfg.data_path
        data.mkdir(parents=True, exist_ok=True)
        fh = open(data / LOCK_NAME, "a+")
        deadline = time.monotonic() + 2.0  # `knowd status` probes the lock for a moment
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown pid"
                    fh.close()
                    raise DaemonError(f"another knowd daemon is running on {data} ({holder})") from None
                time.sleep(0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lock_file = fh

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _start_services(self) -> None:
        for factory in self.extra_services:
            try:
                self._services.append(factory(self.app))
            except KnowdError:
                raise
            except Exception as e:
                what = getattr(factory, "__name__", repr(factory))
                raise DaemonError(f"service {what!r} failed to start: {one_line(e)}") from e

    # ------------------------------------------------------------------ connectors and polls
    def _build_sources(self) -> None:
        """Build every enabled connector; one that cannot be built is reported, not fatal."""
        persisted = self.app.store.connector_statuses()
        now = utcnow()
        self._config_stamp = self._stamp()
        for cc in self.cfg.connectors:
            if cc.enabled:
                self._build_source(cc, persisted, now)

    def _build_source(self, cc: ConnectorConfig, persisted: dict[str, dict[str, Any]], now: datetime) -> _Source:
        store = self.app.store
        try:
            connector: Connector | None = build_connector(cc.kind, cc.name, resolve_options(self.cfg, cc))
            error = None
        except ConnectorError as e:
            connector, error = None, one_line(e)
        prev = persisted.get(cc.name, {})
        src = _Source(
            cc, connector, now, polls=prev.get("polls") or 0, items_seen=prev.get("items_seen") or 0,
            items_new=prev.get("items_new") or 0,
        )
        self.sources[cc.name] = src
        if error is not None:
            log_event(log, "connector_invalid", logging.ERROR, connector=cc.name, kind=cc.kind, error=error)
            store.set_connector_status(
                cc.name, kind=cc.kind, last_error=error, last_error_at=now, next_poll_at=None,
            )
        else:
            store.set_connector_status(cc.name, kind=cc.kind, next_poll_at=now)
        return src

    def _add_poll_job(self, src: _Source) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        self._scheduler.add_job(
            self._poll_job, IntervalTrigger(seconds=src.interval, start_date=src.started),
            args=[src.name], id=f"poll:{src.name}", name=f"poll {src.name}", next_run_time=src.started,
            replace_existing=True,
        )

    def _stamp(self) -> tuple[int, int] | None:
        """config.yaml's (mtime, size), to notice an edit (`knowd connectors add`, the console)."""
        if self.config_path is None:
            return None
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def reload_connectors(self) -> dict[str, list[str]]:
        """Re-read config.yaml and apply its `connectors:` list without a restart: a new (or
        re-enabled) connector is built and polled at once, a removed or disabled one stops
        being polled, a changed one is rebuilt. Other sections of the file still need a
        restart. Raises ConfigError (nothing changes) if the file does not validate, and
        DaemonError if the daemon was started without a config file."""
        from agent.config import load_config

        if self.config_path is None:
            raise DaemonError("this daemon was started without a config file: restart it to pick up connectors")
        with self._reload_lock:
            stamp = self._stamp()
            new = load_config(self.config_path)
            self._config_stamp = stamp
            wanted = {cc.name: cc for cc in new.connectors if cc.enabled}
            added: list[str] = []
            removed: list[str] = []
            changed: list[str] = []
            for name, src in list(self.sources.items()):
                cc = wanted.get(name)
                if cc is not None and cc.model_dump() == src.cc.model_dump():
                    continue
                (removed if cc is None else changed).append(name)
                del self.sources[name]
                if self._scheduler is not None:
                    try:
                        self._scheduler.remove_job(f"poll:{name}")
                    except Exception:  # JobLookupError: it could not be built, so it had no job
                        pass
            self.cfg.connectors = new.connectors  # what `knowd status` and the console list
            persisted = self.app.store.connector_statuses()
            now = utcnow()
            for name, cc in wanted.items():
                if name in self.sources:
                    continue
                if name not in changed:
                    added.append(name)
                src = self._build_source(cc, persisted, now)
                if self._scheduler is not None and src.connector is not None and not self._stopping.is_set():
                    self._add_poll_job(src)
            if added or removed or changed:
                log_event(log, "connectors_reloaded", added=added, removed=removed, changed=changed)
            return {"added": added, "removed": removed, "changed": changed}

    def _watch_config(self) -> None:
        """Scheduler job: reload the connectors when config.yaml changed on disk."""
        stamp = self._stamp()
        if stamp is None or stamp == self._config_stamp or self._stopping.is_set():
            return
        try:
            self.reload_connectors()
        except KnowdError as e:
            self._config_stamp = stamp  # reported once per edit, not every few seconds
            log_event(log, "config_reload_failed", logging.WARNING, error=one_line(e))

    def wake(self) -> None:
        """Make the worker look at the inbox now (a document queued or retried from outside)."""
        self._wake.set()

    def _start_scheduler(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # skipped overlapping polls are expected
        live = [s for s in self.sources.values() if s.connector is not None]
        # One thread per connector: a hung source ties up only its own thread (threads are
        # started on demand; the headroom is for connectors added while the daemon runs).
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=len(live) + 3 + RELOAD_HEADROOM)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for src in live:
            self._add_poll_job(src)
        if self.config_path is not None:
            self._scheduler.add_job(
                self._watch_config, IntervalTrigger(seconds=CONFIG_WATCH_S), id="watch-config", name="watch config",
            )
        at = self.cfg.daemon.consolidate_at
        if at:
            hour, minute = (int(x) for x in at.split(":"))
            self._scheduler.add_job(
                self.run_consolidation, CronTrigger(hour=hour, minute=minute), id="consolidate", name="consolidate",
            )
        self._scheduler.start()

    def _poll_job(self, name: str) -> None:
        src = self.sources.get(name)
        if src is None or self._stopping.is_set():
            return  # removed by a reload just as its tick fired
        if is_paused(self.app.store, name):
            return
        # Backoff skips ticks; half an interval of slack so a tick firing a few ms
        # before the computed time is not skipped too.
        if src.not_before and utcnow() < src.not_before - timedelta(seconds=src.interval / 2):
            return
        self.poll(name)

    def poll(self, name: str) -> int:
        """Poll one connector now and queue what it returned; returns the number of new inbox
        items. Errors are recorded and logged, never raised: one source never stops another."""
        src = self.sources.get(name)
        if src is None or src.connector is None or not src.lock.acquire(blocking=False):
            return 0
        with self._inflight_cv:
            self._inflight += 1
        started = utcnow()
        try:
            store = self.app.store
            result = src.connector.poll(store.cursor(name))
            if not isinstance(result, PollResult):
                raise ConnectorError(
                    f"{src.cc.kind} connector {name!r}: poll() returned {type(result).__name__}, not PollResult"
                )
            docs = list(result.documents)
            if self._stopping.is_set() and self._scheduler is not None:
                return 0  # the cursor did not move: the next run polls these again
            new = store.enqueue_batch(docs, name, result.state)
        except Exception as e:  # ConnectorError, or a plugin's bug: this source only
            self._poll_failed(src, e, started)
            return 0
        else:
            self._poll_ok(src, started, len(docs), new, result.warnings)
            if new:
                self._wake.set()
            return new
        finally:
            src.lock.release()
            with self._inflight_cv:
                self._inflight -= 1
                self._inflight_cv.notify_all()

    def _poll_ok(self, src: _Source, started: datetime, seen: int, new: int, warnings: list[str]) -> None:
        now = utcnow()
        if src.failures:
            log_event(
                log, "poll_recovered", connector=src.name, failures=src.failures,
                down_s=round((now - (src.failing_since or now)).total_seconds(), 1),
            )
        src.failures, src.failing_since, src.not_before = 0, None, None
        src.polls += 1
        src.items_seen += seen
        src.items_new += new
        for w in warnings:
            if w not in src.warned:  # the same warning on every poll is logged once
                src.warned[w] = None
                while len(src.warned) > 200:
                    del src.warned[next(iter(src.warned))]
                log_event(log, "poll_warning", logging.WARNING, connector=src.name, warning=w)
        next_at = src.next_tick(now)
        log_event(
            log, "polled", logging.INFO if new else logging.DEBUG, connector=src.name, documents=seen, new=new,
            seconds=round((now - started).total_seconds(), 3),
        )
        self._record(
            src, last_poll_at=started, last_ok_at=started, consecutive_failures=0, polls=src.polls,
            items_seen=src.items_seen, items_new=src.items_new, next_poll_at=next_at,
        )

    def _poll_failed(self, src: _Source, e: Exception, started: datetime) -> None:
        now = utcnow()
        error = one_line(e) if isinstance(e, KnowdError) else f"{type(e).__name__}: {one_line(e)}"
        src.failures += 1
        src.polls += 1
        src.failing_since = src.failing_since or started
        delay = poll_delay(src.interval, src.failures, self.cfg.daemon.poll_backoff_max_s)
        src.not_before = started + timedelta(seconds=delay)
        next_at = src.next_tick(src.not_before - timedelta(seconds=src.interval / 2))
        every = self.cfg.daemon.failure_log_every
        if src.failures == 1:
            log_event(log, "poll_failed", logging.WARNING, connector=src.name, kind=src.cc.kind, error=error,
                      retry_in_s=round(delay, 1))
        elif every and src.failures % every == 0:
            log_event(log, "poll_still_failing", logging.WARNING, connector=src.name, failures=src.failures,
                      error=error, retry_in_s=round(delay, 1))
        else:
            log_event(log, "poll_failed", logging.DEBUG, connector=src.name, failures=src.failures, error=error)
        if not isinstance(e, KnowdError):
            log.debug("poll of %s raised", src.name, exc_info=e)
        self._record(
            src, last_poll_at=started, last_error=error, last_error_at=now, consecutive_failures=src.failures,
            polls=src.polls, next_poll_at=next_at,
        )

    def _record(self, src: _Source, **values: Any) -> None:
        try:
            self.app.store.set_connector_status(src.name, kind=src.cc.kind, **values)
        except Exception as e:  # status is for people; failing to write it must not fail the poll
            log_event(log, "status_write_failed", logging.WARNING, connector=src.name, error=one_line(e))

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # cleared before looking, so a poll finishing meanwhile wakes us
            try:
                did = self.process_next()
            except Exception as e:  # the store itself failing (disk full, locked): wait, try again
                log_event(log, "worker_error", logging.ERROR, error=f"{type(e).__name__}: {one_line(e)}")
                log.debug("worker error", exc_info=e)
                self._stopping.wait(5.0)
                continue
            if not did:
                self._wake.wait(IDLE_WAIT_S)

    def _ingest_context(self) -> Any:
        if self._ctx is None:
            from graphs.ingest import IngestContext

            self._ctx = IngestContext(
                store=self.app.store, index=self.app.index, llm=_StopAwareLLM(self.app, self._stopping),
                cfg=self.cfg.ingest,
            )
        return self._ctx

    def process_next(self) -> bool:
        """Ingest the oldest due inbox item; False if there is none (or the daemon is stopping)."""
        from graphs.ingest import IngestResult, ingest_document

        if self._stopping.is_set() and self._scheduler is not None:
            return False
        store = self.app.store
        item = store.next_inbox_item_by_time(utcnow())
        if item is None:
            return False
        item_id, doc, attempts = item
        t0 = time.monotonic()
        try:
            result = ingest_document(doc, self._ingest_context())
        except Stopping:
            log_event(log, "ingest_interrupted", doc_id=doc.id)
            return False
        except InputError as e:  # nothing to ingest (empty text): retrying cannot help
            self._finish(item_id, ok=False, error=one_line(e, 2000))
            log_event(log, "ingest_rejected", logging.WARNING, doc_id=doc.id, error=one_line(e))
            return True
        except Exception as e:  # the index, the model loader, a bug: kept and retried like a model failure
            log.debug("ingest of %s raised", doc.id, exc_info=e)
            result = IngestResult(doc.id, "failed", error=f"{type(e).__name__}: {one_line(e, 2000)}")
        seconds = round(time.monotonic() - t0, 3)
        if result.status in ("done", "skipped"):
            self._finish(item_id, ok=True)
            if self._ingest_failures and self._ingest_streak_logged:
                log_event(log, "ingest_recovered", failures=self._ingest_failures)
            self._ingest_failures, self._ingest_streak_logged = 0, False
            log_event(
                log, "ingested", doc_id=doc.id, source=doc.source, status=result.status,
                changes={k: v for k, v in result.counts.items() if v}, calls=result.calls, seconds=seconds,
            )
            return True
        tries = attempts + 1
        max_attempts = self.cfg.ingest.max_attempts
        retry_at = None
        if tries < max_attempts:
            wait = retry_delay(tries, self.cfg.daemon.retry_base_s, self.cfg.daemon.retry_max_s)
            retry_at = utcnow() + timedelta(seconds=wait)
        self._finish(item_id, ok=False, error=(result.error or "failed")[:2000], retry_at=retry_at)
        # Logged once per outage, not once per document: a document's first failure is a
        # warning unless other documents are already failing (the model server is down);
        # its retries are debug; giving up on it is always an error.
        first_of_streak = self._ingest_failures == 0
        self._ingest_failures += 1
        every = self.cfg.daemon.failure_log_every
        fields = {"doc_id": doc.id, "attempt": tries, "error": one_line(result.error or "failed"),
                  "retry_at": fmt_time(retry_at)}
        if retry_at is None:
            log_event(log, "ingest_gave_up", logging.ERROR, max_attempts=max_attempts, **fields)
        elif first_of_streak and tries == 1:
            log_event(log, "ingest_failed", logging.WARNING, **fields)
            self._ingest_streak_logged = True
        elif every and self._ingest_failures % every == 0:
            log_event(log, "ingest_still_failing", logging.WARNING, failures=self._ingest_failures, **fields)
            self._ingest_streak_logged = True
        else:
            log_event(log, "ingest_failed", logging.DEBUG, **fields)
        return True

    def _finish(self, item_id: int, ok: bool, error: str | None = None, retry_at: datetime | None = None) -> None:
        store = self.app.store
        with store.transaction() as c:
            store.finish_inbox_item(c, item_id, ok, error, retry_at)

    # ------------------------------------------------------------------ consolidation
    def run_consolidation(self) -> int | None:
        """Run `knowd consolidate` as a subprocess and wait; returns its exit code
        (None if one is already running or the daemon is stopping)."""
        if self._stopping.is_set() or not self._consolidating.acquire(blocking=False):
            log_event(log, "consolidation_skipped", reason="stopping" if self._stopping.is_set() else "already running")
            return None
        try:
            out_dir = self.cfg.data_path / "consolidation"
            out_dir.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            # a source checkout that was never pip-installed still finds the agent package
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
            t0 = time.monotonic()
            log_event(log, "consolidation_started", command=self.consolidate_cmd)
            with open(out_dir / "daemon-consolidate.log", "ab") as out:
                # its own session: a Ctrl-C on the terminal reaches the daemon, which forwards SIGTERM
                self._consolidation = subprocess.Popen(
                    self.consolidate_cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=str(ROOT), env=env, start_new_session=True,
                )
                rc = self._consolidation.wait()
            log_event(
                log, "consolidation_finished", logging.INFO if rc == 0 else logging.WARNING, exit_code=rc,
                seconds=round(time.monotonic() - t0, 1), output=str(out_dir / "daemon-consolidate.log"),
            )
            return rc
        except OSError as e:
            log_event(log, "consolidation_failed", logging.ERROR, error=one_line(e))
            return None
        finally:
            self._consolidation = None
            self._consolidating.release()


# ----------------------------------------------------------------------------- status
def _iso(t: datetime | None) -> str | None:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if t else None


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
            **{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items() if k not in ("kind",)},
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


# ----------------------------------------------------------------------------- entry point
def run_daemon(
    app: App, *, config_path: str | Path | None = None, extra_services: Sequence[ServiceFactory] = (),
    once: bool = False, log_stream: IO[str] | None = None,
) -> int:
    """What `knowd run` does: structured logging, then the daemon until a signal. Exit code."""
    d = app.cfg.daemon
    level = "debug" if logging.getLogger().level == logging.DEBUG else d.log_level
    setup_logging(d.log_format, level, log_stream)
    # The worker reports ingest failures itself (deduplicated); the graph's own
    # warning would repeat each one.
    logging.getLogger("graphs.ingest").setLevel(logging.ERROR)
    daemon = Daemon(app, config_path=config_path, extra_services=extra_services)
    if once:
        counts = daemon.run_once()
        log_event(log, "run_once_done", **counts)
        return 0
    clean = daemon.run()
    if not clean:
        # The worker is still inside a model call (its document is not committed and stays
        # queued) or a poll is still waiting on its source (its result is thrown away).
        # Exit now, rather than wait for them at interpreter shutdown.
        log_event(log, "stop_timeout", logging.WARNING, timeout_s=d.stop_timeout_s)
        logging.shutdown()
        os._exit(0)
    return 0

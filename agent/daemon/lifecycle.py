"""The daemon itself: the data dir's lock, signals, the scheduler, extra services, and the
three parts it owns (agent/daemon/sources.py polls, worker.py drains the inbox, nightly.py
consolidates).

SIGTERM/SIGINT stop it gracefully: no new polls, the model call in flight is the last one
(a document not yet committed is rolled back and stays queued), the consolidation
subprocess gets SIGTERM. A second signal exits at once, which is also safe: nothing is
acknowledged before it is committed.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from agent.app import App
from agent.config import Config
from agent.daemon.nightly import Nightly, consolidate_command
from agent.daemon.sources import Source, Sources
from agent.daemon.status import LOCK_NAME
from agent.daemon.worker import Worker
from agent.errors import KnowdError
from agent.logging_setup import log_event, setup_logging
from connectors.base import one_line
from stores.sqlite import fmt_time
from stores.types import utcnow

log = logging.getLogger("knowd.daemon")

RELOAD_HEADROOM = 16  # poll threads kept free for connectors added while the daemon runs


class DaemonError(KnowdError):
    """The daemon cannot start: another one holds the data dir, or a service failed to start."""


class Service(Protocol):
    """Something started and stopped with the daemon (the HTTP API: agent/server.py)."""

    def stop(self) -> None: ...


# `factory(app) -> handle`, called after the store is open and before the first poll.
ServiceFactory = Callable[[App], Service]


class Daemon:
    """Polls connectors, drains the inbox, runs nightly consolidation (agent/daemon/__init__.py).

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
        self._stopping = threading.Event()
        self._stop_requested = threading.Event()
        self.worker = Worker(app, self._stopping)
        self.poller = Sources(app, self._stopping, on_new=self.worker.wake)
        cmd = list(consolidate_cmd) if consolidate_cmd else consolidate_command(self.config_path)
        self.nightly = Nightly(cmd, self.cfg.data_path, self._stopping)
        self._services: list[Service] = []
        self._scheduler: Any = None
        self._lock_file: IO[str] | None = None
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ what others call
    @property
    def sources(self) -> dict[str, Source]:
        """The enabled connectors by name (reloads change it in place)."""
        return self.poller.by_name

    @property
    def consolidate_cmd(self) -> list[str]:
        return self.nightly.cmd

    def poll(self, name: str) -> int:
        """Poll one connector now and queue what it returned; the number of new inbox items."""
        return self.poller.poll(name)

    def _poll_job(self, name: str) -> None:
        self.poller.poll_job(name)

    def process_next(self) -> bool:
        """Ingest the oldest due inbox item; False if there is none (or the daemon is stopping)."""
        return self.worker.process_next()

    def wake(self) -> None:
        """Make the worker look at the inbox now (a document queued or retried from outside)."""
        self.worker.wake()

    def run_consolidation(self) -> int | None:
        """Run `knowd consolidate` as a subprocess and wait; returns its exit code
        (None if one is already running or the daemon is stopping)."""
        return self.nightly.run()

    def reload_connectors(self) -> dict[str, list[str]]:
        """Re-read config.yaml and apply its `connectors:` list without a restart: a new (or
        re-enabled) connector is built and polled at once, a removed or disabled one stops
        being polled, a changed one is rebuilt. Other sections of the file still need a
        restart. Raises ConfigError (nothing changes) if the file does not validate, and
        DaemonError if the daemon was started without a config file."""
        if self.config_path is None:
            raise DaemonError("this daemon was started without a config file: restart it to pick up connectors")
        self.poller.config_path = self.config_path
        return self.poller.reload()

    # ------------------------------------------------------------------ start and stop
    def start(self) -> None:
        """Take the data dir's lock, start the services, the scheduler and the worker."""
        try:
            self._setup()
            self._start_services()
            log_event(
                log, "daemon_started", pid=os.getpid(), data_dir=str(self.cfg.data_path),
                connectors=[s.name for s in self.poller.live()],
                consolidate_at=self.cfg.daemon.consolidate_at,
            )
            self._start_scheduler()
        except BaseException:
            self.stop()
            raise
        self.worker.start()

    def _setup(self) -> None:
        if self._started:
            raise DaemonError("daemon already started")
        self._take_lock()
        self._started = True  # from here on, stop() has something to undo
        if self.config_path is None and getattr(self.app, "config_path", None):
            self.config_path = Path(self.app.config_path).resolve()
        self.poller.config_path = self.config_path
        self.app.daemon = self  # the review console (agent/console.py) reloads connectors through it
        store = self.app.store  # built here, in one thread, before any other thread uses it
        store.meta_set("daemon.pid", str(os.getpid()))
        store.meta_set("daemon.started_at", fmt_time(utcnow()) or "")
        self.poller.build()

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
        self.worker.wake()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        proc = self.nightly.terminate()
        self.worker.join(deadline - time.monotonic())
        # A poll still running throws its result away (the cursor does not move), so it
        # is waited for only briefly: a hung feed must not hold the stop for its timeout.
        self.poller.wait_polls(min(2.0, max(0.0, deadline - time.monotonic())))
        Nightly.reap(proc, deadline - time.monotonic())
        self._stop_services()
        worker_done = self.worker.done
        if worker_done:
            try:
                self.app.store.meta_set("daemon.stopped_at", fmt_time(utcnow()) or "")
            except Exception as e:  # the store may be what failed; the lock still goes
                log_event(log, "status_write_failed", logging.WARNING, error=one_line(e))
        self._release_lock()
        if getattr(self.app, "daemon", None) is self:
            self.app.daemon = None
        inflight = self.poller.inflight
        clean = worker_done and inflight == 0
        log_event(log, "daemon_stopped", clean=clean, worker_done=worker_done, polls_in_flight=inflight)
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
            queued = self.poller.poll_all(self._stop_requested.is_set)
            t1 = time.monotonic()
            processed = 0
            while not self._stop_requested.is_set() and self.worker.process_next():
                processed += 1
            return {"queued": queued, "processed": processed, "poll_s": round(t1 - t0, 3),
                    "ingest_s": round(time.monotonic() - t1, 3)}
        finally:
            self.stop()
            restore()

    # ------------------------------------------------------------------ signals, lock, services, scheduler
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

    def _stop_services(self) -> None:
        for svc in reversed(self._services):
            try:
                svc.stop()
            except Exception as e:  # one service failing to stop must not keep the others running
                log_event(log, "service_stop_failed", logging.ERROR, service=type(svc).__name__, error=one_line(e))

    def _start_scheduler(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger

        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # skipped overlapping polls are expected
        # One thread per connector: a hung source ties up only its own thread (threads are
        # started on demand; the headroom is for connectors added while the daemon runs).
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=len(self.poller.live()) + 3 + RELOAD_HEADROOM)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.poller.schedule(self._scheduler)
        at = self.cfg.daemon.consolidate_at
        if at:
            hour, minute = (int(x) for x in at.split(":"))
            self._scheduler.add_job(
                self.run_consolidation, CronTrigger(hour=hour, minute=minute), id="consolidate", name="consolidate",
            )
        self._scheduler.start()


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

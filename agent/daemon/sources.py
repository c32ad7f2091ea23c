"""The daemon's connectors and their polls: building them from config.yaml, one scheduler
job per connector, backoff of a failing one, the console's pause, and reloading the
`connectors:` list when config.yaml changes while the daemon runs.

A poll is `connector.poll(cursor)` → `store.enqueue_batch(docs, name, state)`, which writes
the documents to the inbox and advances the cursor in one transaction. A poll that dies
before that commit is simply repeated; the inbox's UNIQUE(doc_id, content_hash) drops what
was already queued. A failing connector is backed off (its wait doubles from `interval_s`
up to `daemon.poll_backoff_max_s`), logged on its first failure and on recovery, and never
stops the others.
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.app import App
from agent.config import Config, ConnectorConfig
from agent.errors import KnowdError
from agent.logging_setup import log_event
from connectors.base import Connector, ConnectorError, PollResult, one_line
from connectors.registry import build_connector
from stores.types import utcnow

log = logging.getLogger("knowd.daemon")

CONFIG_WATCH_S = 2.0  # config.yaml is checked for changes this often (connectors are reloaded)
PAUSED_KEY = "connector.paused:"  # meta key prefix: a connector paused from the review console
PATH_OPTIONS = ("path", "url")  # connector options that may be file paths relative to config.yaml


def is_paused(store: Any, name: str) -> bool:
    """Whether connector `name` is paused (the console's Pause; kept in the store's meta)."""
    return bool(store.meta_get(PAUSED_KEY + name))


def set_paused(store: Any, name: str, paused: bool) -> None:
    """Pause or resume connector `name`; a running daemon skips its polls while paused."""
    store.meta_set(PAUSED_KEY + name, "1" if paused else "")


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


@dataclass
class Source:
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


class Sources:
    """The enabled connectors of config.yaml (`by_name`) and everything about polling them.

    `schedule(scheduler)` adds one interval job per connector (and the config.yaml watch);
    before that (`knowd run --once`) `poll_all()` polls each once. `on_new()` is called when
    a poll queued something new (it wakes the worker).
    """

    def __init__(self, app: App, stopping: threading.Event, on_new: Callable[[], None]):
        self.app = app
        self.cfg: Config = app.cfg
        self.by_name: dict[str, Source] = {}
        self.config_path: Path | None = None  # set by the daemon before build(); None: no reload
        self.scheduler: Any = None
        self._stopping = stopping
        self._on_new = on_new
        self._inflight = 0
        self._inflight_cv = threading.Condition()
        self._reload_lock = threading.RLock()
        self._config_stamp: tuple[int, int] | None = None

    # ------------------------------------------------------------------ building
    def build(self) -> None:
        """Build every enabled connector; one that cannot be built is reported, not fatal."""
        persisted = self.app.store.connector_statuses()
        now = utcnow()
        self._config_stamp = self._stamp()
        for cc in self.cfg.connectors:
            if cc.enabled:
                self._build_source(cc, persisted, now)

    def live(self) -> list[Source]:
        """The sources whose connector could be built (those that are polled)."""
        return [s for s in self.by_name.values() if s.connector is not None]

    def _build_source(self, cc: ConnectorConfig, persisted: dict[str, dict[str, Any]], now: datetime) -> Source:
        store = self.app.store
        try:
            connector: Connector | None = build_connector(cc.kind, cc.name, resolve_options(self.cfg, cc))
            error = None
        except ConnectorError as e:
            connector, error = None, one_line(e)
        prev = persisted.get(cc.name, {})
        src = Source(
            cc, connector, now, polls=prev.get("polls") or 0, items_seen=prev.get("items_seen") or 0,
            items_new=prev.get("items_new") or 0,
        )
        self.by_name[cc.name] = src
        if error is not None:
            log_event(log, "connector_invalid", logging.ERROR, connector=cc.name, kind=cc.kind, error=error)
            store.set_connector_status(
                cc.name, kind=cc.kind, last_error=error, last_error_at=now, next_poll_at=None,
            )
        else:
            store.set_connector_status(cc.name, kind=cc.kind, next_poll_at=now)
        return src

    # ------------------------------------------------------------------ scheduling
    def schedule(self, scheduler: Any) -> None:
        """Add a poll job per live connector, and the config.yaml watch, to `scheduler`."""
        from apscheduler.triggers.interval import IntervalTrigger

        self.scheduler = scheduler
        for src in self.live():
            self._add_poll_job(src)
        if self.config_path is not None:
            scheduler.add_job(
                self.watch_config, IntervalTrigger(seconds=CONFIG_WATCH_S), id="watch-config", name="watch config",
            )

    def _add_poll_job(self, src: Source) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        self.scheduler.add_job(
            self.poll_job, IntervalTrigger(seconds=src.interval, start_date=src.started),
            args=[src.name], id=f"poll:{src.name}", name=f"poll {src.name}", next_run_time=src.started,
            replace_existing=True,
        )

    # ------------------------------------------------------------------ reloading config.yaml
    def _stamp(self) -> tuple[int, int] | None:
        """config.yaml's (mtime, size), to notice an edit (`knowd connectors add`, the console)."""
        if self.config_path is None:
            return None
        try:
            st = self.config_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def reload(self) -> dict[str, list[str]]:
        """Re-read config.yaml (`config_path`, which must be set) and apply its `connectors:`
        list: see `Daemon.reload_connectors`. Raises ConfigError (nothing changes) if the file
        does not validate."""
        from agent.config import load_config

        assert self.config_path is not None
        with self._reload_lock:
            stamp = self._stamp()
            new = load_config(self.config_path)
            self._config_stamp = stamp
            wanted = {cc.name: cc for cc in new.connectors if cc.enabled}
            removed: list[str] = []
            changed: list[str] = []
            for name, src in list(self.by_name.items()):
                cc = wanted.get(name)
                if cc is not None and cc.model_dump() == src.cc.model_dump():
                    continue
                (removed if cc is None else changed).append(name)
                self._drop(name)
            self.cfg.connectors = new.connectors  # what `knowd status` and the console list
            added = self._add_wanted(wanted, changed)
            if added or removed or changed:
                log_event(log, "connectors_reloaded", added=added, removed=removed, changed=changed)
            return {"added": added, "removed": removed, "changed": changed}

    def _drop(self, name: str) -> None:
        del self.by_name[name]
        if self.scheduler is not None:
            try:
                self.scheduler.remove_job(f"poll:{name}")
            except Exception:  # JobLookupError: it could not be built, so it had no job
                pass

    def _add_wanted(self, wanted: dict[str, ConnectorConfig], changed: list[str]) -> list[str]:
        """Build (and schedule) the wanted connectors not running yet; returns the new names."""
        added: list[str] = []
        persisted = self.app.store.connector_statuses()
        now = utcnow()
        for name, cc in wanted.items():
            if name in self.by_name:
                continue
            if name not in changed:
                added.append(name)
            src = self._build_source(cc, persisted, now)
            if self.scheduler is not None and src.connector is not None and not self._stopping.is_set():
                self._add_poll_job(src)
        return added

    def watch_config(self) -> None:
        """Scheduler job: reload the connectors when config.yaml changed on disk."""
        stamp = self._stamp()
        if stamp is None or stamp == self._config_stamp or self._stopping.is_set():
            return
        try:
            self.reload()
        except KnowdError as e:
            self._config_stamp = stamp  # reported once per edit, not every few seconds
            log_event(log, "config_reload_failed", logging.WARNING, error=one_line(e))

    # ------------------------------------------------------------------ polls
    def poll_all(self, should_stop: Callable[[], bool]) -> int:
        """Poll every live, unpaused connector once (`knowd run --once`); new inbox items."""
        queued = 0
        for src in list(self.by_name.values()):
            if src.connector is not None and not should_stop() and not is_paused(self.app.store, src.name):
                queued += self.poll(src.name)
        return queued

    def poll_job(self, name: str) -> None:
        """Scheduler job: poll `name` unless it is gone, paused or backed off."""
        src = self.by_name.get(name)
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
        src = self.by_name.get(name)
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
            if self._stopping.is_set() and self.scheduler is not None:
                return 0  # the cursor did not move: the next run polls these again
            new = store.enqueue_batch(docs, name, result.state)
        except Exception as e:  # ConnectorError, or a plugin's bug: this source only
            self._poll_failed(src, e, started)
            return 0
        else:
            self._poll_ok(src, started, len(docs), new, result.warnings)
            if new:
                self._on_new()
            return new
        finally:
            src.lock.release()
            with self._inflight_cv:
                self._inflight -= 1
                self._inflight_cv.notify_all()

    @property
    def inflight(self) -> int:
        """Polls running now."""
        return self._inflight

    def wait_polls(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the polls in flight; True if none is left."""
        with self._inflight_cv:
            return self._inflight_cv.wait_for(lambda: self._inflight == 0, timeout)

    def _poll_ok(self, src: Source, started: datetime, seen: int, new: int, warnings: list[str]) -> None:
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

    def _poll_failed(self, src: Source, e: Exception, started: datetime) -> None:
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

    def _record(self, src: Source, **values: Any) -> None:
        try:
            self.app.store.set_connector_status(src.name, kind=src.cc.kind, **values)
        except Exception as e:  # status is for people; failing to write it must not fail the poll
            log_event(log, "status_write_failed", logging.WARNING, connector=src.name, error=one_line(e))


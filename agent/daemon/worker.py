"""The inbox worker: drains the durable inbox one document at a time through the ingest graph,
oldest document first (by publication time, across connectors: facts are revised in the
order things happened), on its own thread.

A document's ingest commits in one transaction; marking its inbox row done comes after it,
and if the process dies in between, the restarted worker finds the row still queued and the
ingest skips the document it already committed (same id, same content hash): every item is
ingested exactly once.

A failure is retried only if retrying can help (`is_transient`): the model server or the
vector index down, a timeout, a busy database. Those stay in the inbox with their error and
are retried with exponential backoff (`daemon.retry_base_s` doubling up to `retry_max_s`)
until `ingest.max_attempts`. A deterministic failure (no text, model output that does not
validate from a greedy model, a parser's error, a bug) fails the same way every time: it is
failed at once with its reason and logged once; the console's Retry queues it again by hand.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from agent.app import App
from agent.errors import InputError, KnowdError
from agent.logging_setup import log_event
from connectors.base import one_line
from stores.sqlite import fmt_time
from stores.types import Document, utcnow

log = logging.getLogger("knowd.daemon")

IDLE_WAIT_S = 1.0  # an idle worker looks for due retries this often (new items wake it at once)
STORE_ERROR_WAIT_S = 5.0  # the store itself failed (disk full, locked): the worker waits this long


class Stopping(KnowdError):
    """Raised at the next model call once the daemon is stopping: the document in flight
    is rolled back (nothing is written before the ingest commit) and stays queued."""


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Wait before retrying a document after its `attempts`-th failure (1, 2, ...)."""
    return min(base_s * 2.0 ** min(max(attempts - 1, 0), 60), max_s)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same work later can help: knowd's transient errors (BackendError,
    IndexUnavailable: `transient = True`), a connection error or timeout, a locked or busy
    SQLite database. Anything else fails the same way again."""
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        msg = str(exc).lower()
        return "locked" in msg or "busy" in msg
    return False


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


class Worker:
    """Takes due inbox items and ingests them: `process_next()` is one step; `start()` runs
    steps on a thread until `stopping` is set, woken at once by `wake()`."""

    def __init__(self, app: App, stopping: threading.Event):
        self.app = app
        self.cfg = app.cfg
        self._stopping = stopping
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx: Any = None
        self._failures = 0  # consecutive transient failures, over all documents
        self._streak_logged = False  # whether this run of failures was reported

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="knowd-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the inbox now (a document was queued or retried)."""
        self._wake.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, timeout))

    @property
    def done(self) -> bool:
        """True if the thread was never started or has ended."""
        return self._thread is None or not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # cleared before looking, so a poll finishing meanwhile wakes us
            try:
                did = self.process_next()
            except Exception as e:  # the store itself failing (disk full, locked): wait, try again
                log_event(log, "worker_error", logging.ERROR, error=f"{type(e).__name__}: {one_line(e)}")
                log.debug("worker error", exc_info=e)
                self._stopping.wait(STORE_ERROR_WAIT_S)
                continue
            if not did:
                self._wake.wait(IDLE_WAIT_S)

    # ------------------------------------------------------------------ one document
    def _context(self) -> Any:
        if self._ctx is None:
            from graphs.ingest import IngestContext

            self._ctx = IngestContext(
                store=self.app.store, index=self.app.index, llm=_StopAwareLLM(self.app, self._stopping),
                cfg=self.cfg.ingest,
            )
        return self._ctx

    def _ingest(self, doc: Document) -> Any:
        """Ingest `doc`; then make sure what it committed reached the vector index. A sync
        that failed after an earlier commit raised a transient error: the retry finds the
        document committed (the ingest skips it) and syncs again, from the store's queue."""
        from graphs.ingest import ingest_document

        ctx = self._context()
        result = ingest_document(doc, ctx)
        if result.status in ("done", "skipped"):
            ctx.index.sync(self.app.store)  # nothing queued (the usual case): no call to the index
        return result

    def process_next(self) -> bool:
        """Ingest the oldest due inbox item; False if there is none (or the daemon is stopping)."""
        if self._stopping.is_set() and self._thread is not None:
            return False
        item = self.app.store.next_inbox_item_by_time(utcnow())
        if item is None:
            return False
        item_id, doc, attempts = item
        t0 = time.monotonic()
        try:
            result = self._ingest(doc)
        except Stopping:
            log_event(log, "ingest_interrupted", doc_id=doc.id)
            return False
        except InputError as e:  # nothing to ingest (empty text): retrying cannot help
            self._finish(item_id, ok=False, error=one_line(e, 2000))
            log_event(log, "ingest_rejected", logging.WARNING, doc_id=doc.id, error=one_line(e))
            return True
        except Exception as e:  # the index, the model loader, the store, a bug: its kind decides
            log.debug("ingest of %s raised", doc.id, exc_info=e)
            transient = is_transient(e)
            if transient:  # the next try builds the context afresh: the index, the names from the store
                self._ctx = None
            self._failed(item_id, doc, attempts + 1, f"{type(e).__name__}: {one_line(e, 2000)}", transient)
            return True
        if result.status in ("done", "skipped"):
            self._succeeded(item_id, doc, result, round(time.monotonic() - t0, 3))
            return True
        # a failure ingest recorded (invalid model output, the model server down): its kind decides
        self._failed(item_id, doc, attempts + 1, result.error or "failed", bool(getattr(result, "transient", False)))
        return True

    def _succeeded(self, item_id: int, doc: Document, result: Any, seconds: float) -> None:
        self._finish(item_id, ok=True)
        if self._failures and self._streak_logged:
            log_event(log, "ingest_recovered", failures=self._failures)
        self._failures, self._streak_logged = 0, False
        log_event(
            log, "ingested", doc_id=doc.id, source=doc.source, status=result.status,
            changes={k: v for k, v in result.counts.items() if v}, calls=result.calls, seconds=seconds,
        )

    def _failed(self, item_id: int, doc: Document, tries: int, error: str, transient: bool) -> None:
        """Keep the failed item: due again after its backoff if the failure was transient and
        attempts are left; otherwise failed for good, with its reason."""
        max_attempts = self.cfg.ingest.max_attempts
        retry_at: datetime | None = None
        if transient and tries < max_attempts:
            wait = retry_delay(tries, self.cfg.daemon.retry_base_s, self.cfg.daemon.retry_max_s)
            retry_at = utcnow() + timedelta(seconds=wait)
        self._finish(item_id, ok=False, error=error[:2000], retry_at=retry_at)
        fields = {"doc_id": doc.id, "attempt": tries, "error": one_line(error), "retry_at": fmt_time(retry_at),
                  "transient": transient}
        if not transient:  # the same input fails the same way: one line, with its reason
            log_event(log, "ingest_failed", logging.WARNING, **fields)
            return
        # Logged once per outage, not once per document: a document's first failure is a
        # warning unless other documents are already failing (the model server is down);
        # its retries are debug; giving up on it is always an error.
        first_of_streak = self._failures == 0
        self._failures += 1
        every = self.cfg.daemon.failure_log_every
        if retry_at is None:
            log_event(log, "ingest_gave_up", logging.ERROR, max_attempts=max_attempts, **fields)
        elif first_of_streak and tries == 1:
            log_event(log, "ingest_failed", logging.WARNING, **fields)
            self._streak_logged = True
        elif every and self._failures % every == 0:
            log_event(log, "ingest_still_failing", logging.WARNING, failures=self._failures, **fields)
            self._streak_logged = True
        else:
            log_event(log, "ingest_failed", logging.DEBUG, **fields)

    def _finish(self, item_id: int, ok: bool, error: str | None = None, retry_at: datetime | None = None) -> None:
        store = self.app.store
        with store.transaction() as c:
            store.finish_inbox_item(c, item_id, ok, error, retry_at)

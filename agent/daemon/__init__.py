"""`knowd run`: poll the connectors, drain the durable inbox into the ingest graph, consolidate nightly.

Three kinds of work, each on its own thread, each in its own module:

* **polls** (`sources.py`; APScheduler, one interval job per enabled connector, the first
  at start): `connector.poll(cursor)` → `store.enqueue_batch(docs, name, state)`, which
  writes the documents to the inbox and advances the cursor in one transaction. A failing
  connector is backed off and never stops the others; config.yaml's `connectors:` list is
  reloaded when the file changes.
* **the worker** (`worker.py`) drains the inbox one document at a time through
  `ingest_document`, oldest document first. Every item is ingested exactly once. A failure
  that may pass (the model server or the vector index down) is retried with exponential
  backoff (`daemon.retry_base_s` doubling up to `retry_max_s`) until `ingest.max_attempts`;
  one that would fail the same way again (no text, invalid model output) fails at once with
  its reason. Failed documents stay in the inbox, visible in `knowd status`.
* **consolidation** (`nightly.py`) runs `knowd consolidate` as a subprocess at
  `daemon.consolidate_at` (local time), so the daemon never imports torch, transformers or peft.

`lifecycle.py` holds the `Daemon` that owns the three (the data dir's lock, signals, the
scheduler, extra services such as the HTTP API) and `run_daemon`, what `knowd run` calls;
`status.py` what `knowd status` shows.
"""
from __future__ import annotations

from agent.daemon.lifecycle import Daemon, DaemonError, Service, ServiceFactory, run_daemon
from agent.daemon.nightly import Nightly, consolidate_command
from agent.daemon.sources import (
    CONFIG_WATCH_S, PAUSED_KEY, Source, Sources, is_paused, poll_delay, resolve_options, set_paused,
)
from agent.daemon.status import LOCK_NAME, collect_status, daemon_pid, last_consolidation
from agent.daemon.worker import IDLE_WAIT_S, Stopping, Worker, is_transient, retry_delay

__all__ = [
    "CONFIG_WATCH_S", "IDLE_WAIT_S", "LOCK_NAME", "PAUSED_KEY", "Daemon", "DaemonError", "Nightly", "Service",
    "ServiceFactory", "Source", "Sources", "Stopping", "Worker", "collect_status", "consolidate_command",
    "daemon_pid", "is_paused", "is_transient", "last_consolidation", "poll_delay", "resolve_options",
    "retry_delay", "run_daemon", "set_paused",
]

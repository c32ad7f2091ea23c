"""The worker's retry policy reads the error's kind (agent/daemon/worker.py, docs/daemon.md).

* Deterministic failures fail once, with their reason, and are never tried again: a
  document the parser rejects (no text), a model whose output does not validate (the
  ERASE path), an error the model call raises that is not transient.
* A transient failure, the vector index down (a real Chroma server, stopped and started
  again), is retried with backoff and ends done once the index is back, also when the
  index went down between the document's SQLite commit and its index sync.
"""
from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

import agent.daemon.worker as worker_mod
from agent.app import App
from agent.config import config_from_dict
from agent.daemon import Daemon, is_transient
from agent.errors import BackendError, InputError, ModelLimitError, ModelOutputError
from graphs.testing import FakeLLM
from stores.errors import KnowdError, TransientError
from stores.testing import HashEmbedder
from stores.types import Document
from stores.vector import IndexUnavailable
from tests.test_daemon_sources import Events, events  # noqa: F401 - fixture

RETRY_BASE_S = 0.1
RETRY_MAX_S = 0.4


def _doc(i: str, text: str, month: int = 1) -> Document:
    return Document(id=i, text=text, source="test", published_at=datetime(2024, month, 1, tzinfo=timezone.utc))


def _wait(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _item(app: App, doc_id: str) -> dict:
    """The inbox row of `doc_id`, whatever its status."""
    for status in ("queued", "failed", "done"):
        for row in app.store.inbox_items(status, 100):
            if row["doc_id"] == doc_id:
                return row
    raise AssertionError(f"{doc_id} is not in the inbox")


@pytest.fixture(autouse=True)
def fast_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_mod, "IDLE_WAIT_S", 0.02)  # due retries are noticed at once


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(llm: FakeLLM | None = None, **sections: dict) -> App:
        raw: dict = {"data_dir": str(tmp_path / "data"),
                     "daemon": {"consolidate_at": None, "retry_base_s": RETRY_BASE_S, "retry_max_s": RETRY_MAX_S}}
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value}
        app = App(config_from_dict(raw, base_dir=tmp_path), llm=llm or FakeLLM(), embedder=HashEmbedder())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


# ----------------------------------------------------------------------------- the kinds
def test_error_kinds():
    assert not KnowdError().transient and not InputError().transient and not ModelOutputError("x").transient
    assert TransientError().transient and BackendError().transient and IndexUnavailable().transient
    assert isinstance(IndexUnavailable(), KnowdError)
    assert is_transient(BackendError("down")) and is_transient(IndexUnavailable("down"))
    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert is_transient(sqlite3.OperationalError("database table is busy"))
    assert not is_transient(sqlite3.OperationalError("no such table: facts"))
    assert not is_transient(InputError("empty")) and not is_transient(ModelOutputError("bad JSON"))
    assert not is_transient(ValueError("unparseable")) and not is_transient(KeyError("bug"))
    # a request the model cannot serve as configured (too long, HTTP 400) fails at once
    assert not is_transient(ModelLimitError("prompt of 3000 tokens does not fit the 2048-token context"))


# ----------------------------------------------------------------------------- deterministic: once
def test_a_document_the_parser_rejects_is_failed_once_with_its_reason(make_app, events: Events):
    """The shipped path (revision: keys): a document with no text is failed at once; the
    worker never takes it again, and the good document next to it is ingested."""
    app = make_app()
    app.store.enqueue_batch([_doc("blank", " \n\t "), _doc("good", "Maria Lopez works at Northwind Bank.", 2)], "test")
    d = Daemon(app)
    d.start()
    try:
        _wait(lambda: app.store.inbox_counts() == {"failed": 1, "done": 1}, what="both documents taken")
        time.sleep(4 * RETRY_MAX_S)  # long past any retry time: there must be none
    finally:
        d.stop()
    item = _item(app, "blank")
    assert item["status"] == "failed" and item["attempts"] == 1 and item["next_attempt_at"] is None
    assert "empty text" in item["error"]
    assert len(events.named("ingest_rejected")) == 1 and events.named("ingest_rejected")[0]["doc_id"] == "blank"
    assert [e["doc_id"] for e in events.named("ingested")] == ["good"]
    assert not events.named("ingest_failed") and not events.named("ingest_gave_up")


def test_invalid_model_output_is_failed_at_once_not_retried(make_app, events: Events):
    """The ERASE path (revision: model) with a greedy model that answers garbage: the same
    prompt gives the same garbage, so the document is failed at once with the reason."""
    llm = FakeLLM(responder=lambda prompt, schema, step: "this is {not JSON")
    app = make_app(llm, ingest={"revision": "model", "max_attempts": 5})
    app.store.enqueue_batch([_doc("garbled", "Maria Lopez works at Northwind Bank.")], "test")
    d = Daemon(app)
    d.start()
    try:
        _wait(lambda: app.store.inbox_counts() == {"failed": 1}, what="the document failed")
        calls = len(llm.calls)
        time.sleep(4 * RETRY_MAX_S)
    finally:
        d.stop()
    assert calls >= 1 and len(llm.calls) == calls, "the model was not asked again"
    item = _item(app, "garbled")
    assert item["attempts"] == 1 and item["next_attempt_at"] is None
    assert "JSON" in item["error"], item["error"]
    assert app.store.document_status("garbled")["status"] == "failed"  # kept, with its model output
    failed = events.named("ingest_failed", doc_id="garbled")
    assert len(failed) == 1 and failed[0]["transient"] is False and failed[0]["retry_at"] is None
    assert not events.named("ingest_gave_up")


def test_an_error_that_is_not_transient_is_not_retried(make_app, events: Events):
    """A ValueError out of the model call (a parser's error, a bug) escapes the ingest: it
    fails the same way again, so once is enough."""
    llm = FakeLLM(responder=lambda prompt, schema, step: ValueError("cannot parse this"))
    app = make_app(llm, ingest={"revision": "model"})
    app.store.enqueue_batch([_doc("odd", "Maria Lopez works at Northwind Bank.")], "test")
    assert Daemon(app).run_once()["processed"] == 1
    time.sleep(2 * RETRY_MAX_S)
    assert Daemon(app).run_once()["processed"] == 0  # nothing due: it is not retried
    item = _item(app, "odd")
    assert item["status"] == "failed" and item["attempts"] == 1 and item["next_attempt_at"] is None
    assert item["error"] == "ValueError: cannot parse this" and len(llm.calls) == 1


def test_a_transient_model_failure_is_retried_and_succeeds(make_app, events: Events):
    """The model server down for the first two tries: retried with backoff, then done."""
    tries: list[float] = []

    def responder(prompt: str, schema: object, step: str) -> object:
        tries.append(time.monotonic())
        if len(tries) <= 2:
            raise BackendError("model server unreachable")
        return {"facts": []}

    app = make_app(FakeLLM(responder=responder), ingest={"revision": "model", "extract_unit": "chunk"})
    app.store.enqueue_batch([_doc("later", "Maria Lopez works at Northwind Bank.")], "test")
    d = Daemon(app)
    d.start()
    try:
        _wait(lambda: app.store.inbox_counts() == {"done": 1}, what="the document done")
    finally:
        d.stop()
    assert tries[1] - tries[0] >= RETRY_BASE_S and tries[2] - tries[1] >= 2 * RETRY_BASE_S
    assert _item(app, "later")["attempts"] == 3
    assert len(events.named("ingest_failed", 30)) == 1 and len(events.named("ingest_recovered")) == 1


# ----------------------------------------------------------------------------- transient: a real Chroma server
class ChromaServer:
    """`chroma run` on a free loopback port, stopped and started again over the same data."""

    def __init__(self, binary: str, path: Path):
        self.binary, self.path = binary, path
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None
        self.log = path.parent / "chroma.log"

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the Chroma server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    binary = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if binary is None:
        pytest.skip("the `chroma` command (chromadb's server) is not installed")
    server = ChromaServer(binary, tmp_path / "chroma")
    yield server
    server.stop()


def _retrying(app: App, doc_id: str) -> bool:
    """The item failed transiently at least twice and waits for its next try."""
    item = _item(app, doc_id)
    return item["status"] == "failed" and item["attempts"] >= 2 and item["next_attempt_at"] is not None


def test_the_vector_index_down_is_retried_until_it_is_back(make_app, chroma: ChromaServer, events: Events):
    app = make_app(index={"mode": "server", "host": "127.0.0.1", "port": chroma.port},
                   ingest={"max_attempts": 1000})
    d = Daemon(app)
    d.start()
    try:
        # 1. the server is down from the start: the document cannot even be looked at
        app.store.enqueue_batch([_doc("maria", "Maria Lopez works at Northwind Bank.")], "test")
        d.wake()
        _wait(lambda: _retrying(app, "maria"), what="maria retried with backoff")
        item = _item(app, "maria")
        assert "IndexUnavailable" in item["error"] and "cannot be reached" in item["error"], item["error"]
        assert app.store.document_status("maria") is None  # nothing committed yet
        # 2. the server is back: the next try ingests it
        chroma.start()
        _wait(lambda: _item(app, "maria")["status"] == "done", what="maria done")
        # 3. down between the commit and the index sync: the facts are in SQLite, queued
        #    for the index; the item is retried (not done, not failed for good)
        chroma.stop()
        app.store.enqueue_batch([_doc("ana", "Ana Silva is the mayor of Porto Verde.", 2)], "test")
        d.wake()
        _wait(lambda: _retrying(app, "ana"), what="ana retried with backoff")
        assert app.store.document_status("ana")["status"] == "done"  # committed before the sync failed
        assert app.store.pending_index(), "the facts wait in the store's index queue"
        assert "IndexUnavailable" in _item(app, "ana")["error"]
        # 4. back again: the retry finds the document committed and syncs the index
        chroma.start()
        _wait(lambda: _item(app, "ana")["status"] == "done", what="ana done")
    finally:
        d.stop()
    assert app.store.pending_index() == []
    assert app.store.inbox_counts() == {"done": 2}
    for question, fact in (("Where does Maria Lopez work?", "Maria Lopez works at Northwind Bank."),
                           ("Who is the mayor of Porto Verde?", "Ana Silva is the mayor of Porto Verde.")):
        hits = app.index.query(question, 1)
        assert hits and app.store.get_fact(hits[0][0]).text == fact, (question, hits)
    statuses = [e["status"] for e in events.named("ingested")]
    assert statuses == ["done", "skipped"]  # ana's retry skipped the committed document, then synced
    # an outage is one warning per streak, then a recovery line; never "gave up"
    assert len(events.named("ingest_failed", 30)) == 2 and len(events.named("ingest_recovered")) == 2
    assert not events.named("ingest_gave_up")

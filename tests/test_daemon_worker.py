"""The inbox worker (retries with backoff, never drops), stopping mid-document, the lock,
extra services, and nightly consolidation as a subprocess."""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import agent.daemon.worker as worker_mod
from agent.app import App
from agent.config import config_from_dict
from agent.daemon import Daemon, DaemonError, consolidate_command, daemon_pid, retry_delay
from stores.testing import HashEmbedder
from agent.errors import BackendError
from graphs.testing import FakeLLM
from stores.types import Document
from tests.test_daemon_sources import Events, events  # noqa: F401 - fixture


def _doc(i: str, text: str) -> Document:
    return Document(id=i, text=text, source="test", published_at=datetime(2024, 1, 1, tzinfo=timezone.utc))


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(llm: FakeLLM | None = None, **overrides: object) -> App:
        raw = {"data_dir": str(tmp_path / "data"), "daemon": {"consolidate_at": None, "retry_base_s": 0.1,
                                                              "retry_max_s": 0.3},
               "ingest": {"revision": "model"}}  # the fake model's failures drive these tests: the ERASE path calls it
        for key, value in overrides.items():
            raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value  # type: ignore[dict-item]
        llm = llm or FakeLLM(responder=lambda p, s, st: {"facts": []})
        app = App(config_from_dict(raw, base_dir=tmp_path), llm=llm, embedder=HashEmbedder())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture(autouse=True)
def fast_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_mod, "IDLE_WAIT_S", 0.02)  # due retries are noticed at once


def test_retry_delay_doubles_up_to_the_cap():
    assert [retry_delay(k, 30, 200) for k in (1, 2, 3, 4, 5)] == [30, 60, 120, 200, 200]


def test_failed_documents_are_retried_with_backoff_then_kept_failed(make_app, events: Events):
    calls: list[float] = []

    def responder(prompt: str, schema: object, step: str) -> object:
        if "poison" in prompt:
            calls.append(time.monotonic())
            raise BackendError("model server unreachable")
        return {"facts": []}

    app = make_app(FakeLLM(responder=responder), ingest={"max_attempts": 3})
    app.store.enqueue_batch([_doc("bad", "A poison pill."), _doc("good", "Nothing to see.")], "test")
    app.store.enqueue_batch([_doc("empty", "   ")], "test")
    d = Daemon(app)
    d.start()
    try:
        _wait(lambda: (app.store.inbox_items("failed", 5) or [{}])[-1].get("attempts") == 3 and len(calls) == 3)
        time.sleep(0.4)  # past any further retry time: there must be none
    finally:
        d.stop()
    assert len(calls) == 3, "max_attempts tries, then no more"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2, gaps  # retry_base_s, doubled
    items = {i["doc_id"]: i for i in app.store.inbox_items("failed", 10)}
    assert set(items) == {"bad", "empty"} and app.store.inbox_counts() == {"done": 1, "failed": 2}
    assert items["bad"]["next_attempt_at"] is None and "unreachable" in items["bad"]["error"]
    assert items["empty"]["attempts"] == 1 and items["empty"]["next_attempt_at"] is None  # no text: no retry
    assert app.store.document_status("bad")["status"] == "failed"  # kept, with its error
    assert len(events.named("ingest_failed", 30)) == 1  # logged once, then again only when it gives up
    assert len(events.named("ingest_gave_up", doc_id="bad")) == 1
    assert len(events.named("ingest_rejected", doc_id="empty")) == 1


def test_stop_rolls_back_the_document_in_flight(make_app):
    entered, release = threading.Event(), threading.Event()

    def responder(prompt: str, schema: object, step: str) -> object:
        entered.set()
        release.wait(5)
        return {"facts": []}

    app = make_app(FakeLLM(responder=responder), ingest={"chunk_tokens": 32})
    para = " ".join(f"word{i}" for i in range(30))
    app.store.enqueue_batch([_doc("two-chunks", f"{para}.\n\n{para}.")], "test")
    d = Daemon(app)
    d.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=d.stop)
    stopper.start()
    time.sleep(0.1)
    release.set()  # the first chunk's call returns; the second chunk's call is refused
    stopper.join(10)
    assert not stopper.is_alive()
    assert app.store.inbox_counts() == {"queued": 1}
    assert app.store.inbox_items("queued", 1)[0]["attempts"] == 0
    assert app.store.document_status("two-chunks") is None and app.store.operations("two-chunks") == []


def test_one_daemon_per_data_dir(make_app):
    app = make_app()
    first = Daemon(app)
    first.start()
    try:
        assert daemon_pid(app.cfg.data_path) == os.getpid()
        with pytest.raises(DaemonError, match="another knowd daemon is running"):
            Daemon(make_app()).start()
    finally:
        first.stop()
    assert daemon_pid(app.cfg.data_path) is None


def test_extra_services_start_and_stop_with_the_daemon(make_app):
    log: list[str] = []

    class Handle:
        def stop(self) -> None:
            log.append("stopped")

    def service(app: App) -> Handle:
        log.append(f"started with {type(app).__name__}")
        return Handle()

    d = Daemon(make_app(), extra_services=[service])
    d.start()
    assert log == ["started with App"]
    d.stop()
    assert log == ["started with App", "stopped"]

    def broken(app: App) -> Handle:
        raise OSError("address already in use")

    app = make_app()
    with pytest.raises(DaemonError, match="address already in use"):
        Daemon(app, extra_services=[service, broken]).start()
    assert log[-1] == "stopped"  # the service that did start was stopped again
    assert daemon_pid(app.cfg.data_path) is None  # and the data dir is free


def test_consolidation_runs_the_trainer_as_a_subprocess(make_app, tmp_path: Path, events: Events):
    cmd = consolidate_command(tmp_path / "config.yaml")
    assert cmd[0] == sys.executable and cmd[-3:] == ["--config", str(tmp_path / "config.yaml"), "consolidate"]
    assert cmd[1:3] == ["-m", "agent"]

    marker = tmp_path / "consolidated"
    app = make_app(daemon={"consolidate_at": "03:30"})
    d = Daemon(app, consolidate_cmd=[sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ok'); print('trained')"])
    d.start()
    try:
        job = d._scheduler.get_job("consolidate")
        assert (job.next_run_time.hour, job.next_run_time.minute) == (3, 30)  # local time, nightly
        assert d.run_consolidation() == 0
    finally:
        d.stop()
    assert marker.read_text() == "ok"
    assert "trained" in (app.cfg.data_path / "consolidation" / "daemon-consolidate.log").read_text()
    assert events.named("consolidation_finished", exit_code=0)


def test_stop_interrupts_a_running_consolidation(make_app):
    app = make_app()
    d = Daemon(app, consolidate_cmd=[sys.executable, "-c", "import time; time.sleep(30)"])
    d.start()
    result: list[int | None] = []
    t = threading.Thread(target=lambda: result.append(d.run_consolidation()))
    t.start()
    _wait(lambda: d.nightly.proc is not None)
    t0 = time.monotonic()
    d.stop()
    t.join(5)
    assert time.monotonic() - t0 < 5 and result and result[0] != 0


def test_documents_are_ingested_oldest_first_across_connectors(make_app, events: Events):
    app = make_app()

    def at(i: str, month: int) -> Document:
        when = datetime(2024, month, 1, tzinfo=timezone.utc)
        return Document(id=i, text=f"Item {i}.", source="test", published_at=when)

    # polled in this order: the chat export (autumn) before the news feed (winter to summer)
    app.store.enqueue_batch([at("chat-sep", 9), at("chat-oct", 10)], "chats")
    app.store.enqueue_batch([at("news-jan", 1), at("news-may", 5), at("news-dec", 12)], "news")
    assert Daemon(app).run_once()["processed"] == 5
    order = [e["doc_id"] for e in events.named("ingested")]
    assert order == ["news-jan", "news-may", "chat-sep", "chat-oct", "news-dec"]

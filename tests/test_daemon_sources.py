"""Bad sources never stop good ones, and are backed off and logged once.

A feed server on 127.0.0.1 answers 500, hangs, streams 50 MB, serves invalid XML, or
fails twice and then recovers; a good file feed next to them keeps being ingested,
including entries appended while the daemon runs.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.app import App
from agent.config import config_from_dict
from agent.daemon import Daemon, poll_delay
from stores.testing import HashEmbedder
from graphs.testing import FakeLLM
from tests.test_daemon_process import write_feed

INTERVAL = 0.25
GOOD_FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Flaky</title>'
    + b"".join(
        f"<item><guid>flaky-{i}</guid><title>F{i}</title><description>Person {100 + i} joined Company {100 + i}."
        f"</description></item>".encode() for i in range(3)
    )
    + b"</channel></rss>"
)


class FeedServer:
    """127.0.0.1 feeds that misbehave in every way the issue lists."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.hits[self.path] += 1
                try:
                    if self.path == "/500":
                        self.send_error(500, "Internal Server Error")
                    elif self.path == "/hang":
                        outer.release.wait(10)  # longer than the connector's timeout
                    elif self.path == "/big":  # 50 MB, no Content-Length: the client must stop reading
                        self.send_response(200)
                        self.send_header("Content-Type", "application/rss+xml")
                        self.end_headers()
                        chunk = b"<rss>" + b"x" * (1024 * 1024 - 5)
                        for _ in range(50):
                            self.wfile.write(chunk)
                    elif self.path == "/invalid":
                        self._send(b"<<<this is not XML>>> &&&", "application/rss+xml")
                    elif self.path == "/flaky":
                        if outer.hits[self.path] <= 2:
                            self.send_error(503, "Service Unavailable")
                        else:
                            self._send(GOOD_FEED, "application/rss+xml")
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the daemon hung up on us: that is the point

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


class Events(logging.Handler):
    """Collects the daemon's structured events."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[int, str, dict]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "knowd_fields", None)
        if fields is not None:
            self.events.append((record.levelno, str(record.msg), dict(fields)))

    def named(self, event: str, level: int | None = None, **match: object) -> list[dict]:
        return [f for lv, ev, f in self.events
                if ev == event and (level is None or lv == level) and all(f.get(k) == v for k, v in match.items())]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    logger = logging.getLogger("knowd.daemon")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def answer(prompt: str, schema: dict | None, step: str) -> dict:
    import re

    if step == "extract":
        m = re.search(r"(Person \d+) joined (Company \d+)", prompt.rsplit("Text (", 1)[-1])
        return {"facts": [{"subject": m.group(1), "relation": "joined", "object": m.group(2)}] if m else []}
    return {}


def test_poll_delay_doubles_from_the_interval_up_to_the_cap():
    assert [poll_delay(10, k, 100) for k in range(6)] == [10, 20, 40, 80, 100, 100]
    assert poll_delay(900, 3, 60) == 900  # a cap below the interval never polls faster than configured


def test_bad_feeds_do_not_stop_a_good_one_and_are_backed_off_and_logged_once(
    tmp_path: Path, feed_server: FeedServer, events: Events
):
    good = tmp_path / "good.xml"
    write_feed(good, 5)
    http = {"http-500": "/500", "http-hang": "/hang", "http-50mb": "/big", "http-invalid": "/invalid",
            "http-flaky": "/flaky"}
    connectors = [{"name": "good", "kind": "feed", "interval_s": INTERVAL, "options": {"url": str(good)}}]
    connectors += [{"name": n, "kind": "feed", "interval_s": INTERVAL,
                    "options": {"url": feed_server.url + p, "timeout_s": 0.5}} for n, p in http.items()]
    connectors += [
        {"name": "no-such-kind", "kind": "carrier-pigeon", "interval_s": INTERVAL},
        {"name": "bad-option", "kind": "feed", "interval_s": INTERVAL, "options": {"url": str(good), "colour": "red"}},
    ]
    cfg = config_from_dict({"data_dir": str(tmp_path / "data"), "connectors": connectors,
                            "daemon": {"consolidate_at": None, "poll_backoff_max_s": 2.0}}, base_dir=tmp_path)
    app = App(cfg, llm=FakeLLM(responder=answer), embedder=HashEmbedder())
    daemon = Daemon(app)
    gaps: dict[str, list[float]] = {"http-500": [], "http-invalid": []}
    daemon.start()
    try:
        store = app.store
        t0 = time.monotonic()
        appended = False
        while time.monotonic() - t0 < 20:
            for name, seen in gaps.items():
                st = store.connector_statuses().get(name, {})
                if st.get("next_poll_at") and st.get("last_poll_at"):
                    gap = (st["next_poll_at"] - st["last_poll_at"]).total_seconds()
                    if not seen or seen[-1] != gap:
                        seen.append(gap)
            done = store.inbox_counts().get("done", 0)
            if not appended and done >= 8:  # good (5) + flaky (3): now the good feed grows
                write_feed(good, 10)
                appended = True
            if appended and done >= 13 and time.monotonic() - t0 > 5:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        statuses = store.connector_statuses()
    finally:
        assert daemon.stop()
    try:
        assert store.inbox_counts() == {"done": 13}, "the good feed (10) and the recovered flaky one (3) are ingested"
        assert statuses["good"]["consecutive_failures"] == 0 and statuses["good"]["items_new"] == 10

        expected_error = {"http-500": "HTTP 500", "http-hang": "timed out", "http-50mb": "limit",
                          "http-invalid": "not a readable feed"}
        for name, words in expected_error.items():
            st = statuses[name]
            assert st["consecutive_failures"] >= 2, (name, st)
            assert words in st["last_error"], (name, st["last_error"])
            assert st["next_poll_at"] - st["last_poll_at"] >= timedelta(seconds=2 * INTERVAL - 0.05), name
            # logged once (on the first failure), however often it failed since
            assert len(events.named("poll_failed", logging.WARNING, connector=name)) == 1, name
            assert not events.named("poll_recovered", connector=name)
        # backed off: without backoff /500 would have been asked every 0.25 s
        assert feed_server.hits["/500"] <= elapsed / INTERVAL / 2, (feed_server.hits, elapsed)
        for name, seen in gaps.items():
            # polls fall on interval ticks, so a wait is exact to within half an interval
            grows = all(b >= a - INTERVAL / 2 for a, b in zip(seen, seen[1:])) and seen[-1] > seen[0] + INTERVAL
            assert grows, f"{name}: next poll did not move out: {seen}"
            assert seen[-1] <= 2.0 + INTERVAL, "capped at poll_backoff_max_s"

        flaky = statuses["http-flaky"]
        assert flaky["consecutive_failures"] == 0 and flaky["items_new"] == 3 and "503" in flaky["last_error"]
        assert len(events.named("poll_failed", logging.WARNING, connector="http-flaky")) == 1
        assert len(events.named("poll_recovered", connector="http-flaky")) == 1

        # connectors that cannot even be built are reported, and nothing else minds
        for name, words in (("no-such-kind", "unknown connector kind"), ("bad-option", "unknown option")):
            assert words in statuses[name]["last_error"]
            assert len(events.named("connector_invalid", connector=name)) == 1
    finally:
        app.close()

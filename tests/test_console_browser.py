"""The review console in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven over the W3C WebDriver protocol with httpx: no extra Python package).

A daemon runs in this process with the HTTP API on a free loopback port and a token;
documents are pushed through `POST /v1/documents` and ingested by the daemon's worker
(the ERASE graph with the fake LLM). The browser logs in, finds a fact, opens its
timeline, reverts the document that made it false and sees it true again, retries a
failed document, adds, tests and pauses a connector (polled without a restart), opens a
consolidation report with its plots, ships an adapter version and asks the chat pane,
all as the admin token "ops". Then it logs in with the read-only token "viewer" and
finds no form that would change anything. Each page is saved as
docs/screenshots/<name>.png. Without a browser it skips.
"""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import daemon_serving_api
from tests.console_world import BERGEN, D1, D2, D3, JOHN, MARIA, make_app, make_runs, wait_for, write_feed

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
TOKEN = "browser-test-token"  # admin: the one the walk-through logs in with
READ_TOKEN = "browser-test-read-token"  # read: the last part logs in with it and sees no forms
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def _browser() -> tuple[str, str] | None:
    chrome = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/lib/chromium/chromedriver",) if os.path.exists(p)), None)
    return (chrome, driver) if chrome and driver else None


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless Chromium: install Debian's chromium and chromium-driver (.ci/run does) to run the browser test",
)


def until(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """wait_for, also over a page that is still loading (an element not there yet)."""
    def safe() -> Any:
        try:
            return check()
        except AssertionError:
            return False
    return wait_for(safe, timeout, what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """The few WebDriver commands the test needs."""

    def __init__(self, chrome: str, driver: str):
        self.port = _free_port()
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        wait_for(self._ready, timeout=30, what="chromedriver")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions"],
        }}}}
        self.session = self._cmd("POST", "/session", caps)["sessionId"]

    def _ready(self) -> bool:
        try:
            return self.http.get("/status").json()["value"]["ready"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def _cmd(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, path, json=body if body is not None else ({} if method == "POST" else None))
        value = r.json().get("value")
        if r.status_code >= 400:
            raise AssertionError(f"webdriver {method} {path}: {value}")
        return value

    def s(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._cmd(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.s("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self.s("GET", "/url")

    def find(self, css: str) -> str:
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.s("POST", "/elements", {"using": "css selector", "value": css})]

    def link(self, text: str) -> str:
        return self.s("POST", "/element", {"using": "partial link text", "value": text})[ELEMENT]

    def click(self, el: str) -> None:
        self.s("POST", f"/element/{el}/click")

    def go(self, el: str) -> None:
        """Click something that loads a new page (a link, a form's button) and wait for it."""
        self.js("window.__knowdOld = true")
        self.click(el)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.js("return !window.__knowdOld && document.readyState === 'complete'"):
                    return
            except AssertionError:  # between two pages
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the page did not load")
            time.sleep(0.05)

    def type(self, el: str, text: str) -> None:
        self.s("POST", f"/element/{el}/clear")
        self.s("POST", f"/element/{el}/value", {"text": text})

    def text(self, css: str = "body") -> str:
        return self.s("GET", f"/element/{self.find(css)}/text")

    def js(self, script: str, *args: Any) -> Any:
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, name: str) -> Path:
        """The whole page, not just the window (Chrome's DevTools capture, through chromedriver)."""
        h = min(int(self.js("return document.documentElement.scrollHeight")), 3000)
        shot = self.s("POST", "/goog/cdp/execute", {"cmd": "Page.captureScreenshot", "params": {
            "format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": 1280, "height": h, "scale": 1}}})
        png = base64.b64decode(shot["data"])
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        path.write_bytes(png)
        return path

    def close(self) -> None:
        try:
            self.s("DELETE", "")
        except Exception:  # the browser may be gone already
            pass
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A daemon with the API (and so the console) on a free loopback port, a token, and
    documents ingested through the push API and the daemon's worker."""
    from agent.security import hash_token

    app, world, llm = make_app(tmp_path, tokens=[{"name": "ops", "scope": "admin", "sha256": hash_token(TOKEN)},
                                                 {"name": "viewer", "scope": "read", "sha256": hash_token(READ_TOKEN)}])
    try:
        with daemon_serving_api(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
            for d, status in ((D1, "done"), (D2, "done"), (D3, "failed")):
                body = {"id": d.id, "title": d.title, "text": d.text, "time": d.published_at.isoformat()}
                assert api.post("/v1/documents", json=body).status_code == 202
                wait_for(lambda: (app.store.document_status(d.id) or {}).get("status") == status, what=f"{d.id} {status}")
            runs = make_runs(app.cfg.data_path)["runs"]
            yield {"app": app, "world": world, "url": url, "runs": runs, "tmp": tmp_path}
    finally:
        app.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert BROWSER is not None
    b = Browser(*BROWSER)
    yield b
    b.close()


def test_review_console_in_a_browser(running, browser):
    app, world, url = running["app"], running["world"], running["url"]
    b = browser
    console = url + "/console"

    # login: the token once, then a session cookie
    b.get(console + "/facts")
    assert "/console/login" in b.url
    b.screenshot("login")
    b.type(b.find("input[name=token]"), TOKEN)
    b.go(b.find("#login-form button, form button.primary"))
    until(lambda: "/console/facts" in b.url, what="the facts page after login")

    # facts: search, including those no longer true
    b.type(b.find("input[name=q]"), "CEO of Northwind")
    b.click(b.find("input[name=all]"))
    b.go(b.find("#search button"))
    table = b.text("#facts")
    assert MARIA in table and JOHN in table
    b.screenshot("facts")

    # a fact's timeline: true from 2020 (memo-2020), false from 2022 (memo-2022)
    b.go(b.link(MARIA))
    assert b.text("#truth") == "false"
    timeline = b.text("#timeline")
    assert "2020-01-01" in timeline and "2022-06-01" in timeline and "John Smith replaces Maria Lopez" in timeline
    b.screenshot("fact-timeline")

    # the document that made it false: what it changed and why; revert it
    b.go(b.link("John Smith replaces Maria Lopez"))
    ops = b.text("#ops")
    assert "make_false" in ops and "extract" in ops
    b.js("document.querySelectorAll('#ops details')[0] && (document.querySelectorAll('#ops details')[0].open = true)")
    b.screenshot("document")
    b.go(b.find("#revert button"))
    until(lambda: "reverted" in b.text("#flash"), what="the revert's message")
    assert b.text("#doc-status") == "reverted"

    # the fact is true again
    b.get(console + "/facts")
    b.go(b.link(MARIA))
    assert b.text("#truth") == "true"
    assert "reverted" in b.text("#timeline")
    b.screenshot("fact-after-revert")
    assert app.store.find_by_norm(MARIA).is_current

    # the inbox: the failed document, its error, Retry (the daemon ingests it)
    b.get(console + "/documents")
    failed = b.text("#failed")
    assert "memo-2023" in failed and "not valid JSON" in failed
    b.screenshot("documents")
    world.broken = False
    b.go(b.find("#failed button.retry"))
    assert "queued again" in b.text("#flash")
    wait_for(lambda: (app.store.document_status("memo-2023") or {}).get("status") == "done", what="the retried document")
    b.get(console + "/documents")
    assert "no failed documents" in b.text("#failed")
    b.get(console + "/facts")
    assert BERGEN in b.text("#facts")

    # connectors: add one (polled without a restart), test it, pause it
    feed = write_feed(running["tmp"] / "news.xml")
    b.get(console + "/connectors")
    b.type(b.find("#add-connector input[name=name]"), "news")
    b.type(b.find("#add-connector textarea[name=options]"), f"url={feed}")
    b.js("document.querySelector('#add-connector select[name=kind]').value = 'feed'")
    b.go(b.find("#add-connector button"))
    assert "polls it now" in b.text("#flash")
    wait_for(lambda: (app.store.connector_statuses().get("news") or {}).get("polls"), what="the new connector's first poll")
    b.get(console + "/connectors")
    assert "ok" in b.text("#connector-news")
    b.go(b.find("#connector-news button.test"))
    assert "would be queued" in b.text("#test-result + .card")
    b.screenshot("connectors")
    b.go(b.find("#connector-news button.pause"))
    assert "paused" in b.text("#connector-news")

    # consolidation: the runs, a report with its plots inline, Ship an older version
    b.get(console + "/consolidation")
    assert b.text("#live") == "v0002"
    b.screenshot("consolidation")
    b.go(b.link(running["runs"][0]))
    assert "passed" in b.text("#gate")
    until(lambda: b.js("return Array.from(document.querySelectorAll('#report img')).every(i => i.complete && i.naturalWidth > 0)"),
             what="the report's plots")
    assert b.js("return document.querySelectorAll('#report img').length") >= 2
    b.screenshot("run-report")
    b.get(console + "/consolidation")
    b.go(b.find("#versions button.ship"))
    assert "v0001 is live" in b.text("#flash") and b.text("#live") == "v0001"

    # the chat pane: an answer whose citation links to the fact's page
    b.get(console + "/chat")
    b.type(b.find("#ask input[name=question]"), "Who is the CEO of Northwind?")
    b.go(b.find("#ask button"))
    # (memo-2022 was reverted above: Maria Lopez is CEO again)
    until(lambda: MARIA in b.text("#chat"), what="the chat answer")
    assert JOHN not in b.text("#chat .answer")
    b.screenshot("chat")
    b.go(b.find("#chat a.cite"))
    assert b.text("#fact-text") == MARIA

    # a read-only login: every page, none of the forms that change anything
    b.go(b.find("header form button"))  # log out
    until(lambda: "/console/login" in b.url, what="the login page after logging out")
    b.type(b.find("input[name=token]"), READ_TOKEN)
    b.go(b.find("form button.primary"))
    until(lambda: "/console/facts" in b.url, what="the facts page after the read-only login")
    assert b.text("#who") == "viewer · read"
    admin_forms = ("#revert, #failed button.retry, #add-connector, button.test, button.pause, button.ship, #rollback, "
                   "form[action$='/document/revert'], form[action$='/inbox/retry'], form[action$='/connectors/add']")
    doc_page = console + "/document?id=memo-2022"
    for page in ("/facts", "/documents", "/connectors", "/consolidation", f"/consolidation/runs/{running['runs'][0]}/",
                 "/chat"):
        b.get(console + page)
        assert b.find_all(admin_forms) == [], page
    b.get(doc_page)
    assert b.find_all(admin_forms) == [] and "What it changed" in b.text()
    b.get(console + "/consolidation")
    b.screenshot("read-only")
    # the chat works for a reader
    b.get(console + "/chat")
    b.type(b.find("#ask input[name=question]"), "Who is the CEO of Northwind?")
    b.go(b.find("#ask button"))
    until(lambda: MARIA in b.text("#chat"), what="the reader's chat answer")

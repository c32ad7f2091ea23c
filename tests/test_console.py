"""The review console (agent/console.py) through FastAPI's TestClient: every page, every
POST (revert, retry, connectors add/test/pause, ship/rollback, chat, login), the token
and CSRF rules, the daemon picking up a connector without a restart, and bad input
answered 4xx, never 500. The store is seeded through the real ingest path (the inbox
and the daemon worker's step, the ERASE graph with the fake LLM)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.serve import create_app
from tests.console_world import BERGEN, JOHN, MARIA, ingest_all, make_app, make_runs, wait_for, write_feed

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-console-token"


@pytest.fixture
def world(tmp_path: Path) -> Iterator:
    app, world, llm = make_app(tmp_path)
    ingest_all(app)
    world.runs = make_runs(app.cfg.data_path)["runs"]
    yield app, world, llm
    app.close()


@pytest.fixture
def client(world) -> TestClient:  # noqa: ANN001
    return TestClient(create_app(world[0]), follow_redirects=False)


def csrf(client: TestClient, headers: dict[str, str] | None = None) -> str:
    r = client.get("/console/chat", headers=headers)
    return re.search(r'name="csrf" value="([0-9a-f]+)"', r.text).group(1)


def fact_id(app, text: str) -> str:  # noqa: ANN001
    return app.store.find_by_norm(text).id


def failed_item(app) -> dict:  # noqa: ANN001
    (item,) = app.store.inbox_items("failed")
    return item


# ----------------------------------------------------------------------------- pages
def test_facts_page_now_as_of_all_and_search(client, world):
    r = client.get("/console/facts")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert JOHN in r.text and MARIA not in r.text  # Maria's fact is no longer true
    r = client.get("/console/facts", params={"as_of": "2021-05-01"})
    assert MARIA in r.text and JOHN not in r.text
    r = client.get("/console/facts", params={"all": "true"})
    assert MARIA in r.text and JOHN in r.text
    r = client.get("/console/facts", params={"q": "who is CEO of Northwind", "all": "true"})
    assert r.status_code == 200 and MARIA in r.text and JOHN in r.text
    assert f'href="/console/facts/{fact_id(world[0], JOHN)}"' in r.text
    assert client.get("/console/").headers["location"] == "/console/facts"


def test_fact_page_shows_the_timeline_with_its_documents(client, world):
    app = world[0]
    r = client.get(f"/console/facts/{fact_id(app, MARIA)}")
    assert r.status_code == 200
    timeline = r.text[r.text.index('id="timeline"'):]
    first, second = timeline.index("2020-01-01"), timeline.index("2022-06-01")
    assert first < second  # oldest first
    assert 'href="/console/document?id=memo-2020"' in timeline and "Northnames" not in timeline
    assert 'href="/console/document?id=memo-2022"' in timeline and "John Smith replaces Maria Lopez" in timeline
    assert ">false<" in timeline and ">true<" in timeline
    assert re.search(r'id="truth" class="badge false">false<', r.text)  # not true now
    assert client.get("/console/facts/f_nope").status_code == 404


def test_documents_page_lists_failed_inbox_items_with_retry(client, world):
    r = client.get("/console/documents")
    assert r.status_code == 200
    failed = r.text[r.text.index('id="failed"'):r.text.index('id="documents"')]
    assert "memo-2023" in failed and "not valid JSON" in failed
    assert f'name="item" value="{failed_item(world[0])["id"]}"' in failed and ">Retry<" in failed
    assert "Northwind names Maria Lopez CEO" in r.text
    assert "memo-2020" not in client.get("/console/documents", params={"status": "failed"}).text
    assert client.get("/console/documents", params={"status": "bogus"}).status_code == 400


def test_document_page_shows_changes_reasons_and_model_calls(client, world):
    r = client.get("/console/document", params={"id": "memo-2022"})
    assert r.status_code == 200
    ops = r.text[r.text.index('id="ops"'):]
    assert "make_false" in ops and "extract" in ops and "retire" in ops
    assert MARIA in ops and JOHN in ops
    assert "&#34;make_false&#34;" in ops or "&quot;make_false&quot;" in ops  # the classify output, escaped
    assert "For each fact, say what the new text means for it" in ops  # the model's input
    assert 'id="revert"' in r.text
    failed = client.get("/console/document", params={"id": "memo-2023"})
    assert "{not json at all" in failed.text and "failed" in failed.text
    assert 'id="revert"' not in failed.text  # it changed nothing
    assert client.get("/console/document", params={"id": "nope"}).status_code == 404
    assert client.get("/console/document").status_code == 400


def test_consolidation_pages_reports_and_plots(client, world):
    app, w, _ = world
    r = client.get("/console/consolidation")
    assert r.status_code == 200
    for run_id in w.runs:
        assert f'href="/console/consolidation/runs/{run_id}/"' in r.text
    assert 'id="live">v0002<' in r.text and 'name="version" value="v0001"' in r.text
    assert re.search(r'<span class="badge refused">refused</span>', r.text)  # the third run
    r = client.get(f"/console/consolidation/runs/{w.runs[0]}/")
    assert r.status_code == 200
    gate = r.text[r.text.index('id="gate"'):]
    assert 'badge ok">passed<' in gate and "locality 0.990 &gt;= 0.98" in gate
    refused = client.get(f"/console/consolidation/runs/{w.runs[2]}/").text
    assert 'badge refused">refused<' in refused[refused.index('id="gate"'):]
    assert "<img src='loss.png'" in r.text and "<img src='metrics.png'" in r.text
    png = client.get(f"/console/consolidation/runs/{w.runs[0]}/loss.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get(f"/console/consolidation/runs/{w.runs[0]}/nothere.png").status_code == 404
    assert client.get(f"/console/consolidation/runs/{w.runs[0]}/run.json").status_code == 404
    assert client.get("/console/consolidation/runs/nope/").status_code == 404


def test_connectors_page(client):
    r = client.get("/console/connectors")
    assert r.status_code == 200 and "no connectors configured" in r.text
    assert '<option value="feed" selected>' in r.text and '<option value="chatlog"' in r.text
    assert "No daemon is running" in r.text


# ----------------------------------------------------------------------------- POSTs
def test_revert_restores_the_fact_like_the_cli(client, world):
    app = world[0]
    token = csrf(client)
    r = client.post("/console/document/revert", data={"csrf": token, "id": "memo-2022"})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/document?id=memo-2022")
    maria = app.store.find_by_norm(MARIA)
    assert maria.is_current and app.store.document_status("memo-2022")["status"] == "reverted"
    assert not app.store.find_by_norm(JOHN).is_current
    assert [o.op for o in app.store.operations("memo-2022")][-1] == "revert"
    page = client.get(r.headers["location"]).text
    assert "reverted 2 history entries" in page and 'id="revert"' not in page
    assert client.post("/console/document/revert", data={"csrf": token, "id": "memo-2022"}).status_code == 409
    assert client.post("/console/document/revert", data={"csrf": token, "id": "nope"}).status_code == 404
    assert client.post("/console/document/revert", data={"csrf": token}).status_code == 400
    assert MARIA in client.get("/console/facts").text


def test_retry_queues_a_failed_document_again(client, world):
    from agent.daemon import Daemon

    app, w, _ = world
    token = csrf(client)
    item = failed_item(app)
    r = client.post("/console/inbox/retry", data={"csrf": token, "item": str(item["id"])})
    assert r.status_code == 303 and "queued+again" in r.headers["location"]
    assert app.store.inbox_item(item["id"])["status"] == "queued"
    assert client.post("/console/inbox/retry", data={"csrf": token, "item": str(item["id"])}).status_code == 409
    w.broken = False
    assert Daemon(app).process_next()  # the worker takes it at once (it is not waiting for its backoff)
    assert app.store.find_by_norm(BERGEN).is_current
    assert client.post("/console/inbox/retry", data={"csrf": token, "item": "999"}).status_code == 404
    assert client.post("/console/inbox/retry", data={"csrf": token, "item": "x"}).status_code == 400
    assert client.post("/console/inbox/retry", data={"csrf": token}).status_code == 400


def test_ship_and_rollback_adapter_versions(client, world):
    from trainer import adapters

    dd = world[0].cfg.data_path
    token = csrf(client)
    r = client.post("/console/consolidation/ship", data={"csrf": token, "version": "v0001"})
    assert r.status_code == 303 and adapters.live_version(dd) == "v0001"
    assert "v0001+is+live" in r.headers["location"]
    assert client.post("/console/consolidation/rollback", data={"csrf": token}).status_code == 303
    assert adapters.live_version(dd) is None
    assert client.post("/console/consolidation/rollback", data={"csrf": token}).status_code == 409
    assert client.post("/console/consolidation/ship", data={"csrf": token, "version": "v0009"}).status_code == 404
    assert client.post("/console/consolidation/ship", data={"csrf": token}).status_code == 400
    assert [h["action"] for h in adapters.history(dd)][-2:] == ["use", "rollback"]


def test_chat_pane_answers_with_linked_citations(client, world):
    app = world[0]
    token = csrf(client)
    r = client.post("/console/chat", data={"csrf": token, "question": "Who is the CEO of Northwind?"})
    assert r.status_code == 303 and r.headers["location"] == "/console/chat#last"
    page = client.get("/console/chat").text
    chat = page[page.index('id="chat"'):]
    assert "Who is the CEO of Northwind?" in chat and JOHN in chat
    assert f'href="/console/facts/{fact_id(app, JOHN)}"' in chat  # the [1] marker and the citation
    assert 'href="/console/document?id=memo-2022"' in chat  # the citation's source
    assert client.post("/console/chat", data={"csrf": token, "question": "  "}).status_code == 400
    too_long = "x" * (app.cfg.chat.max_question_chars + 1)
    assert client.post("/console/chat", data={"csrf": token, "question": too_long}).status_code == 400
    assert client.post("/console/chat", data={"csrf": token, "question": "Who?", "as_of": "the day after never"}).status_code == 400
    assert client.post("/console/chat/forget", data={"csrf": token}).status_code == 303
    assert "Who is the CEO of Northwind?" not in client.get("/console/chat").text


def _sample_feed(tmp_path: Path) -> Path:
    return write_feed(tmp_path / "feeds" / "news.xml")


def test_connectors_add_test_pause_without_a_daemon(client, world, tmp_path):
    from agent.config import load_config
    from agent.daemon import is_paused

    app = world[0]
    token = csrf(client)
    feed = _sample_feed(tmp_path)
    before = app.config_path.read_text()
    bad = client.post("/console/connectors/add", data={"csrf": token, "name": "x", "kind": "nokind"})
    assert bad.status_code == 400 and "nokind" in bad.text
    assert client.post("/console/connectors/add", data={"csrf": token, "name": "x", "kind": "feed",
                                                         "options": "nonsense=1\nurl=a"}).status_code == 400
    assert client.post("/console/connectors/add", data={"csrf": token, "name": "x", "kind": "feed",
                                                         "interval_s": "soon"}).status_code == 400
    assert client.post("/console/connectors/add", data={"csrf": token, "name": "a b", "kind": "feed"}).status_code == 400
    assert client.post("/console/connectors/add", data={"csrf": token, "kind": "feed"}).status_code == 400
    assert app.config_path.read_text() == before  # nothing was written
    r = client.post("/console/connectors/add", data={"csrf": token, "name": "news", "kind": "feed", "interval_s": "600",
                                                      "options": f"url={feed}\n"})
    assert r.status_code == 303, r.text
    assert "no+daemon+is+running" in r.headers["location"]
    text = app.config_path.read_text()
    assert text.startswith("# the console tests' config\n")  # the rest of the file is kept
    (cc,) = load_config(app.config_path).connectors
    assert (cc.name, cc.kind, cc.interval_s, cc.options) == ("news", "feed", 600.0, {"url": str(feed)})
    assert client.post("/console/connectors/add", data={"csrf": token, "name": "news", "kind": "feed",
                                                         "options": f"url={feed}"}).status_code == 400  # duplicate
    page = client.get("/console/connectors").text
    assert 'id="connector-news"' in page
    r = client.post("/console/connectors/test", data={"csrf": token, "name": "news"})
    assert r.status_code == 200 and 'id="test-result"' in r.text and "would be queued" in r.text
    assert app.store.inbox_counts().get("queued", 0) == 0  # nothing queued, position not saved
    assert app.store.cursor("news") == {}
    assert client.post("/console/connectors/test", data={"csrf": token, "name": "ghost"}).status_code == 404
    assert client.post("/console/connectors/pause", data={"csrf": token, "name": "news"}).status_code == 303
    assert is_paused(app.store, "news")
    assert ">Resume<" in client.get("/console/connectors").text
    assert client.post("/console/connectors/pause", data={"csrf": token, "name": "news", "action": "resume"}).status_code == 303
    assert not is_paused(app.store, "news")
    assert client.post("/console/connectors/pause", data={"csrf": token, "name": "news", "action": "explode"}).status_code == 400
    assert client.post("/console/connectors/pause", data={"csrf": token, "name": "ghost"}).status_code == 404


def test_a_running_daemon_picks_up_connectors_without_a_restart(client, world, tmp_path):
    """Added from the console: polled at once. Added to config.yaml by another process
    (`knowd connectors add`): picked up by the daemon's watch. Paused: not polled."""
    from agent.cli.daemon import add_connector
    from agent.daemon import Daemon

    app = world[0]
    token = csrf(client)
    feed = _sample_feed(tmp_path)
    d = Daemon(app)
    d.start()
    try:
        assert app.daemon is d and d.config_path == app.config_path.resolve()
        assert "The daemon runs in this process" in client.get("/console/connectors").text
        r = client.post("/console/connectors/add", data={"csrf": token, "name": "news", "kind": "feed", "options": f"url={feed}"})
        assert r.status_code == 303 and "polls+it+now" in r.headers["location"], r.headers["location"]
        assert "news" in d.sources
        wait_for(lambda: (app.store.connector_statuses().get("news") or {}).get("polls"), what="the first poll of news")
        assert sum(app.store.inbox_counts().values()) == 5  # the 3 memos + the feed's 2 items
        # another process edits config.yaml: the watch reloads it
        add_connector(app.config_path, {"name": "more", "kind": "feed", "options": {"url": str(feed)}})
        wait_for(lambda: "more" in d.sources, timeout=15, what="the config watch")
        assert [c.name for c in app.cfg.connectors] == ["news", "more"]
        # paused: the daemon skips its polls
        assert client.post("/console/connectors/pause", data={"csrf": token, "name": "more"}).status_code == 303
        polls = (app.store.connector_statuses().get("more") or {}).get("polls") or 0
        d._poll_job("more")
        assert ((app.store.connector_statuses().get("more") or {}).get("polls") or 0) == polls
    finally:
        d.stop()
    assert app.daemon is None


# ----------------------------------------------------------------------------- auth, CSRF, bad input
@pytest.fixture
def token_client(tmp_path: Path) -> Iterator[TestClient]:
    app, _, _ = make_app(tmp_path, token=TOKEN)
    ingest_all(app)
    yield TestClient(create_app(app), follow_redirects=False)
    app.close()


def test_token_login_cookie_and_bearer(token_client):
    c = token_client
    r = c.get("/console/facts?q=x")
    assert r.status_code == 303 and r.headers["location"] == "/console/login?next=%2Fconsole%2Ffacts%3Fq%3Dx"
    login = c.get("/console/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    form_token = re.search(r'name="csrf" value="([0-9a-f]+)"', login.text).group(1)
    # POSTs without the token: 401, whatever the form says
    assert c.post("/console/document/revert", data={"csrf": form_token, "id": "memo-2022"}).status_code == 401
    assert c.post("/console/chat", data={"csrf": form_token, "question": "Who?"}).status_code == 401
    bad = c.post("/console/login", data={"csrf": form_token, "token": "wrong", "next": "/console/documents"})
    assert bad.status_code == 401 and "wrong token" in bad.text and "knowd_console" not in bad.headers.get("set-cookie", "")
    assert c.post("/console/login", data={"token": TOKEN}).status_code == 403  # no CSRF field
    ok = c.post("/console/login", data={"csrf": form_token, "token": TOKEN, "next": "/console/documents"})
    assert ok.status_code == 303 and ok.headers["location"] == "/console/documents"
    cookie = ok.headers["set-cookie"]
    assert "knowd_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie
    assert c.get("/console/documents").status_code == 200  # the cookie
    # an open redirect is not followed
    assert c.post("/console/login", data={"csrf": form_token, "token": TOKEN, "next": "https://evil.example/"}).headers["location"] == "/console/facts"
    # with the cookie, a POST still needs the CSRF field, and a foreign Origin is refused
    assert c.post("/console/document/revert", data={"id": "memo-2022"}).status_code == 403
    assert c.post("/console/document/revert", data={"csrf": form_token, "id": "memo-2022"},
                  headers={"Origin": "https://evil.example"}).status_code == 403
    assert c.post("/console/document/revert", data={"csrf": form_token, "id": "memo-2022"},
                  headers={"Origin": "http://testserver"}).status_code == 303
    # the JSON API is not opened by the console's cookie
    assert c.get("/v1/status").status_code == 401
    assert c.post("/console/logout", data={"csrf": form_token}).status_code == 303
    c.cookies.clear()
    assert c.get("/console/documents").status_code == 303
    # the bearer header works without cookie or CSRF field (API clients, curl)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/console/facts", headers=auth).status_code == 200
    assert c.post("/console/chat/forget", headers=auth).status_code == 303
    assert c.get("/console/facts", headers={"Authorization": "Bearer nope"}).status_code == 303


def test_no_token_needs_csrf_for_writes(client):
    assert client.post("/console/document/revert", data={"id": "memo-2022"}).status_code == 403
    assert client.post("/console/document/revert", data={"id": "memo-2022", "csrf": "0" * 64}).status_code == 403
    assert client.get("/console/login").status_code == 303  # nothing to log in to


def test_bad_input_is_4xx_never_500(client):
    token = csrf(client)
    gets = [
        "/console/facts?as_of=%00%ff", "/console/facts?q=%00", "/console/facts?all=maybe", "/console/facts?as_of=" + "9" * 90,
        "/console/facts/%2e%2e%2f%2e%2e", "/console/facts/" + "x" * 3000, "/console/document?id=%00", "/console/document?id=%ud800",
        "/console/consolidation/runs/..%2f..%2f/", "/console/consolidation/runs/x/..%2fconfig.png", "/console/nowhere",
        "/console/consolidation/runs/" + "a" * 300 + "/", "/console/documents?status=%00",
    ]
    for url in gets:
        r = client.get(url)
        assert r.status_code < 500, (url, r.status_code)
    posts = [
        ("/console/document/revert", {"content": b'{"id": "memo-2022"}', "headers": {"content-type": "application/json"}}),
        ("/console/document/revert", {"content": b"csrf=" + token.encode() + b"&id=%ff%fe", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("/console/document/revert", {"content": b"csrf=" + token.encode() + b"&id=" + b"x" * 70_000, "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("/console/inbox/retry", {"data": {"csrf": token, "item": "1" * 30}}),
        ("/console/inbox/retry", {"data": {"csrf": token, "item": "-1"}}),
        ("/console/connectors/add", {"data": {"csrf": token, "name": "n", "kind": "feed", "options": "=\n"}}),
        ("/console/connectors/add", {"data": {"csrf": token, "name": "n" * 200, "kind": "feed"}}),
        ("/console/consolidation/ship", {"data": {"csrf": token, "version": "../../etc"}}),
        ("/console/chat", {"data": {"csrf": token, "question": "\x00 Who is the CEO of Northwind?"}}),
        ("/console/chat", {"content": b"csrf=" + token.encode() + b"&question=%ED%A0%80", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        ("/console/facts", {"data": {"csrf": token}}),
        ("/console/nowhere", {"data": {"csrf": token}}),
    ]
    for url, kw in posts:
        r = client.post(url, **kw)
        assert 300 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    assert client.get("/console/facts").status_code == 200  # still serving

"""Feed connector: the shared feed corpus, edits, and HTTP behaviour against a real local server."""
from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors import ConnectorError, PollResult, build_connector
from connectors.feed import FeedConnector

FEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "feeds"


@pytest.fixture(scope="module")
def feeds() -> Path:
    if not FEEDS.is_dir():
        pytest.skip(f"shared feed corpus not found at {FEEDS}")
    return FEEDS


def _poll_file(path: Path) -> PollResult:
    return FeedConnector("corpus", {"url": str(path)}).poll({})


# -- the corpus ---------------------------------------------------------------------------


def test_every_corpus_file_polls_or_fails_cleanly(feeds: Path) -> None:
    """~2,200 files: each gives documents or a ConnectorError, never another exception."""
    files = sorted(p for p in feeds.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    ok = refused = documents = warned = 0
    crashed: list[str] = []
    for path in files:
        try:
            result = _poll_file(path)
        except ConnectorError as exc:
            refused += 1
            assert "\n" not in str(exc), f"{path}: error message is not one line"
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            crashed.append(f"{path.relative_to(feeds)}: {type(exc).__name__}: {exc}")
            continue
        ok += 1
        documents += len(result.documents)
        warned += bool(result.warnings)
        json.dumps(result.state)  # the cursor must be JSON-serialisable
    print(f"\nfeed corpus: {len(files)} files, {ok} polled ({documents} documents, {warned} with warnings),"
          f" {refused} refused with ConnectorError")
    assert not crashed, "\n".join(crashed)
    # The refusals are the non-feeds: feed-rs's *.serde.json expectations (65), HTML pages
    # and OPML lists in real-captures, a truncated JSON Feed, an empty document...
    assert refused < 100 and ok > 2000


_EXPECT = re.compile(rb"Expect:\s*(.*)")
_ENTRY = re.compile(r"<((?:\w+:)?(?:item|entry))[\s>].*?</\1\s*>", re.I | re.S)
_SOURCE = re.compile(r"<((?:\w+:)?source)[\s>].*?</\1\s*>", re.I | re.S)  # the entry's origin feed, not the entry
_TEXT = re.compile(r"<((?:\w+:)?(?:title|description|summary|content|encoded|abstract))(\s[^>]*)?>(.*?)</\1\s*>",
                   re.I | re.S)
_TAG = re.compile(r"<[^>]*>")


def _readable_entries(xml: str) -> int:
    """Entries with some readable text, counted with regexes rather than with feedparser.

    An entry counts if a title/description/summary/content element has text left after
    removing CDATA markers, tags and (escaped) markup: `<content>&lt;span&gt;&lt;/span&gt;</content>`
    has none, so it yields no document.
    """
    count = 0
    for entry in _ENTRY.finditer(xml):
        body = _SOURCE.sub("", entry.group(0))
        for element in _TEXT.finditer(body):
            text = element.group(3).replace("<![CDATA[", "").replace("]]>", "")
            for _ in range(2):  # escaped HTML inside XML: unescape, strip, twice
                text = html.unescape(_TAG.sub(" ", text))
            if _TAG.sub(" ", text).strip():
                count += 1
                break
    return count


def test_feedparser_wellformed_corpus_yields_its_entries(feeds: Path) -> None:
    """Files whose header says `Expect: not bozo` and that hold readable entries give documents."""
    root = feeds / "feedparser"
    files = expected_total = documents_total = 0
    short: list[str] = []
    for path in sorted(root.rglob("*.xml")):
        raw = path.read_bytes()
        expect = _EXPECT.search(raw[:2000])
        if not expect or not expect.group(1).strip().startswith(b"not bozo"):
            continue
        expected = _readable_entries(raw.decode("utf-8", "replace"))
        if not expected:
            continue
        files += 1
        result = _poll_file(path)
        expected_total += expected
        documents_total += len(result.documents)
        assert len(result.documents) <= expected, f"{path}: more documents than entries"
        if not result.documents:
            short.append(str(path.relative_to(root)))
    print(f"\nfeedparser 'not bozo' files with readable entries: {files} files, {expected_total} entries"
          f" counted by regex, {documents_total} documents")
    assert not short, f"no documents from: {short}"
    assert files > 400
    # Entries with identical content and no id or link are one document (same content-hash id):
    # wellformed/lang/entry_content_xml_lang_blank_3.xml has two such.
    assert documents_total >= expected_total - 2


def test_real_feeds_give_readable_documents(feeds: Path) -> None:
    path = feeds / "real-captures" / "DaringFireball.rss"  # Atom, despite the name: 47 <entry>s
    result = _poll_file(path)
    assert len(result.documents) == len(_ENTRY.findall(path.read_text("utf-8"))) == 47
    doc = result.documents[0]
    assert doc.id.startswith("feed:") and doc.url and doc.url.startswith("http")
    assert doc.meta["feed_title"] == "Daring Fireball" and doc.meta["content_hash"] == doc.content_hash
    assert "<p>" not in doc.text and "</a>" not in doc.text  # HTML stripped to text
    assert all(d.published_at and not d.meta.get("published_estimated") for d in result.documents)
    times = [d.time for d in result.documents]
    assert times == sorted(times)  # oldest first, the order the inbox revises in


def test_json_feed_is_parsed_without_feedparser(feeds: Path) -> None:
    # feedparser 6.0 reads no JSON Feed: this file has version 1, two items, one with HTML + <script>.
    result = _poll_file(feeds / "feedparser" / "json" / "example.json")
    by_id = {d.id.rsplit("#", 1)[1]: d for d in result.documents}
    assert set(by_id) == {"1", "2"}
    assert by_id["1"].text == "Hello, world!"  # <script> dropped
    assert by_id["1"].author == "you" and by_id["2"].author == "me"  # item author, else the feed's
    assert by_id["2"].title == "post 2" and by_id["2"].url == "https://example.org/second-item"
    assert by_id["2"].meta["published_estimated"] is True  # no dates: fetch time stands in
    spec11 = _poll_file(feeds / "feed-rs" / "jsonfeed" / "jsonfeed_elastic_1.1.json")
    assert spec11.documents and spec11.documents[0].meta["feed_format"] == "jsonfeed1.1"
    assert spec11.documents[0].meta["feed_title"] == "Blog – InfluxData"  # &#8211; unescaped


# -- ids, edits, bounded memory -------------------------------------------------------------

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>"""
ITEM = "<item><guid>{guid}</guid><title>{title}</title><description>{text}</description></item>"


def _write_feed(path: Path, *items: tuple[str, str]) -> None:
    path.write_text(RSS.format(items="".join(ITEM.format(guid=g, title=g.upper(), text=t) for g, t in items)))


def test_edit_gives_a_new_version_id_and_unchanged_entries_are_skipped(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    connector = FeedConnector("local", {"url": str(feed)})
    _write_feed(feed, ("a", "first text"), ("b", "second text"))
    first = connector.poll({})
    assert sorted(d.id for d in first.documents) == [f"feed:{feed}#a", f"feed:{feed}#b"]

    assert connector.poll(first.state).documents == []  # file unchanged: not even parsed

    _write_feed(feed, ("a", "first text, corrected"), ("b", "second text"), ("c", "third"))
    second = connector.poll(first.state)
    edited = next(d for d in second.documents if d.id.startswith(f"feed:{feed}#a@"))
    assert edited.id == f"feed:{feed}#a@{edited.content_hash[:12]}"  # a new version, not a duplicate
    assert edited.meta["version_of"] == f"feed:{feed}#a" and edited.text == "first text, corrected"
    assert sorted(d.id for d in second.documents) == sorted([edited.id, f"feed:{feed}#c"])  # b unchanged

    _write_feed(feed, ("a", "first text, corrected"), ("b", "second text"), ("c", "third"), ("d", "4"))
    assert [d.id for d in connector.poll(second.state).documents] == [f"feed:{feed}#d"]


def test_ids_fall_back_to_link_then_content_hash(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(RSS.format(items=(
        "<item><link>https://example.org/x</link><title>with link</title></item>"
        "<item><title>bare</title><description>no guid, no link</description></item>")))
    docs = {d.title: d for d in FeedConnector("local", {"url": feed.as_uri()}).poll({}).documents}
    assert docs["with link"].id == f"feed:{feed.as_uri()}#https://example.org/x"
    assert docs["bare"].id == f"feed:{feed.as_uri()}#sha256:{docs['bare'].content_hash[:16]}"


def test_remembered_ids_are_bounded_but_never_forget_entries_still_in_the_feed(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    connector = FeedConnector("local", {"url": str(feed), "remember": 2})
    _write_feed(feed, ("a", "1"), ("b", "2"), ("c", "3"))
    state = connector.poll({}).state
    assert [key for key, _ in state["seen"]] == ["a", "b", "c"]  # 3 > remember, but all still in the feed
    _write_feed(feed, ("d", "4"))
    assert [key for key, _ in connector.poll(state).state["seen"]] == ["c", "d"]


def test_one_bad_item_does_not_stop_the_feed(tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J",
                                "items": ["not an object", {"id": "ok", "content_text": "fine",
                                                            "date_published": "2024-05-01T10:00:00+02:00"}]}))
    result = FeedConnector("local", {"url": str(feed)}).poll({})
    assert [d.id.rsplit("#", 1)[1] for d in result.documents] == ["ok"]
    assert result.documents[0].published_at.isoformat() == "2024-05-01T08:00:00+00:00"
    assert len(result.warnings) == 1 and "item 1 skipped" in result.warnings[0]


def test_config_errors_are_connector_errors() -> None:
    with pytest.raises(ConnectorError, match="missing option"):
        build_connector("feed", "x", {})
    with pytest.raises(ConnectorError, match="unknown option"):
        build_connector("feed", "x", {"url": "http://example.org/", "timeout": 3})
    with pytest.raises(ConnectorError, match="unsupported URL scheme"):
        build_connector("feed", "x", {"url": "ftp://example.org/feed"})
    with pytest.raises(ConnectorError, match="cannot read file"):
        build_connector("feed", "x", {"url": "/nonexistent/feed.xml"}).poll({})


# -- HTTP against a real local server -------------------------------------------------------

# Escaped HTML in <description>, as RSS carries it.
GOOD = RSS.format(items=ITEM.format(guid="n1", title="news", text="&lt;p&gt;Hello &amp;amp; welcome&lt;/p&gt;"))
BOZO = b'<rss version="2.0"><channel><item><title>kept</title><description>readable</description></item><item>'
BIG = 50 * 1024 * 1024


class _Server:
    """A local HTTP server whose routes exercise the connector's success and error paths."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.release = threading.Event()  # lets a hanging handler finish at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                route = getattr(server, "route_" + self.path.strip("/").replace("-", "_").replace(".", "_"), None)
                if route is None:
                    self.send_error(404)
                else:
                    try:
                        route(self)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up on purpose (oversize, timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200, **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", headers.pop("content_type", "application/rss+xml; charset=utf-8"))
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    def route_feed_xml(self, h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            h.send_response(304)
            h.end_headers()
            return
        self._send(h, GOOD.encode(), ETag='"v1"', Last_Modified="Wed, 01 May 2024 10:00:00 GMT")

    def route_error(self, h: BaseHTTPRequestHandler) -> None:
        self._send(h, b"boom", status=500, content_type="text/plain")

    def route_hang(self, h: BaseHTTPRequestHandler) -> None:
        self.release.wait(10)  # never answers within the client's timeout

    def route_big(self, h: BaseHTTPRequestHandler) -> None:
        # No Content-Length: the client must count as it streams.
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        chunk = b"<!-- padding -->" * 4096
        for _ in range(BIG // len(chunk)):
            h.wfile.write(chunk)

    def route_big_declared(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(BIG))
        h.end_headers()
        h.wfile.write(b"<rss>")

    def route_invalid_xml(self, h: BaseHTTPRequestHandler) -> None:
        self._send(h, b"<<<this is %% not & xml>", content_type="application/xml")

    def route_bozo_xml(self, h: BaseHTTPRequestHandler) -> None:
        self._send(h, BOZO)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def test_conditional_get(server: _Server) -> None:
    connector = FeedConnector("http", {"url": server.url + "/feed.xml"})
    first = connector.poll({})
    assert [d.text for d in first.documents] == ["Hello & welcome"]
    assert first.state["etag"] == '"v1"' and first.state["modified"] == "Wed, 01 May 2024 10:00:00 GMT"

    second = connector.poll(first.state)
    assert second.documents == [] and second.state["etag"] == '"v1"'  # 304 keeps the validators
    assert server.requests[-1]["if-none-match"] == '"v1"'
    assert server.requests[-1]["if-modified-since"] == "Wed, 01 May 2024 10:00:00 GMT"
    assert second.state["seen"] == first.state["seen"]


def test_http_error_status(server: _Server) -> None:
    with pytest.raises(ConnectorError, match=r"HTTP 500"):
        FeedConnector("http", {"url": server.url + "/error"}).poll({})
    with pytest.raises(ConnectorError, match=r"HTTP 404"):
        FeedConnector("http", {"url": server.url + "/missing"}).poll({})


def test_timeout(server: _Server) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="timed out after 0.5s"):
        FeedConnector("http", {"url": server.url + "/hang", "timeout_s": 0.5}).poll({})
    assert time.monotonic() - started < 5


def test_oversize_bodies_are_refused_without_reading_them_whole(server: _Server) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="over the 10485760-byte limit"):
        FeedConnector("http", {"url": server.url + "/big"}).poll({})  # default limit: 10 MB
    with pytest.raises(ConnectorError, match=f"{BIG} bytes is over"):
        FeedConnector("http", {"url": server.url + "/big-declared"}).poll({})
    assert time.monotonic() - started < 10


def test_invalid_and_malformed_xml(server: _Server) -> None:
    with pytest.raises(ConnectorError, match="not a readable feed|not an RSS"):
        FeedConnector("http", {"url": server.url + "/invalid.xml"}).poll({})
    # Malformed but partly readable: what can be read, plus a warning.
    result = FeedConnector("http", {"url": server.url + "/bozo.xml"}).poll({})
    assert [d.title for d in result.documents] == ["kept"]
    assert result.warnings and "malformed feed" in result.warnings[0]

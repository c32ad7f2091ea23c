"""News feed connector: RSS 0.9x/1.0/2.0, RDF, Atom (via feedparser) and JSON Feed 1.0/1.1.

Modelled on rss2email and Home Assistant's feedreader: stable entry ids
(guid, else link, else content hash), a content hash per id to notice edits,
conditional GET with ETag / Last-Modified, and one bad entry never stops the
feed. The feed location may be an http(s) URL, a file:// URL or a file path.
"""
from __future__ import annotations

import html
import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import feedparser
import html2text
import httpx

from connectors.base import ConnectorError, PollResult, check_options, number_option, one_line
from stores.types import Document, content_hash, utcnow

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_REMEMBER = 2000  # entry ids whose content hash is kept to notice edits
USER_AGENT = "knowd-feed/1.0 (+https://github.com/kurtmckee/feedparser)"
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/feed+json,"
    " application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass
class FeedEntry:
    """One entry, normalised from whichever feed format it came from."""

    guid: str | None
    link: str | None
    title: str | None
    text: str
    author: str | None
    published: datetime | None


@dataclass
class ParsedFeed:
    title: str | None
    format: str  # feedparser's version ("rss20", "atom10", ...) or "jsonfeed1"/"jsonfeed1.1"
    entries: list[FeedEntry]
    warnings: list[str] = field(default_factory=list)


class FeedConnector:
    """Poll one feed; return its new and edited entries as documents.

    Options: `url` (required; http(s) URL, file:// URL or path), `timeout_s`
    (the whole fetch, default 30), `max_bytes` (default 10 MB), `remember`
    (entry ids kept for edit detection, default 2000), `user_agent`.
    """

    kind = "feed"
    OPTIONS = ("url", "timeout_s", "max_bytes", "remember", "user_agent")

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        check_options(self.kind, name, options, self.OPTIONS, required=("url",))
        self.name = name
        self.url = str(options["url"])
        self.timeout_s = number_option(self.kind, name, options, "timeout_s", DEFAULT_TIMEOUT_S, float)
        self.max_bytes = number_option(self.kind, name, options, "max_bytes", DEFAULT_MAX_BYTES, int)
        self.remember = number_option(self.kind, name, options, "remember", DEFAULT_REMEMBER, int)
        self.user_agent = str(options.get("user_agent") or USER_AGENT)
        scheme = urlsplit(self.url).scheme.lower()
        if scheme in ("http", "https"):
            self._path: Path | None = None
        elif scheme == "file":
            self._path = Path(url2pathname(unquote(urlsplit(self.url).path)))
        elif "://" in self.url:
            raise ConnectorError(f"feed {self.url}: unsupported URL scheme {scheme!r}")
        else:
            self._path = Path(self.url).expanduser()

    def poll(self, state: dict[str, Any]) -> PollResult:
        fetched_at = utcnow()
        body, content_type, validators = self._fetch(state)
        new_state = {k: v for k, v in state.items() if k not in ("etag", "modified", "file_sig")}
        new_state.update(validators)
        if body is None:  # 304 Not Modified, or the file did not change
            return PollResult(documents=[], state=new_state, warnings=[])

        parsed = parse_feed(body, self.url, content_type)
        # Stored as [id, hash] pairs, oldest first: a list keeps its order through any JSON store.
        seen = {key: digest for key, digest in state.get("seen") or []}
        documents, seen, warnings = self._documents(parsed, seen, fetched_at)
        new_state["seen"] = [[key, digest] for key, digest in seen.items()]
        return PollResult(documents=documents, state=new_state, warnings=parsed.warnings + warnings)

    # -- fetching ---------------------------------------------------------------------------

    def _fetch(self, state: Mapping[str, Any]) -> tuple[bytes | None, str | None, dict[str, str]]:
        """Return (body or None if unchanged, content type, validators to store)."""
        if self._path is not None:
            return self._read_file(self._path, state)
        return self._get(state)

    def _read_file(self, path: Path, state: Mapping[str, Any]) -> tuple[bytes | None, None, dict[str, str]]:
        try:
            st = path.stat()
            # Size + mtime is the file's ETag: an unchanged file costs no parse.
            signature = f"{st.st_size}:{st.st_mtime_ns}"
            if st.st_size > self.max_bytes:
                raise ConnectorError(f"feed {self.url}: {st.st_size} bytes is over the {self.max_bytes}-byte limit")
            if state.get("file_sig") == signature:
                return None, None, {"file_sig": signature}
            return path.read_bytes(), None, {"file_sig": signature}
        except OSError as exc:
            raise ConnectorError(f"feed {self.url}: cannot read file: {exc.strerror or exc}") from exc

    def _get(self, state: Mapping[str, Any]) -> tuple[bytes | None, str | None, dict[str, str]]:
        headers = {"User-Agent": self.user_agent, "Accept": ACCEPT}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("modified"):
            headers["If-Modified-Since"] = state["modified"]
        # httpx timeouts bound each connect/read; the deadline bounds the whole body,
        # so a server trickling one byte a second cannot hold a poll forever.
        deadline = time.monotonic() + self.timeout_s
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=True, headers=headers) as client:
                with client.stream("GET", self.url) as response:
                    if response.status_code == 304:
                        return None, None, _validators(response.headers, state)
                    if response.status_code >= 400:
                        raise ConnectorError(
                            f"feed {self.url}: HTTP {response.status_code} {response.reason_phrase}".rstrip()
                        )
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_bytes:
                        raise ConnectorError(
                            f"feed {self.url}: {declared} bytes is over the {self.max_bytes}-byte limit"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    # iter_bytes() yields decoded bytes, so the limit also stops gzip bombs.
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise ConnectorError(
                                f"feed {self.url}: response is over the {self.max_bytes}-byte limit"
                            )
                        if time.monotonic() > deadline:
                            raise ConnectorError(f"feed {self.url}: timed out after {self.timeout_s:g}s")
                        chunks.append(chunk)
                    content_type = response.headers.get("content-type", "")
                    return b"".join(chunks), content_type, _validators(response.headers, {})
        except httpx.TimeoutException as exc:
            raise ConnectorError(f"feed {self.url}: timed out after {self.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise ConnectorError(f"feed {self.url}: {type(exc).__name__}: {one_line(exc)}") from exc

    # -- entries to documents ---------------------------------------------------------------

    def _documents(
        self, parsed: ParsedFeed, seen: dict[str, str], fetched_at: datetime
    ) -> tuple[list[Document], dict[str, str], list[str]]:
        """New and edited entries as documents; `seen` (id -> hash prefix) updated, bounded."""
        documents: list[Document] = []
        warnings: list[str] = []
        for number, entry in enumerate(parsed.entries, start=1):
            try:
                document = self._document(entry, parsed, seen, fetched_at)
            except Exception as exc:  # one bad entry never stops the feed
                warnings.append(f"feed {self.url}: entry {number} skipped: {type(exc).__name__}: {one_line(exc)}")
                continue
            if document is not None:
                documents.append(document)
        # Forget the oldest ids past the bound, but never one still in the feed, or an
        # old entry would come back as "new" on the next poll.
        limit = max(self.remember, len(parsed.entries))
        for key in list(seen)[: max(0, len(seen) - limit)]:
            del seen[key]
        documents.sort(key=lambda d: d.time)  # the inbox revises facts in time order
        return documents, seen, warnings

    def _document(
        self, entry: FeedEntry, parsed: ParsedFeed, seen: dict[str, str], fetched_at: datetime
    ) -> Document | None:
        text = entry.text.strip() or (entry.title or "").strip()
        if not text:
            return None  # nothing to learn from (e.g. a link-only entry); not an error
        digest = content_hash(entry.title or "", text)
        key = entry.guid or entry.link or f"sha256:{digest[:16]}"
        base_id = f"feed:{self.url}#{key}"
        previous = seen.pop(key, None)
        seen[key] = digest[:16]  # re-inserted last: insertion order is recency for the bound
        if previous == digest[:16]:
            return None
        meta: dict[str, Any] = {
            "feed_title": parsed.title,
            "feed_url": self.url,
            "feed_format": parsed.format,
            "content_hash": digest,
        }
        doc_id = base_id
        if previous is not None:
            # Same entry, new content: a new id so the inbox sees a new version, not a duplicate.
            doc_id = f"{base_id}@{digest[:12]}"
            meta["version_of"] = base_id
        if entry.published is None:
            meta["published_estimated"] = True  # no date in the entry: fetch time stands in
        return Document(
            id=doc_id,
            text=text,
            source=f"{self.kind}:{self.name}",
            url=entry.link,
            author=entry.author,
            published_at=entry.published or fetched_at,
            read_at=fetched_at,
            title=entry.title,
            meta=meta,
        )


# -- parsing ------------------------------------------------------------------------------


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse feed bytes of any supported format; ConnectorError if they are not a feed."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    # Sniff the body, not the Content-Type: servers label feeds wrongly all the time.
    if head[:1] in (b"{", b"["):
        return parse_json_feed(body, url)
    return parse_xml_feed(body, url, content_type)


def parse_xml_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """RSS/RDF/Atom through feedparser; malformed ("bozo") feeds give what could be read."""
    headers: dict[str, str] = {}
    if content_type is not None:
        # Over HTTP the Content-Type carries the charset feedparser must honour and the
        # URL is the base for relative links. Files get no headers at all: any header
        # without a Content-Type makes feedparser flag the feed as malformed.
        headers = {"content-type": content_type, "content-location": url}
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers or None)
    warnings: list[str] = []
    # A version, an entry or a channel title is what tells a feed from other XML (OPML,
    # HTML); CDF channels are real feeds that feedparser reports with no version.
    recognised = bool(parsed.version or parsed.entries or parsed.feed.get("title"))
    if parsed.bozo:
        reason = f"{type(parsed.bozo_exception).__name__}: {one_line(parsed.bozo_exception)}"
        if not recognised:
            raise ConnectorError(f"feed {url}: not a readable feed ({reason})")
        warnings.append(f"feed {url}: malformed feed, read what could be read ({reason})")
    elif not recognised:
        raise ConnectorError(f"feed {url}: not an RSS, Atom, RDF or JSON feed")
    entries = []
    for number, raw in enumerate(parsed.entries, start=1):
        try:
            entries.append(_feedparser_entry(raw))
        except Exception as exc:  # one bad entry never stops the feed
            warnings.append(f"feed {url}: entry {number} skipped: {type(exc).__name__}: {one_line(exc)}")
    title = parsed.feed.get("title")
    return ParsedFeed(title=title or None, format=parsed.version or "unknown", entries=entries, warnings=warnings)


def _feedparser_entry(raw: Mapping[str, Any]) -> FeedEntry:
    # Content and summary can both be present (content:encoded + description); the
    # longest is the full text, the other usually a teaser of it.
    candidates = list(raw.get("content") or [])
    if raw.get("summary_detail"):
        candidates.append(raw["summary_detail"])
    best = max(candidates, key=lambda c: len(c.get("value") or ""), default=None)
    text = _detail_text(best) if best else ""
    title = _detail_text(raw["title_detail"]) if raw.get("title_detail") else raw.get("title")
    author_detail = raw.get("author_detail") or {}
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        if raw.get(key):
            try:
                published = datetime(*raw[key][:6], tzinfo=timezone.utc)
                break
            except (TypeError, ValueError):  # feedparser can return impossible dates
                continue
    return FeedEntry(
        guid=(raw.get("id") or "").strip() or None,
        link=(raw.get("link") or "").strip() or None,
        title=(title or "").strip() or None,
        text=text,
        author=author_detail.get("name") or raw.get("author") or None,
        published=published,
    )


def _detail_text(detail: Mapping[str, Any]) -> str:
    value = detail.get("value") or ""
    return html_to_text(value) if "html" in (detail.get("type") or "text/html") else value.strip()


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1), parsed here because
    feedparser 6.0 does not read JSON Feed at all."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConnectorError(f"feed {url}: invalid JSON ({one_line(exc)})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ConnectorError(f"feed {url}: JSON document is not a JSON Feed (no 'items' list)")
    version = str(data.get("version") or "")
    warnings: list[str] = []
    if "jsonfeed.org/version/" not in version:
        warnings.append(f"feed {url}: JSON Feed without a jsonfeed.org version; read anyway")
    feed_author = _json_author(data)
    entries: list[FeedEntry] = []
    for number, item in enumerate(data["items"], start=1):
        try:
            if not isinstance(item, dict):
                raise ValueError(f"item is a {type(item).__name__}, not an object")
            if item.get("content_html"):
                text = html_to_text(str(item["content_html"]))
            else:
                text = str(item.get("content_text") or item.get("summary") or "").strip()
            guid = item.get("id")
            entries.append(
                FeedEntry(
                    guid=(str(guid).strip() or None) if guid is not None else None,
                    link=item.get("url") or item.get("external_url") or None,
                    # Plain text by the spec, but publishers leave HTML entities in titles.
                    title=html.unescape(str(item.get("title") or "")).strip() or None,
                    text=text,
                    author=_json_author(item) or feed_author,
                    published=_parse_date(item.get("date_published") or item.get("date_modified")),
                )
            )
        except Exception as exc:  # one bad item never stops the feed
            warnings.append(f"feed {url}: item {number} skipped: {type(exc).__name__}: {one_line(exc)}")
    suffix = version.rsplit("/version/", 1)[-1] if "/version/" in version else ""
    return ParsedFeed(
        title=html.unescape(str(data.get("title") or "")).strip() or None,
        format=f"jsonfeed{suffix}",
        entries=entries,
        warnings=warnings,
    )


def _json_author(obj: Mapping[str, Any]) -> str | None:
    """JSON Feed 1.1 `authors` list, else 1.0 `author` object."""
    authors = obj.get("authors") if isinstance(obj.get("authors"), list) else [obj.get("author")]
    names = [a["name"] for a in authors if isinstance(a, dict) and a.get("name")]
    return ", ".join(names) or None


def _parse_date(value: Any) -> datetime | None:
    """RFC 3339 (what JSON Feed specifies), else RFC 822; naive times are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


_MD_ESCAPE = re.compile(r"^(\s*\d*)\\([.\-+])", re.M)


def html_to_text(markup: str) -> str:
    """Readable plain paragraphs from HTML (html2text with links, images and emphasis dropped)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: keep one paragraph per line
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True  # keep "é" and "—" instead of ASCII stand-ins
    text = converter.handle(markup)
    # Undo the Markdown escapes html2text adds to lines that start like a list ("2024\. Rates
    # rose", "\- note") and the two trailing spaces it writes for <br>: this is prose, not Markdown.
    text = _MD_ESCAPE.sub(r"\1\2", text).replace("  \n", "\n")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- small helpers ------------------------------------------------------------------------


def _validators(headers: httpx.Headers, fallback: Mapping[str, Any]) -> dict[str, str]:
    """ETag / Last-Modified to send next time (a 304 may omit them: keep the old ones)."""
    found = {"etag": headers.get("etag") or fallback.get("etag"),
             "modified": headers.get("last-modified") or fallback.get("modified")}
    return {k: v for k, v in found.items() if v}

"""Chat-log connector: watches a folder of chat exports and turns new messages into documents.

Each poll looks at every export under `path` (Slack zip/folder, Telegram JSON/HTML,
WhatsApp txt, Facebook Messenger JSON, DiscordChatExporter JSON, IRC logs, JSONL;
see `connectors.chat_formats`). Messages not seen before are grouped per channel
into conversation windows, split where the chat went quiet for `gap_minutes` or
a window reached `max_messages` / `max_chars`, and each window becomes one
document whose text reads `[2016-06-06 02:13] alice: text`, one line a message.

Per file the state holds its size and mtime (an unchanged file is not re-read)
and a watermark: the latest message time and the keys of the messages at that
time. A message is new when it is later than the watermark, or at it with an
unseen key. Unlike "the first N messages are old", this survives exports that
are rewritten rather than appended to (Slack and Telegram re-exports, Facebook's
newest-first order), and it keeps the state small however long the chat grows.
"""
from __future__ import annotations

import fnmatch
import os
from collections import Counter
from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import ConnectorError, PollResult, check_options, number_option, one_line
from connectors.chat_formats import FORMATS, PARSERS, ChatMessage, ParseContext, detect_format
from stores.types import Document, content_hash, utcnow

# Extensions worth opening; anything else in the folder (LICENSE, photos) is ignored.
CHAT_SUFFIXES = {".zip", ".json", ".jsonl", ".txt", ".log", ".html", ".htm"}


class ChatLogConnector:
    """Turn new messages in a folder of chat exports into conversation-window documents.

    Options: `path` (required; a folder, or one export file), `gap_minutes` (30),
    `max_messages` (50) and `max_chars` (4000) per window, `formats` (glob of the
    relative path -> format, to force one where detection guesses wrong),
    `timezone` (IANA name for exports that write local times, and for the text;
    default UTC), `date_order` (WhatsApp: auto, dmy, mdy or ymd), `irc_date`
    (YYYY-MM-DD for IRC logs without a date in their file name).
    """

    kind = "chatlog"
    OPTIONS = ("path", "gap_minutes", "max_messages", "max_chars", "formats", "timezone", "date_order", "irc_date")

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        check_options(self.kind, name, options, self.OPTIONS, required=("path",))
        self.name = name
        self.path = Path(str(options["path"])).expanduser()
        self.gap = timedelta(minutes=number_option(self.kind, name, options, "gap_minutes", 30, float))
        self.max_messages = number_option(self.kind, name, options, "max_messages", 50, int)
        self.max_chars = number_option(self.kind, name, options, "max_chars", 4000, int)
        if not isinstance(options.get("formats") or {}, Mapping):
            raise ConnectorError(f"chatlog connector {name!r}: formats must map file globs to formats")
        self.formats: dict[str, str] = dict(options.get("formats") or {})
        for pattern, fmt in self.formats.items():
            if fmt not in FORMATS:
                raise ConnectorError(
                    f"chatlog connector {name!r}: format {fmt!r} for {pattern!r} is not one of {', '.join(FORMATS)}"
                )
        try:
            self.tz: tzinfo = ZoneInfo(str(options.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConnectorError(f"chatlog connector {name!r}: unknown timezone {options['timezone']!r}") from None
        self.date_order = str(options.get("date_order") or "auto")
        if self.date_order not in ("auto", "dmy", "mdy", "ymd"):
            raise ConnectorError(f"chatlog connector {name!r}: date_order must be auto, dmy, mdy or ymd")
        irc_date = options.get("irc_date")  # YAML may already have made it a date
        try:
            self.irc_date = date.fromisoformat(str(irc_date)) if irc_date is not None else None
        except ValueError:
            raise ConnectorError(f"chatlog connector {name!r}: irc_date must be YYYY-MM-DD, not {irc_date!r}") from None

    def poll(self, state: dict[str, Any]) -> PollResult:
        if not self.path.exists():
            raise ConnectorError(f"chatlog {self.name}: {self.path} does not exist")
        read_at = utcnow()
        files: dict[str, Any] = dict(state.get("files") or {})
        documents: list[Document] = []
        warnings: list[str] = []
        for relative, path in self._exports():
            try:
                signature = _signature(path)
                previous = files.get(relative)
                if previous and previous.get("signature") == signature:
                    continue
                new_docs, file_state, file_warnings = self._read(relative, path, signature, previous, read_at)
            except Exception as exc:  # one bad file never stops the folder; retried next poll
                warnings.append(f"chatlog {relative}: skipped: {type(exc).__name__}: {one_line(exc)}")
                continue
            documents.extend(new_docs)
            warnings.extend(f"chatlog {relative}: {w}" for w in file_warnings)
            files[relative] = file_state
        documents.sort(key=lambda d: d.time)
        return PollResult(documents=documents, state={**state, "files": files}, warnings=warnings)

    def _exports(self) -> list[tuple[str, Path]]:
        """(path relative to the watched folder, path) of every candidate export, sorted."""
        if self.path.is_file():
            return [(self.path.name, self.path)]
        found: list[tuple[str, Path]] = []
        for folder, subfolders, filenames in os.walk(self.path):
            here = Path(folder)
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            if detect_format(here) == "slack":  # an unpacked Slack export is one unit
                subfolders.clear()
                relative = here.relative_to(self.path).as_posix()
                found.append((here.name if relative == "." else relative, here))
                continue
            for filename in filenames:
                if not filename.startswith(".") and Path(filename).suffix.lower() in CHAT_SUFFIXES:
                    path = here / filename
                    found.append((path.relative_to(self.path).as_posix(), path))
        return sorted(found)

    def _read(
        self, relative: str, path: Path, signature: list[int], previous: Mapping[str, Any] | None, read_at: datetime
    ) -> tuple[list[Document], dict[str, Any], list[str]]:
        """Documents for the new messages of one export, its new state, and warnings."""
        fmt = self._format(relative, path)
        if fmt is None:
            # Remembered with no format, so it is reported once, not re-read until it changes.
            warning = "not a recognised chat export (the formats option can force one); ignored until it changes"
            return [], {"signature": signature, "format": None}, [warning]
        ctx = ParseContext(tz=self.tz, date_order=self.date_order, irc_date=self.irc_date)
        keyed = _with_keys(PARSERS[fmt](path, ctx))
        if previous and previous.get("last_time"):
            watermark = datetime.fromisoformat(previous["last_time"])
            at_watermark = set(previous.get("last_keys") or [])
            new = [(k, m) for k, m in keyed if m.time > watermark or (m.time == watermark and k not in at_watermark)]
            if len(keyed) < previous.get("count", 0):
                ctx.warnings.append(
                    f"has fewer messages than before ({len(keyed)} < {previous['count']}): rewritten?"
                    f" only messages after {watermark.isoformat()} are read"
                )
        else:
            new = keyed
        file_state: dict[str, Any] = {"signature": signature, "format": fmt, "count": len(keyed)}
        if keyed:
            latest = max(m.time for _, m in keyed)
            file_state["last_time"] = latest.isoformat()
            file_state["last_keys"] = [k for k, m in keyed if m.time == latest]
        documents = [self._document(relative, fmt, window, read_at) for window in self._windows(new)]
        return documents, file_state, ctx.warnings

    def _format(self, relative: str, path: Path) -> str | None:
        for pattern, fmt in self.formats.items():
            if fnmatch.fnmatch(relative, pattern):
                return fmt
        return detect_format(path)

    def _windows(self, messages: list[tuple[str, ChatMessage]]) -> list[list[tuple[str, ChatMessage]]]:
        """Split each channel's messages, in time order, into conversation windows."""
        by_channel: dict[str, list[tuple[str, ChatMessage]]] = {}
        for keyed in messages:
            by_channel.setdefault(keyed[1].channel, []).append(keyed)
        windows: list[list[tuple[str, ChatMessage]]] = []
        for channel_messages in by_channel.values():
            window: list[tuple[str, ChatMessage]] = []
            chars = 0
            for keyed in sorted(channel_messages, key=lambda km: km[1].time):  # stable: file order on ties
                size = len(self._line(keyed[1])) + 1
                if window and (
                    keyed[1].time - window[-1][1].time > self.gap
                    or len(window) >= self.max_messages
                    or chars + size > self.max_chars
                ):
                    windows.append(window)
                    window, chars = [], 0
                window.append(keyed)
                chars += size
            if window:
                windows.append(window)
        return windows

    def _line(self, message: ChatMessage) -> str:
        stamp = message.time.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")
        text = message.text.replace("\n", "\n    ")  # continuation lines indented: one line, one message
        return f"[{stamp}] {message.speaker}: {text}"

    def _document(
        self, relative: str, fmt: str, window: list[tuple[str, ChatMessage]], read_at: datetime
    ) -> Document:
        first, last = window[0][1], window[-1][1]
        speakers = list(dict.fromkeys(m.speaker for _, m in window))  # in order of first appearance
        start = first.time.astimezone(self.tz)
        end = last.time.astimezone(self.tz)
        span = f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}" if start.date() == end.date() else (
            f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M}")
        return Document(
            id=f"chat:{relative}#{window[0][0]}..{window[-1][0]}",
            text="\n".join(self._line(m) for _, m in window),
            source=f"{self.kind}:{self.name}",
            author=speakers[0] if len(speakers) == 1 else None,
            published_at=last.time,
            read_at=read_at,
            title=f"{first.channel}, {span}",
            meta={
                "channel": first.channel,
                "speakers": speakers,
                "message_count": len(window),
                "format": fmt,
                "file": relative,
                "first_message_at": first.time.isoformat(),
            },
        )


def _with_keys(messages: list[ChatMessage]) -> list[tuple[str, ChatMessage]]:
    """Each message with its identity: a hash of (channel, time, speaker, text).

    Two identical messages in the same minute ("ok", "ok") are different messages:
    the n-th repeat gets ".n" appended, counted in file order so it is stable as the file grows.
    """
    seen: Counter[str] = Counter()
    keyed = []
    for message in messages:
        key = content_hash(message.channel, message.time.isoformat(), message.speaker, message.text)[:16]
        seen[key] += 1
        keyed.append((key if seen[key] == 1 else f"{key}.{seen[key]}", message))
    return keyed


def _signature(path: Path) -> list[int]:
    """[size, mtime_ns] of a file; summed size, latest mtime and file count of a folder export."""
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    stats = [p.stat() for p in path.rglob("*") if p.is_file()]
    return [sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0), len(stats)]

"""Parsers for chat exports: each turns one export into a list of `ChatMessage`s in file order.

Why not langchain_community.chat_loaders? Run against the exports in
../shared/data/chatlogs (langchain-community 0.4.2), each loader drops or mangles
what a knowledge base needs:

* WhatsAppChatLoader only matches `m/d/y, h:mm:ss` with seconds: it returns 2 of
  the 8 messages of examples_whatsapp_chat.txt, the other lines (`1/23/23, 3:19 AM -
  User 2: Bye!`, `[2023/5/4, ...]`) glued onto them as text; speakers keep the "~ "
  prefix and times stay unparsed strings.
* SlackChatLoader returns 28 of the 147 messages of testarchive.zip: it drops bot
  messages, merges consecutive messages of a sender, gives user ids not names,
  has no channel, and keeps "has joined" notices for user ids with letters.
* TelegramChatLoader reads `date` as a naive local string (ignoring
  `date_unixtime`), keeps rich text as a list of entities, and its HTML variant
  needs BeautifulSoup, which knowd does not otherwise use.
* FacebookMessengerChatLoader drops the timestamps entirely.

So the formats are parsed here, with the standard library only.
"""
from __future__ import annotations

import functools
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

FORMATS = ("slack", "telegram_json", "telegram_html", "whatsapp", "facebook", "discord", "irc", "jsonl")


@dataclass(frozen=True)
class ChatMessage:
    channel: str
    time: datetime  # timezone-aware
    speaker: str
    text: str


@dataclass
class ParseContext:
    """What a parser needs beyond the file: how to read naive times, and where to warn."""

    tz: tzinfo = timezone.utc  # for exports that write local times without an offset
    date_order: str = "auto"  # WhatsApp: "auto", "dmy", "mdy" or "ymd"
    irc_date: date | None = None  # IRC logs whose file name carries no date
    warnings: list[str] = field(default_factory=list)


# -- detection ----------------------------------------------------------------------------

_SLACK_DAY = re.compile(r"(?:^|/)([^/]+)/(\d{4}-\d{2}-\d{2})\.json$")


def detect_format(path: Path) -> str | None:
    """The export format of `path` (a file, or a Slack export folder), or None if not a chat export."""
    if path.is_dir():
        return "slack" if (path / "channels.json").exists() or (path / "users.json").exists() else None
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return "slack" if any(_SLACK_DAY.search(n) for n in names) else None
    if suffix == ".jsonl":
        return "jsonl"
    head = _read_head(path)
    if suffix == ".json":
        # Top-level keys come first in every exporter's output, so the head is enough.
        if '"guild"' in head and '"channel"' in head:
            return "discord"
        if '"sender_name"' in head and '"timestamp_ms"' in head:
            return "facebook"
        if '"date_unixtime"' in head or '"personal_chat"' in head or '"chats"' in head or '"from_id"' in head:
            return "telegram_json"
        return None
    if suffix in (".html", ".htm"):
        return "telegram_html" if "from_name" in head or "page_wrap" in head else None
    if suffix in (".txt", ".log"):
        lines = head.splitlines()
        irc = sum(1 for line in lines if _IRC_STAMP.match(line))
        whatsapp = sum(1 for line in lines if _WA_HEADER.match(line))
        if max(irc, whatsapp) == 0:
            return None
        return "irc" if irc >= whatsapp else "whatsapp"
    return None


def _read_head(path: Path, size: int = 65536) -> str:
    with path.open("rb") as f:
        return f.read(size).decode("utf-8", "replace")


# -- Slack (zip or folder export) -----------------------------------------------------------

# Membership and integration notices: true, but not knowledge about anything.
_SLACK_SKIP = {"channel_join", "channel_leave", "group_join", "group_leave", "bot_add", "bot_remove",
               "pinned_item", "unpinned_item"}


def parse_slack(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """Slack workspace export: users.json plus <channel>/<yyyy-mm-dd>.json, zipped or unpacked."""
    if path.is_dir():
        return _parse_slack_files({p.relative_to(path).as_posix(): p.read_bytes for p in path.rglob("*.json")}, ctx)
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")]
        return _parse_slack_files({n: functools.partial(archive.read, n) for n in names}, ctx)


def _parse_slack_files(files: dict[str, Callable[[], bytes]], ctx: ParseContext) -> list[ChatMessage]:
    """`files`: export-relative name -> reader of its bytes."""
    users: dict[str, str] = {}
    for name, read in files.items():
        if name.rsplit("/", 1)[-1] == "users.json":
            for user in json.loads(read()):
                users[user["id"]] = _slack_name(user.get("profile") or {}, user)
    bots: dict[str, str] = {}  # bot id -> integration name, from "added an integration" notices
    messages: list[ChatMessage] = []
    for name in sorted(files):
        match = _SLACK_DAY.search(name)
        if not match:
            continue
        channel = "#" + match.group(1)
        try:
            day = json.loads(files[name]())
        except (ValueError, UnicodeDecodeError) as exc:
            ctx.warnings.append(f"{name}: not valid JSON ({exc}); day skipped")
            continue
        for raw in day:
            if not isinstance(raw, dict) or "ts" not in raw:
                continue
            if raw.get("subtype") == "bot_add" and raw.get("bot_id"):
                named = re.search(r"\|([^<>|]+)>", raw.get("text") or "")
                if named:
                    bots[raw["bot_id"]] = named.group(1)
            if raw.get("subtype") in _SLACK_SKIP:
                continue
            text = raw.get("text") or ""
            if not text.strip():
                # Bot messages (CI, GitHub) keep their content in attachments.
                text = "\n".join(_slack_attachment_text(a) for a in raw.get("attachments") or [])
            text = _slack_markup(text, users).strip()
            if not text:
                continue
            user = raw.get("user") or (raw.get("comment") or {}).get("user")  # file comments nest it
            speaker = (
                users.get(user or "")
                or _slack_name(raw.get("user_profile") or {}, {})
                or raw.get("username")
                or (raw.get("bot_profile") or {}).get("name")
                or user
                or raw.get("bot_id")
                or "unknown"
            )
            time = datetime.fromtimestamp(float(raw["ts"]), tz=timezone.utc)
            messages.append(ChatMessage(channel, time, speaker, text))
    # Bots are named by notices that may come after their first message: resolve at the end.
    return [replace(m, speaker=bots.get(m.speaker, m.speaker)) for m in messages]


def _slack_name(profile: dict[str, Any], user: dict[str, Any]) -> str:
    # A person's real name makes better facts than a handle ("Hermione Granger", not "doubledeez").
    return (profile.get("real_name") or user.get("real_name") or profile.get("display_name")
            or user.get("name") or profile.get("name") or "")


def _slack_attachment_text(attachment: dict[str, Any]) -> str:
    parts = [attachment.get(k) for k in ("pretext", "title", "text")]
    return "\n".join(p for p in parts if p) or attachment.get("fallback") or ""


_SLACK_REF = re.compile(r"<([@#!])?([^<>|]*)(?:\|([^<>]*))?>")


def _slack_markup(text: str, users: dict[str, str]) -> str:
    """Slack's `<@U123>`, `<#C1|general>`, `<url|label>` and &lt;/&gt;/&amp; to plain text."""

    def resolve(match: re.Match[str]) -> str:
        sigil, target, label = match.groups()
        if sigil == "@":
            return "@" + (label or users.get(target) or target)
        if sigil == "#":
            return "#" + (label or target)
        if sigil == "!":
            return "@" + (label or target.split("^")[0])
        return label or target

    text = _SLACK_REF.sub(resolve, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# -- Telegram ---------------------------------------------------------------------------------


def parse_telegram_json(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """Telegram Desktop "machine-readable JSON": one chat (result.json) or a full export."""
    data = json.loads(path.read_bytes())
    chats = (data.get("chats") or {}).get("list") if "chats" in data else [data]
    messages: list[ChatMessage] = []
    for chat in chats or []:
        channel = chat.get("name") or str(chat.get("id") or path.stem)
        for raw in chat.get("messages") or []:
            if raw.get("type") != "message":
                continue  # service messages: joins, pins, calls
            text = _telegram_text(raw.get("text")).strip()
            if not text:
                continue  # media without a caption
            if raw.get("date_unixtime"):
                time = datetime.fromtimestamp(int(raw["date_unixtime"]), tz=timezone.utc)
            else:
                time = _localise(datetime.fromisoformat(raw["date"]), ctx.tz)
            messages.append(ChatMessage(channel, time, raw.get("from") or "Deleted Account", text))
    return messages


def _telegram_text(value: Any) -> str:
    """Telegram's text is a string, or a list of strings and {type, text} entities."""
    if isinstance(value, list):
        return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in value)
    return str(value or "")


_TG_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})(?: UTC([+-])(\d{2}):(\d{2}))?")


class _TelegramHTML(HTMLParser):
    """Telegram Desktop's HTML export: div.message.default > div.date[title], div.from_name, div.text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[set[str]] = []  # classes of the open divs
        self.chat_name = ""
        self.messages: list[dict[str, str]] = []
        self._current: dict[str, str] | None = None
        self._message_depth = 0
        self._field: str | None = None
        self._field_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.handle_data("\n")
        if tag != "div":
            return
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        self.stack.append(classes)
        if {"message", "default"} <= classes:
            self._current = {"from_name": "", "text": "", "date": ""}
            self._message_depth = len(self.stack)
            self.messages.append(self._current)
        elif self._current is not None and self._field is None:
            if "date" in classes and "details" in classes and not self._current["date"]:
                self._current["date"] = attributes.get("title") or ""
            # The first from_name/text wins: in a forwarded message they are the
            # forwarder's name and the forwarded text.
            for name in ("from_name", "text"):
                if name in classes and not self._current[name].strip():
                    self._field, self._field_depth = name, len(self.stack)
        elif {"text", "bold"} <= classes and not self.chat_name and self._current is None:
            self._field, self._field_depth = "chat_name", len(self.stack)

    def handle_endtag(self, tag: str) -> None:
        if tag != "div" or not self.stack:
            return
        depth = len(self.stack)
        self.stack.pop()
        if self._field and depth == self._field_depth:
            self._field = None
        if self._current is not None and depth == self._message_depth:
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._field == "chat_name":
            self.chat_name += data
        elif self._field and self._current is not None:
            self._current[self._field] += data


def parse_telegram_html(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    parser = _TelegramHTML()
    parser.feed(path.read_text("utf-8", errors="replace"))
    parser.close()
    channel = " ".join(parser.chat_name.split()) or path.parent.name or path.stem
    messages: list[ChatMessage] = []
    previous_speaker = ""
    for raw in parser.messages:
        # "joined" messages (a sender's follow-ups) carry no from_name: same sender as before.
        speaker = " ".join(raw["from_name"].split()) or previous_speaker
        previous_speaker = speaker
        text = "\n".join(line.strip() for line in raw["text"].strip().splitlines())
        match = _TG_DATE.search(raw["date"])
        if not text or not match:
            continue
        day, month, year, hour, minute, second = (int(g) for g in match.groups()[:6])
        time = datetime(year, month, day, hour, minute, second)
        if match.group(7):
            offset = timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
            time = time.replace(tzinfo=timezone(offset if match.group(7) == "+" else -offset))
        else:
            time = _localise(time, ctx.tz)
        messages.append(ChatMessage(channel, time, speaker or "unknown", text))
    return messages


# -- WhatsApp ---------------------------------------------------------------------------------

# One header regex for the export's many shapes: [d.m.yy, hh:mm:ss], m/d/yy, h:mm AM - ,
# y/m/d, with or without brackets and seconds, 12 or 24 hours, odd spaces before AM/PM.
_WA_HEADER = re.compile(
    r"^[\u200e\u200f]*\[?(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4}),?\s+"
    r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
    r"(?:[\s\u202f\u00a0_]*(?P<ampm>[AaPp]\.?\s?[Mm]\.?))?"
    r"\]?\s*(?:[-\u2013]\s+)?(?P<rest>.*)$"
)
_WA_SPEAKER = re.compile(r"^[~\s\u202f\u00a0\u200e]*(?P<speaker>[^:]+?):\s(?P<text>.*)$", re.S)
# Placeholders WhatsApp writes instead of content.
_WA_PLACEHOLDER = re.compile(
    r"^(<Media omitted>|(image|video|audio|sticker|GIF|document|Contact card) omitted"
    r"|This message was deleted\.?|You deleted this message\.?|<attached: [^>]*>"
    r"|Messages and calls are end-to-end encrypted\..*)$",
    re.I | re.S,
)


def parse_whatsapp(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    channel = path.stem.removeprefix("WhatsApp Chat with ").strip() or path.stem
    headers: list[tuple[re.Match[str], list[str]]] = []  # header match, continuation lines
    for line in path.read_text("utf-8", errors="replace").splitlines():
        match = _WA_HEADER.match(line)
        if match:
            # System lines ("X added Y") have no speaker; they are kept here only so
            # that they end the previous message, and dropped below.
            headers.append((match, []))
        elif headers:
            headers[-1][1].append(line)  # a multi-line message
    orders = _whatsapp_orders([m for m, _ in headers], ctx.date_order)
    messages: list[ChatMessage] = []
    for match, continuation in headers:
        said = _WA_SPEAKER.match(match.group("rest"))
        if not said:
            continue
        text = "\n".join([said.group("text"), *continuation]).replace("\u200e", "").strip()
        if not text or _WA_PLACEHOLDER.match(text):
            continue
        try:
            time = _whatsapp_time(match, orders)
        except ValueError as exc:
            ctx.warnings.append(f"line {match.group(0)[:40]!r}: bad date ({exc}); skipped")
            continue
        speaker = said.group("speaker").replace("\u200e", "").strip()
        messages.append(ChatMessage(channel, _localise(time, ctx.tz), speaker, text))
    return messages


def _date_parts(match: re.Match[str]) -> tuple[str, list[str]]:
    raw = match.group("date")
    separator = re.sub(r"\d", "", raw)[:1]
    return separator, re.split(r"[./-]", raw)


def _whatsapp_orders(matches: Iterable[re.Match[str]], forced: str) -> dict[str, str]:
    """Day/month order per date separator, from the evidence in the whole file.

    A component over 12 settles it; failing that, a 12-hour clock means a US
    export (m/d/y) and a 24-hour clock the rest of the world's d/m/y.
    """
    evidence: dict[str, set[str]] = {}
    for match in matches:
        separator, parts = _date_parts(match)
        votes = evidence.setdefault(separator, set())
        if len(parts[0]) == 4:
            continue  # y/m/d is decided per line
        first, second = int(parts[0]), int(parts[1])
        if first > 12:
            votes.add("dmy")
        elif second > 12:
            votes.add("mdy")
        votes.add("12h" if match.group("ampm") else "24h")
    orders = {}
    for separator, votes in evidence.items():
        if forced != "auto":
            orders[separator] = forced
        elif "dmy" in votes or "mdy" in votes:
            orders[separator] = "dmy" if "dmy" in votes else "mdy"
        else:
            orders[separator] = "mdy" if "12h" in votes else "dmy"
    return orders


def _whatsapp_time(match: re.Match[str], orders: dict[str, str]) -> datetime:
    separator, parts = _date_parts(match)
    a, b, c = (int(p) for p in parts)
    order = "ymd" if len(parts[0]) == 4 else orders[separator]
    year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
    if year < 100:
        year += 2000
    clock = [int(p) for p in re.split(r"[:.]", match.group("time"))]
    hour, minute, second = clock[0], clock[1], clock[2] if len(clock) > 2 else 0
    ampm = (match.group("ampm") or "").lower()
    if ampm:
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    return datetime(year, month, day, hour, minute, second)


# -- Facebook Messenger, Discord, JSONL -------------------------------------------------------


def parse_facebook(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """Facebook "Download your information" JSON (message_1.json)."""
    data = json.loads(path.read_bytes())
    channel = _facebook_text(data.get("title") or "") or path.parent.name
    messages = []
    for raw in data.get("messages") or []:
        text = _facebook_text(raw.get("content") or "").strip()
        if not text or "timestamp_ms" not in raw:
            continue  # photos, stickers, calls
        time = datetime.fromtimestamp(raw["timestamp_ms"] / 1000, tz=timezone.utc)
        messages.append(ChatMessage(channel, time, _facebook_text(raw.get("sender_name") or "unknown"), text))
    return messages


def _facebook_text(value: str) -> str:
    # Facebook writes UTF-8 bytes as \u00XX escapes ("Ã©" for "é"): undo it where it applies.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_discord(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """DiscordChatExporter JSON: {guild, channel, messages: [{type, timestamp, author, content}]}."""
    data = json.loads(path.read_bytes())
    guild = (data.get("guild") or {}).get("name")
    channel = "#" + str((data.get("channel") or {}).get("name") or path.stem)
    if guild:
        channel = f"{guild} {channel}"
    messages = []
    for raw in data.get("messages") or []:
        text = (raw.get("content") or "").strip()
        if raw.get("type", "Default") not in ("Default", "Reply") or not text:
            continue  # joins, pins, calls; attachment-only posts
        author = raw.get("author") or {}
        speaker = author.get("nickname") or author.get("name") or "unknown"
        messages.append(ChatMessage(channel, _localise(datetime.fromisoformat(raw["timestamp"]), ctx.tz),
                                    speaker, text))
    return messages


def parse_jsonl(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """One `{"time", "speaker", "text", "channel"}` object per line; time ISO 8601 or epoch seconds."""
    messages = []
    for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            text = str(raw["text"]).strip()
            if isinstance(raw["time"], (int, float)):
                time = datetime.fromtimestamp(raw["time"], tz=timezone.utc)
            else:
                time = _localise(datetime.fromisoformat(str(raw["time"])), ctx.tz)
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            ctx.warnings.append(f"line {number} skipped: {type(exc).__name__}: {exc}")
            continue
        if text:
            channel = str(raw.get("channel") or path.stem)
            messages.append(ChatMessage(channel, time, str(raw.get("speaker") or "unknown"), text))
    return messages


# -- IRC -----------------------------------------------------------------------------------

_IRC_STAMP = re.compile(r"^\[(\d{1,2}):(\d{2})(?::(\d{2}))?\]\s")
_IRC_SAY = re.compile(r"^\[(\d{1,2}):(\d{2})(?::(\d{2}))?\]\s+<[@+%&~]?([^>\s]+)>\s?(.*)$")
_IRC_ACTION = re.compile(r"^\[(\d{1,2}):(\d{2})(?::(\d{2}))?\]\s+\*\s+(\S+)\s+(.*)$")
# Clients that print joins, parts and nick changes as "* ..." lines.
_IRC_NOTICE = re.compile(r"^(has (joined|left|quit)|is now known as|sets mode|Joins:|Parts:|Quits:)", re.I)
_DATE_IN_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_irc(path: Path, ctx: ParseContext) -> list[ChatMessage]:
    """`[hh:mm] <nick> text` logs; `* nick does` actions kept, joins/parts/nick changes skipped.

    The log lines carry no date: it comes from the file name (ubuntu-2016-06-06_02.raw.txt),
    else the `irc_date` option, else the file's modification date (with a warning).
    """
    found = _DATE_IN_NAME.search(path.name)
    if found:
        day = date(*(int(g) for g in found.groups()))
        channel = "#" + (path.name[: found.start()].strip("-_. ") or path.parent.name)
    else:
        channel = "#" + path.name.split(".")[0]
        day = ctx.irc_date or datetime.fromtimestamp(path.stat().st_mtime, tz=ctx.tz).date()
        if ctx.irc_date is None:
            ctx.warnings.append(f"no date in the file name or irc_date option; using the file's date {day}")
    messages = []
    previous: datetime | None = None
    for line in path.read_text("utf-8", errors="replace").splitlines():
        said = _IRC_SAY.match(line)
        acted = None if said else _IRC_ACTION.match(line)
        match = said or acted
        if not match:
            continue  # "=== x is now known as y", "-!- x has joined", blank lines
        hour, minute, second, nick, text = match.groups()
        if acted:
            if _IRC_NOTICE.match(text):
                continue
            text = "/me " + text
        if not text.strip():
            continue
        time = datetime(day.year, day.month, day.day, int(hour), int(minute), int(second or 0))
        # A clock that jumps back by more than an hour means the log crossed midnight;
        # smaller steps back are out-of-order lines, not a new day.
        if previous is not None and time < previous - timedelta(hours=1):
            day += timedelta(days=1)
            time += timedelta(days=1)
        previous = time
        messages.append(ChatMessage(channel, _localise(time, ctx.tz), nick, text.strip()))
    return messages


def _localise(time: datetime, tz: tzinfo) -> datetime:
    """Naive times are local to the export (the `timezone` option); aware ones are kept."""
    return time.replace(tzinfo=tz) if time.tzinfo is None else time


PARSERS: dict[str, Callable[[Path, ParseContext], list[ChatMessage]]] = {
    "slack": parse_slack,
    "telegram_json": parse_telegram_json,
    "telegram_html": parse_telegram_html,
    "whatsapp": parse_whatsapp,
    "facebook": parse_facebook,
    "discord": parse_discord,
    "irc": parse_irc,
    "jsonl": parse_jsonl,
}

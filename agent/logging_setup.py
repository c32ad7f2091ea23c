"""Structured logging for the daemon: one line per event.

An event is a name plus fields (`log_event(log, "poll_failed", connector="x",
error="...")`). With `log_format: json` each line is a JSON object
`{"ts", "level", "event", ...fields}`, ready for `jq` or a log shipper; with
`text` it reads `ts LEVEL event key=value ...` (on a terminal the level is
coloured, unless $NO_COLOR is set, and a traceback follows on its own lines).
`auto`, the default, is `text` when the log goes to a terminal (someone runs
`knowd run` by hand) and `json` otherwise (systemd's journal, a pipe, a file).
Records from other libraries (`log.warning("...")`) become the event `log` with
`logger` and `message`.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import IO, Any

_FIELDS = "knowd_fields"
_RESERVED = ("ts", "level", "event")

# Chatty libraries: their per-request / per-job INFO lines are not events of ours.
QUIET_LOGGERS = ("apscheduler", "httpx", "httpcore", "chromadb", "urllib3")


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event (the record's message is the event name)."""
    logger.log(level, event, extra={_FIELDS: fields})


def _record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    fields = getattr(record, _FIELDS, None)
    if fields is not None:
        event, out = str(record.msg), dict(fields)
    else:
        event, out = "log", {"logger": record.name, "message": record.getMessage()}
    if record.exc_info:
        out["exception"] = logging.Formatter().formatException(record.exc_info)
    for key in _RESERVED:  # a field must not overwrite the line's own keys
        if key in out:
            out[f"{key}_"] = out.pop(key)
    return event, out


def _ts(record: logging.LogRecord) -> str:
    t = datetime.fromtimestamp(record.created, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": "info", "event": ..., **fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _record_fields(record)
        line = {"ts": _ts(record), "level": record.levelname.lower(), "event": event, **fields}
        return json.dumps(line, default=str, ensure_ascii=False)


_COLORS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "1;31", "CRITICAL": "1;31"}  # SGR codes


class TextFormatter(logging.Formatter):
    """`ts LEVEL event key=value ...`; values with spaces are JSON-quoted. `color`: the
    level in ANSI colour and the time dimmed (for a terminal). A traceback (the
    `exception` field) is printed as it is, on the lines after the event's."""

    def __init__(self, color: bool = False):
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _record_fields(record)
        trace = fields.pop("exception", None)
        level = f"{record.levelname:<7}"
        ts = _ts(record)
        if self.color:
            ts, level = f"\033[2m{ts}\033[0m", f"\033[{_COLORS.get(record.levelname, '0')}m{level}\033[0m"
        parts = [ts, level, event]
        for k, v in fields.items():
            parts.append(f"{k}={_text_value(v)}")
        line = " ".join(parts)
        return f"{line}\n{trace}" if trace else line


def _plain(x: object) -> bool:
    """A scalar that reads unambiguously inside `k:v,k:v`."""
    if isinstance(x, str):
        return bool(x) and not any(c.isspace() or c in ',:"=' for c in x)
    return isinstance(x, (int, float, bool))


def _text_value(v: object) -> str:
    """A field's value for a person: a string as it is (JSON-quoted when it holds spaces,
    quotes or '='), a flat dict of plain values as `k:v,k:v` (`changes=extract:3,make_false:1`),
    a list of plain values as `a,b`, anything else as compact JSON."""
    if isinstance(v, dict) and v and all(isinstance(k, str) and _plain(k) and _plain(x) for k, x in v.items()):
        return ",".join(f"{k}:{x}" for k, x in v.items())
    if isinstance(v, list) and v and all(_plain(x) for x in v):
        return ",".join(str(x) for x in v)
    text = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    if not text or any(ch.isspace() or ch in "\"=" for ch in text):
        text = json.dumps(text)
    return text


def is_terminal(stream: object) -> bool:
    """Whether `stream` is a terminal (a closed or fd-less stream is not)."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def resolve_format(fmt: str, stream: object) -> str:
    """`auto` -> `text` on a terminal, else `json`; `json` and `text` as they are."""
    if fmt == "auto":
        return "text" if is_terminal(stream) else "json"
    return fmt


def setup_logging(fmt: str = "auto", level: str | int = "info", stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger to one structured handler on `stream` (stderr: journald picks it up).
    `fmt`: json, text, or auto (text on a terminal, json otherwise)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if resolve_format(fmt, stream) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        color = is_terminal(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        handler.setFormatter(TextFormatter(color=color))
    root = logging.getLogger()
    for h in list(root.handlers):  # the CLI's basicConfig handler would print every line twice
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler

"""The daemon's log for people and for machines: `daemon.log_format: auto` (the default) is
readable text on a terminal and JSON lines otherwise; `json` and `text` force one."""
from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logging_setup import log_event, resolve_format, setup_logging

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEXT_LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG) +\w+( \w+=("[^"]*"|[^\s"]+))*$')


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(fmt: str, stream: io.StringIO) -> list[str]:
    setup_logging(fmt, "info", stream)
    log = logging.getLogger("knowd.test")
    log_event(log, "polled", connector="news", documents=8, new=2)
    log_event(log, "poll_failed", logging.WARNING, connector="world", error="HTTP 503 Service Unavailable")
    return stream.getvalue().splitlines()


def test_auto_is_text_on_a_terminal_and_json_otherwise(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    lines = emit("auto", Terminal())
    assert all("\x1b[" in line for line in lines)  # coloured level, dimmed time
    plain = [ANSI.sub("", line) for line in lines]
    assert all(TEXT_LINE.match(line) for line in plain), plain
    assert plain[0].endswith("INFO    polled connector=news documents=8 new=2")
    assert plain[1].endswith('WARNING poll_failed connector=world error="HTTP 503 Service Unavailable"')

    lines = emit("auto", io.StringIO())  # a pipe, a file, the journal
    events = [json.loads(line) for line in lines]
    assert [(e["level"], e["event"]) for e in events] == [("info", "polled"), ("warning", "poll_failed")]
    assert events[0]["new"] == 2


def test_json_and_text_are_kept_whatever_the_stream(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert [json.loads(line)["event"] for line in emit("json", Terminal())] == ["polled", "poll_failed"]
    lines = emit("text", io.StringIO())
    assert all(TEXT_LINE.match(line) and "\x1b" not in line for line in lines), lines  # no colour into a file
    monkeypatch.setenv("NO_COLOR", "1")
    assert all("\x1b" not in line for line in emit("text", Terminal()))
    assert resolve_format("auto", object()) == "json"  # no isatty at all: not a terminal


def test_text_prints_a_traceback_on_its_own_lines():
    stream = io.StringIO()
    setup_logging("text", "info", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("knowd.test").exception("worker failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("ERROR   log logger=knowd.test message=\"worker failed\"")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_code_default_is_auto_as_shipped():
    from agent.config import DEFAULT_CONFIG, DaemonConfig, load_config

    assert DaemonConfig().log_format == "auto" == load_config(DEFAULT_CONFIG).daemon.log_format


@pytest.mark.slow
def test_knowd_run_on_a_terminal_logs_text_lines(tmp_path: Path):
    """`knowd run --once` with its stderr on a pseudo-terminal, as when run by hand."""
    config = tmp_path / "config.yaml"
    config.write_text("data_dir: data\nconnectors: []\ndaemon: {consolidate_at: null}\n")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from agent.cli import main; main()", "--config", str(config), "run", "--once"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=str(ROOT), env=env,
    )
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        assert proc.wait(60) == 0, out.decode(errors="replace")
    text = out.decode()
    assert "\x1b[32mINFO" in text  # coloured
    lines = [ANSI.sub("", line) for line in text.splitlines() if line.strip()]
    assert [line.split()[2] for line in lines] == ["daemon_stopping", "daemon_stopped", "run_once_done"], lines
    assert all(TEXT_LINE.match(line) for line in lines), lines
    assert "clean=true" in lines[1] and not any(line.startswith("{") for line in lines)


def test_text_lines_show_counts_and_lists_as_a_person_reads_them():
    from agent.logging_setup import _text_value

    assert _text_value({"extract": 3, "make_false": 1}) == "extract:3,make_false:1"  # not {\"extract\": 3, ...}
    assert _text_value(["sample-news", "sample-chats"]) == "sample-news,sample-chats"
    assert _text_value("no spaces") == '"no spaces"' and _text_value("plain") == "plain"
    assert _text_value({"a b": 1}) == '"{\\"a b\\":1}"'  # not flat-safe: JSON, quoted
    assert _text_value(None) == "null" and _text_value("") == '""'

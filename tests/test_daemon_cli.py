"""`knowd connectors list|add|test` and `knowd status`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.daemon import add_connector_text
from agent.config import load_config
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
# my knowd config
data_dir: data   # where things go

connectors:
  # news first
  - name: news
    kind: feed
    options: {url: feeds/news.xml}   # relative to this file

# the daemon section
daemon:
  consolidate_at: null
  log_format: text
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "feeds").mkdir()
    shutil.copy(ROOT / "samples" / "feeds" / "northwind-news.xml", tmp_path / "feeds" / "news.xml")
    (tmp_path / "chats").mkdir()
    shutil.copy(ROOT / "samples" / "chatlogs" / "team-ops.jsonl", tmp_path / "chats")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


def knowd(config: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["--config", str(config), *args])
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


# ----------------------------------------------------------------------------- editing config.yaml
def test_add_connector_text_appends_to_a_block_list_keeping_comments():
    out = add_connector_text(CONFIG, {"name": "chats", "kind": "chatlog", "options": {"path": "chats"}})
    assert out.startswith(CONFIG.split("\n# the daemon section")[0])  # everything before is untouched
    assert out.endswith("\n# the daemon section\ndaemon:\n  consolidate_at: null\n  log_format: text\n")
    assert "  - name: chats\n    kind: chatlog\n    options:\n      path: chats\n" in out
    assert [c["name"] for c in yaml.safe_load(out)["connectors"]] == ["news", "chats"]


@pytest.mark.parametrize("before", [
    "data_dir: data\nconnectors: []   # none yet\ndaemon: {}\n",
    "data_dir: data\ndaemon: {}\n",
    "data_dir: data\nconnectors:\n- name: a\n  kind: feed\n  options: {url: x}\ndaemon: {}\n",
    "data_dir: data\nconnectors: [{name: a, kind: feed, options: {url: x}}]\ndaemon: {}",
])
def test_add_connector_text_handles_every_shape_of_the_list(before: str):
    out = add_connector_text(before, {"name": "new", "kind": "feed", "options": {"url": "y"}})
    doc = yaml.safe_load(out)
    assert doc["connectors"][-1] == {"name": "new", "kind": "feed", "options": {"url": "y"}}
    assert doc["data_dir"] == "data" and doc["daemon"] == {}
    if "# none yet" in before:
        assert "connectors: # none yet\n" in out  # the comment stays on its line


def test_add_connector_text_refuses_what_it_cannot_edit_safely():
    with pytest.raises(ConfigError):
        add_connector_text("connectors: [\n  {name: a}\n]\n", {"name": "b", "kind": "feed"})


# ----------------------------------------------------------------------------- connectors add / list
def test_connectors_add_validates_then_appends(config: Path):
    code, out = knowd(config, "connectors", "add", "team", "chatlog", "--interval", "120",
                      "-o", "path=chats", "-o", "gap_minutes=45")
    assert code == 0, out
    text = config.read_text()
    assert text.startswith("# my knowd config\ndata_dir: data   # where things go\n")
    assert "# news first" in text and "# relative to this file" in text and "# the daemon section" in text
    cc = load_config(config).connectors[-1]
    assert (cc.name, cc.kind, cc.interval_s) == ("team", "chatlog", 120)
    assert cc.options == {"path": "chats", "gap_minutes": 45}

    code, out = knowd(config, "connectors", "list")
    assert code == 0 and "news" in out and "team" in out and "120s" in out
    assert "available kinds:" in out and "feed" in out and "chatlog" in out


@pytest.mark.parametrize("args, message", [
    (["news", "feed", "-o", "url=x.xml"], "already configured"),
    (["pigeons", "carrier-pigeon"], "unknown connector kind"),
    (["typo", "feed", "-o", "url=feeds/news.xml", "-o", "colour=red"], "unknown option"),
    (["nourl", "feed"], "missing option"),
    (["slow", "feed", "--interval", "-5", "-o", "url=feeds/news.xml"], "interval"),
    (["broken", "feed", "-o", "url"], "expected key=value"),
])
def test_connectors_add_rejects_bad_input_and_leaves_the_file_alone(config: Path, args: list[str], message: str):
    before = config.read_text()
    code, out = knowd(config, "connectors", "add", *args)
    assert code == 2 and "knowd: error:" in out and message in out, out
    assert config.read_text() == before
    assert not list(config.parent.glob(".config.yaml.*"))  # no temporary file left behind


# ----------------------------------------------------------------------------- connectors test
def test_connectors_test_shows_documents_and_changes_nothing(config: Path):
    code, out = knowd(config, "connectors", "test", "news", "--limit", "3")
    assert code == 0, out
    assert "Maria Lopez named chief executive of Northwind Logistics" in out
    assert "... and 5 more" in out and "8 document(s) would be queued" in out
    from stores.sqlite import Store

    store = Store(config.parent / "data" / "knowd.sqlite")
    try:
        assert store.cursor("news") == {} and store.inbox_counts() == {} and store.list_documents() == []
    finally:
        store.close()
    code, out = knowd(config, "connectors", "test", "nope")
    assert code == 2 and "no connector named 'nope'" in out and "news" in out


# ----------------------------------------------------------------------------- status
def test_status_shows_daemon_connectors_inbox_facts_and_consolidation(config: Path, tmp_path: Path):
    from agent.app import App
    from agent.daemon import Daemon
    from stores.testing import HashEmbedder
    from graphs.testing import FakeLLM

    code, out = knowd(config, "status")
    assert code == 0 and "never run" in out and "none yet" in out and "waiting" in out

    code, _ = knowd(config, "connectors", "add", "gone", "feed", "-o", "url=feeds/missing.xml")
    assert code == 0
    cfg = load_config(config)
    app = App(cfg, llm=FakeLLM(responder=lambda p, s, step: {"facts": []}), embedder=HashEmbedder())
    try:
        result = Daemon(app).run_once()
    finally:
        app.close()
    assert (result["queued"], result["processed"]) == (8, 8)
    run = cfg.data_path / "consolidation" / "runs" / "20240601T030000Z-ab12"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "id": "20240601T030000Z-ab12", "status": "shipped", "started_at": "2024-06-01T03:00:00Z",
        "finished_at": "2024-06-01T03:20:00Z", "reason": "",
    }))

    code, out = knowd(config, "status")
    assert code == 0, out
    assert "not running" in out
    assert "0 queued, 0 failed, 8 done" in out
    assert "consolidation  shipped 2024-06-01 03:20:00Z" in out and "20240601T030000Z-ab12" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "ok" in lines["news"] and " 8 " in lines["news"]
    assert "failing x1" in lines["gone"]
    assert any(line.startswith("  gone: ") and "cannot read file" in line for line in out.splitlines())

    code, out = knowd(config, "status", "--json")
    st = json.loads(out)
    assert st["inbox"] == {"done": 8} and st["daemon"]["running"] is False
    assert {c["name"]: c["items_new"] for c in st["connectors"]} == {"news": 8, "gone": 0}
    assert st["consolidation"]["status"] == "shipped"


# ----------------------------------------------------------------------------- run
def _knowd_process(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from agent.cli import main; main()", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT),
    )


def test_knowd_run_once_logs_json_lines_and_exits(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("data_dir: data\nconnectors: []\ndaemon: {consolidate_at: null}\n")
    r = _knowd_process(config, "run", "--once")  # nothing to poll or ingest: the model is never loaded
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert [e["event"] for e in events] == ["daemon_stopping", "daemon_stopped", "run_once_done"]
    assert events[-1]["queued"] == 0 and events[1]["clean"] is True


def test_knowd_run_refuses_a_second_daemon_on_the_same_data_dir(tmp_path: Path):
    from agent.app import App
    from agent.daemon import Daemon

    config = tmp_path / "config.yaml"
    config.write_text("data_dir: data\ndaemon: {consolidate_at: null, log_format: text}\n")
    app = App(load_config(config))
    first = Daemon(app)
    first.start()
    try:
        r = _knowd_process(config, "run")
    finally:
        first.stop()
        app.close()
    assert r.returncode == 2
    assert f"knowd: error: another knowd daemon is running on {tmp_path / 'data'} (pid {os.getpid()})" in r.stderr

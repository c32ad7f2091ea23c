"""Connector registry: built-ins, entry-point plugins, and the worked example plugin installed for real."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from connectors import Connector, ConnectorError, PollResult, build_connector, list_connector_kinds
from connectors import registry

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugin_example"


def _entry_points(*points: tuple[str, str]):
    found = [EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP) for name, value in points]
    return lambda group: [ep for ep in found if ep.group == group]


class Echo:
    """A minimal connector: one document per poll, counting polls in its state."""

    kind = "echo"

    def __init__(self, name: str, options: dict) -> None:
        self.name = name
        self.options = options

    def poll(self, state: dict) -> PollResult:
        from stores.types import Document

        n = state.get("n", 0) + 1
        return PollResult(documents=[Document(id=f"echo:{n}", text=str(self.options))], state={"n": n})


def not_a_connector(name: str, options: dict) -> object:
    return object()


def test_builtins_are_listed_and_built() -> None:
    assert {"feed", "chatlog"} <= set(list_connector_kinds())
    connector = build_connector("chatlog", "mine", {"path": "."})
    assert isinstance(connector, Connector) and connector.kind == "chatlog" and connector.name == "mine"


def test_builtins_work_without_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    # A source checkout that was never pip-installed has no entry points at all.
    monkeypatch.setattr(registry, "entry_points", _entry_points())
    assert list_connector_kinds() == ["chatlog", "feed"]
    assert build_connector("feed", "f", {"url": "https://example.org/feed"}).kind == "feed"


def test_entry_point_plugins(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(registry, "_reported", set())
    monkeypatch.setattr(registry, "entry_points", _entry_points(
        ("echo", f"{__name__}:Echo"),
        ("feed", f"{__name__}:Echo"),  # may not replace a built-in
        ("broken", "no_such_module_xyz:Connector"),
        ("not_a_connector", f"{__name__}:not_a_connector"),
    ))
    assert list_connector_kinds() == ["broken", "chatlog", "echo", "feed", "not_a_connector"]
    echo = build_connector("echo", "e", {"x": 1})
    first = echo.poll({})
    assert first.documents[0].id == "echo:1" and echo.poll(first.state).documents[0].id == "echo:2"
    assert build_connector("feed", "f", {"url": "https://example.org/"}).kind == "feed"
    assert "ignored: already provided by connectors.feed:FeedConnector" in caplog.text
    with pytest.raises(ConnectorError, match=r"connector kind 'broken': cannot load no_such_module_xyz:Connector"):
        build_connector("broken", "b", {})
    with pytest.raises(ConnectorError, match="lacks name, kind or poll"):
        build_connector("not_a_connector", "n", {})


def test_unknown_kind() -> None:
    with pytest.raises(ConnectorError, match=r"unknown connector kind 'rss'; available: .*feed"):
        build_connector("rss", "x", {})


@pytest.mark.slow
def test_example_plugin_installs_and_polls(tmp_path: Path) -> None:
    """pip-install tests/plugin_example into this venv; a fresh interpreter then finds and polls it."""
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not available in this interpreter")
    # Install from a copy, so the build leaves no egg-info in the source tree.
    source = tmp_path / "plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    install = subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(source)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    try:
        notes = tmp_path / "notes"
        notes.mkdir()
        (notes / "office.txt").write_text("# Office\nThe office moved to Berlin.\n")
        script = textwrap.dedent(f"""
            import json
            from connectors import build_connector, list_connector_kinds
            connector = build_connector("notes", "my-notes", {{"path": {str(notes)!r}}})
            first = connector.poll({{}})
            open({str(notes / "office.txt")!r}, "a").write("Since May.\\n")
            second = connector.poll(first.state)
            print(json.dumps({{"kinds": list_connector_kinds(),
                              "first": [[d.id, d.title, d.text] for d in first.documents],
                              "second": [d.text for d in second.documents],
                              "third": len(connector.poll(second.state).documents)}}))
        """)
        # A fresh interpreter: entry points and the editable install are read at start-up.
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert {"notes", "feed", "chatlog"} <= set(out["kinds"])
        [(doc_id, title, text)] = out["first"]
        assert doc_id.startswith("notes:office.txt@") and title == "Office" and "Berlin" in text
        assert out["second"] == ["# Office\nThe office moved to Berlin.\nSince May."] and out["third"] == 0
    finally:
        subprocess.run([*pip, "uninstall", "-q", "-y", "knowd-notes"], capture_output=True, timeout=300)

"""`knowd` subcommands from plugins: the `knowd.commands` entry-point group (agent/cli/context.py).

knowd-bench (bench/pyproject.toml) registers `knowd bench` there; a broken plugin costs one
warning line and never the other commands; without knowd-bench, `knowd bench` says how to get it.
"""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points

import click
import pytest
from click.testing import CliRunner

from agent.cli import cli, context


@click.command()
def hello() -> None:
    """Say hello (a plugin command for these tests)."""
    click.echo("hello from a plugin")


not_a_command = object()


def _plugins(monkeypatch: pytest.MonkeyPatch, *specs: tuple[str, str]) -> list[str]:
    """Install fake `knowd.commands` entry points (name, "module:attr"); returns the names looked up."""
    eps = [EntryPoint(name=n, value=v, group=context.PLUGIN_GROUP) for n, v in specs]
    scans: list[str] = []

    def fake() -> list[tuple[str, EntryPoint]]:
        scans.append("scan")
        return [(ep.name, ep) for ep in eps]

    monkeypatch.setattr(context, "_plugin_entry_points", fake)
    monkeypatch.setattr(cli, "_plugins", {})  # the group caches what it loaded
    return scans


def test_knowd_bench_is_registered_by_the_knowd_bench_distribution():
    eps = {ep.name: ep for ep in entry_points(group="knowd.commands")}
    assert "bench" in eps, "knowd-bench is not installed: pip install -e ./bench (make install does it)"
    assert eps["bench"].value == "bench.cli:bench" and eps["bench"].dist.name == "knowd-bench"
    assert isinstance(eps["bench"].load(), click.Group)


def test_a_plugin_command_is_listed_and_runs(monkeypatch):
    _plugins(monkeypatch, ("hello", f"{__name__}:hello"))
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "  hello  " in r.output and "  facts  " in r.output
    r = CliRunner().invoke(cli, ["hello"])
    assert r.exit_code == 0 and r.output == "hello from a plugin\n"


def test_a_broken_plugin_is_one_warning_line_and_the_rest_works(monkeypatch):
    _plugins(monkeypatch, ("broken", "no_such_module_for_knowd:cmd"), ("odd", f"{__name__}:not_a_command"),
             ("hello", f"{__name__}:hello"))
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "  hello  " in r.stdout and "  facts  " in r.stdout and "broken" not in r.stdout
    warnings = r.stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("knowd: warning: plugin command 'broken' (no_such_module_for_knowd:cmd) not loaded: "
                                  "ModuleNotFoundError")
    assert warnings[1] == (f"knowd: warning: plugin command 'odd' ({__name__}:not_a_command) not loaded: "
                           "object is not a click command")
    r = CliRunner().invoke(cli, ["hello"])
    assert r.exit_code == 0 and r.stdout == "hello from a plugin\n"
    r = CliRunner().invoke(cli, ["broken"])
    assert r.exit_code == 2 and "No such command 'broken'" in r.stderr


def test_plugins_are_not_looked_up_for_a_built_in_command(monkeypatch):
    scans = _plugins(monkeypatch, ("facts", f"{__name__}:hello"))  # built-ins win a clash
    r = CliRunner().invoke(cli, ["facts", "--help"])
    assert r.exit_code == 0 and "hello from a plugin" not in r.output and scans == []


def test_without_knowd_bench_knowd_bench_says_how_to_get_it(monkeypatch):
    _plugins(monkeypatch)
    r = CliRunner().invoke(cli, ["bench", "run", "stream.jsonl"])
    assert r.exit_code == 2
    assert r.stderr == f"knowd: error: {context.MISSING_PLUGIN['bench']}\n"
    assert "pip install -e ./bench" in r.stderr
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "  facts  " in r.output and "  bench  " not in r.output


def test_import_agent_cli_loads_no_plugin(tmp_path):
    """The plugins are read when a command asks for them, not by `import agent.cli` (the daemon's start)."""
    code = ("import sys, agent.cli\n"
            "sys.exit(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')) or 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_a_broken_knowd_bench_warns_and_says_how_to_get_it(monkeypatch):
    _plugins(monkeypatch, ("bench", "no_such_module_for_knowd:bench"))
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "  facts  " in r.stdout and "  bench  " not in r.stdout
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("knowd: warning: plugin command 'bench'")
    r = CliRunner().invoke(cli, ["bench", "run", "stream.jsonl"])
    assert r.exit_code == 2 and r.stderr.splitlines()[-1] == f"knowd: error: {context.MISSING_PLUGIN['bench']}"

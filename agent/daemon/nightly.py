"""The nightly consolidation: `knowd consolidate` in its own process, so the daemon never
imports torch, transformers or peft. One run at a time; a stopping daemon sends it SIGTERM
(the trainer records the run as interrupted)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from agent.logging_setup import log_event
from connectors.base import one_line

log = logging.getLogger("knowd.daemon")

ROOT = Path(__file__).resolve().parents[2]  # the source checkout: agent/daemon/nightly.py -> repo root


def consolidate_command(config_path: str | Path | None) -> list[str]:
    """The nightly consolidation: `knowd [--config PATH] consolidate` in a fresh interpreter
    (`python -m agent`, which does not depend on the console script being on PATH)."""
    cmd = [sys.executable, "-m", "agent"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    return cmd + ["consolidate"]


class Nightly:
    """Runs the consolidation command and keeps hold of the process while it runs."""

    def __init__(self, cmd: Sequence[str], data_path: Path, stopping: threading.Event):
        self.cmd = list(cmd)
        self.data_path = data_path
        self.proc: subprocess.Popen | None = None  # the run in progress, if any
        self._stopping = stopping
        self._running = threading.Lock()

    def run(self) -> int | None:
        """Run the command and wait; returns its exit code (None if one is already running,
        the daemon is stopping, or it could not start)."""
        if self._stopping.is_set() or not self._running.acquire(blocking=False):
            log_event(log, "consolidation_skipped", reason="stopping" if self._stopping.is_set() else "already running")
            return None
        try:
            out_dir = self.data_path / "consolidation"
            out_dir.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            # a source checkout that was never pip-installed still finds the agent package
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
            t0 = time.monotonic()
            log_event(log, "consolidation_started", command=self.cmd)
            with open(out_dir / "daemon-consolidate.log", "ab") as out:
                # its own session: a Ctrl-C on the terminal reaches the daemon, which forwards SIGTERM
                self.proc = subprocess.Popen(
                    self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=str(ROOT), env=env, start_new_session=True,
                )
                rc = self.proc.wait()
            log_event(
                log, "consolidation_finished", logging.INFO if rc == 0 else logging.WARNING, exit_code=rc,
                seconds=round(time.monotonic() - t0, 1), output=str(out_dir / "daemon-consolidate.log"),
            )
            return rc
        except OSError as e:
            log_event(log, "consolidation_failed", logging.ERROR, error=one_line(e))
            return None
        finally:
            self.proc = None
            self._running.release()

    def terminate(self) -> subprocess.Popen | None:
        """Send SIGTERM to the run in progress (the trainer marks it interrupted); returns it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        return proc

    @staticmethod
    def reap(proc: subprocess.Popen | None, timeout: float) -> None:
        """Wait for a terminated run, then kill it if it is still there."""
        if proc is None:
            return
        try:
            proc.wait(max(0.1, timeout))
        except subprocess.TimeoutExpired:
            proc.kill()

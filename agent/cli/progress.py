"""Progress bars for long CLI work (`knowd ingest` of many documents, `knowd reindex`).

A tqdm bar on stderr, only when stderr is a terminal: piped or redirected output, the
daemon and tests get the plain lines they always got. Lines printed while a bar is shown
go through `Progress.echo`, which lifts the bar, prints, and puts it back, so output and
bar never interleave.
"""
from __future__ import annotations

import sys
from types import TracebackType
from typing import IO, Any

import click

from agent.logging_setup import is_terminal


def bar_stream() -> IO[str]:
    """Where bars are drawn (a seam for tests: CliRunner replaces sys.stderr)."""
    return sys.stderr


class Progress:
    """`with Progress(total, "ingest", "doc") as p: ... p.update(); p.echo(line)`. No bar
    (everything a no-op but `echo`) off a terminal or for fewer than `min_total` items."""

    def __init__(self, total: int | None, desc: str, unit: str, *, min_total: int = 2):
        stream = bar_stream()
        self._bar: Any = None
        if is_terminal(stream) and (total is None or total >= min_total):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True)
        self.min_total = min_total

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_total(self, total: int) -> None:
        """The total once it is known (reindex learns it from the store)."""
        if self._bar is not None:
            if total < self.min_total:
                self.close()
                return
            self._bar.total = total
            self._bar.refresh()

    def echo(self, message: str, err: bool = False) -> None:
        """click.echo, with the bar lifted while the line is written."""
        if self._bar is None:
            click.echo(message, err=err)
            return
        with self._bar.external_write_mode():
            click.echo(message, err=err)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

"""knowd CLI commands: `chat` (a terminal REPL) and `serve` (the HTTP API).

The REPL streams each answer as the model writes it and lists the cited facts, with
their sources, under it. Commands: /asof TIME, /facts [QUERY], /history QUERY,
/retrieval on|off, /forget, /help, /quit. With retrieval off (or `--closed-book`)
the model answers from its weights alone: what the nightly adapter learned.

Tests (and embedders) hand the commands a ready App with `using_app(app)`: the
group callback owns `ctx.obj`, so this is the seam for a FakeLLM.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING

import click

from agent.cli.context import get_app
from agent.errors import KnowdError

if TYPE_CHECKING:
    from agent.app import App
    from graphs.time_intent import TimeIntent

_injected: ContextVar[App | None] = ContextVar("knowd_cli_app", default=None)

HELP = """commands:
  /asof TIME      answer as of a date or period (2021-05-01, "March 2022", 2022); /asof now resets
  /facts [QUERY]  facts true now (or at /asof), optionally those related to QUERY
  /history QUERY  facts related to QUERY with their true/false history, stale ones included
  /retrieval on|off  off: closed book, the model answers from its weights alone (the nightly adapter)
  /forget         start a new conversation (follow-up questions stop referring back)
  /help           this list
  /quit           leave (also Ctrl-D)"""


@contextmanager
def using_app(app: App) -> Iterator[App]:
    """Make `knowd chat` / `knowd serve` use `app` instead of building one from config."""
    token = _injected.set(app)
    try:
        yield app
    finally:
        _injected.reset(token)


def _get_app(ctx: click.Context) -> App:
    return _injected.get() or get_app(ctx)


class Repl:
    """The `knowd chat` loop: reads lines from `stdin`, writes to click's output."""

    def __init__(
        self, app: App, session: str = "terminal", as_of: str | None = None, stdin: IO[str] | None = None,
        retrieval: bool | None = None,
    ):
        from graphs.chat import ChatAgent

        self.app = app
        self.agent = ChatAgent(app, app.cfg.chat)
        self.session = session
        self.stdin = stdin or click.get_text_stream("stdin")
        self.default_time: TimeIntent | None = None
        self._n_session = 0
        self.retrieval = app.cfg.chat.retrieval if retrieval is None else retrieval
        if as_of:
            self.set_as_of(as_of)

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        click.echo("knowd chat: ask about what knowd knows; /help lists commands, /quit leaves.")
        while True:
            click.echo(click.style("you> ", bold=True), nl=False)
            line = self.stdin.readline()
            if not line:  # EOF (Ctrl-D)
                click.echo()
                return
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        return
                else:
                    self.ask(line)
            except KnowdError as e:
                click.echo(f"error: {e}", err=True)

    def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        name, _, arg = line.partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/help":
            click.echo(HELP)
        elif name == "/asof":
            if arg:
                self.set_as_of(arg)
            click.echo(f"answering as of {self._when()}")
        elif name == "/facts":
            self.facts(arg or None)
        elif name == "/history":
            if not arg:
                click.echo("usage: /history QUERY (e.g. /history CEO of Northwind)")
            else:
                self.history(arg)
        elif name == "/retrieval":
            if arg.lower() in ("on", "off"):
                self.retrieval = arg.lower() == "on"
            elif arg:
                click.echo("usage: /retrieval on|off")
                return True
            click.echo("retrieval on: answers from the facts" if self.retrieval
                       else "retrieval off: closed book, answers from the model's weights alone")
        elif name == "/forget":
            self._n_session += 1
            click.echo("new conversation")
        else:
            click.echo(f"unknown command {name}; /help lists commands")
        return True

    # ------------------------------------------------------------------ actions
    def set_as_of(self, text: str) -> None:
        from graphs.time_intent import parse_when
        from stores.types import utcnow

        try:
            t = parse_when(text, utcnow())
        except ValueError as e:
            raise KnowdError(str(e)) from None
        self.default_time = None if t.mode == "now" else t

    def _when(self) -> str:
        return self.default_time.label.removeprefix("as of ") if self.default_time else "now"

    def ask(self, question: str) -> None:
        from agent.views import citation_lines
        from graphs.prompts.chat import CITE

        stop = threading.Event()
        shown: list[str] = []

        def show(tok: str) -> None:
            shown.append(tok)
            click.echo(tok, nl=False)

        click.echo(click.style("knowd> ", bold=True), nl=False)
        try:
            r = self.agent.ask(
                question, session=f"{self.session}#{self._n_session}", default_time=self.default_time,
                on_token=show, should_stop=stop.is_set, retrieval=self.retrieval,
            )
        except KeyboardInterrupt:
            stop.set()  # the generating thread stops at its next token and frees the model
            click.echo("\n(interrupted)")
            return
        click.echo()
        # the citation check re-pointed or removed markers already on screen: show the result
        if [m.group(1) for m in CITE.finditer("".join(shown))] != [m.group(1) for m in CITE.finditer(r.answer)]:
            click.echo(click.style(f"  (citations checked: {r.answer})", dim=True))
        if not self.retrieval:
            click.echo(click.style(f"  (closed book: {self._weights()})", dim=True))
        elif r.intent.mode == "as_of":
            click.echo(click.style(f"  ({r.intent.label})", dim=True))
        elif r.intent.mode == "history":
            click.echo(click.style("  (history: facts no longer true included)", dim=True))
        for ln in citation_lines(r.citations):
            click.echo(click.style("  " + ln, dim=True))

    def _weights(self) -> str:
        """Which weights answered the last question: the live adapter or the base model."""
        llm = self.app.__dict__.get("llm")
        adapter = getattr(llm, "adapter", None)
        if getattr(llm, "adapter_active", False) and adapter:
            return f"answered by the base model with adapter {adapter.get('version', '?')}"
        if adapter:
            return f"answered by the base model (adapter {adapter.get('version', '?')} does not cover this question)"
        return "answered by the base model (no adapter is live)"

    def facts(self, query: str | None, limit: int = 30) -> None:
        from agent.service import facts as facts_service
        from agent.views import fact_line

        at = self.default_time
        if query:
            found = facts_service.search(self.app, query, at=at, limit=limit)
        else:
            found = facts_service.list_facts(self.app, at=at, limit=100_000)[-limit:]
        if not found:
            click.echo(f"no facts true {'now' if at is None else 'as of ' + self._when()}" + (" match" if query else ""))
        for v in found:
            click.echo(fact_line(v))

    def history(self, query: str, limit: int = 10) -> None:
        from agent.service import facts as facts_service
        from agent.views import fact_line, history_lines

        found = facts_service.search(self.app, query, include_stale=True, limit=limit, with_docs=True)
        if not found:
            click.echo("no facts match")
        for v in found:
            click.echo(fact_line(v))
            for line in history_lines(v, with_documents=True):
                click.echo(line)


@click.command()
@click.option("--as-of", "as_of", help="answer as of this date or period (like /asof)")
@click.option("--session", default="terminal", show_default=True, help="conversation name")
@click.option("--closed-book", is_flag=True, help="answer from the model's weights alone, no retrieval (like /retrieval off)")
@click.pass_context
def chat(ctx: click.Context, as_of: str | None, session: str, closed_book: bool) -> None:
    """Chat with what knowd knows: answers stream, cited facts are listed under them."""
    Repl(_get_app(ctx), session=session, as_of=as_of, retrieval=False if closed_book else None).run()


@click.command()
@click.option("--host", help="address to listen on (default: server.host, 127.0.0.1)")
@click.option("--port", type=int, help="port (default: server.port; 0 = any free port)")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (OpenAI-compatible /v1/chat/completions, facts, status) until Ctrl-C."""
    from agent.serve import serve_forever

    app = _get_app(ctx)
    model = app.cfg.server.model_name

    def ready(url: str) -> None:
        click.echo(f"knowd: serving {url}/v1 (model {model!r}); Ctrl-C stops", err=True)

    serve_forever(app, host, port, on_ready=ready)


COMMANDS = [chat, serve]

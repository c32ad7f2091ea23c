"""knowd CLI commands over the fact store: ingest, facts, ops, revert, reindex."""
from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from agent.cli.context import get_app
from agent.cli.progress import Progress
from agent.errors import InputError, KnowdError


def _time(value: str | None) -> datetime | None:
    from agent.inputs import parse_time

    return parse_time(value) if value else None


def _as_of(value: str | None) -> datetime | None:
    """An --as-of value: an ISO date/time, or a phrase as the chat's /asof takes it
    ("March 2022", "2021", "end of 2020": a period means its end); now/None = None."""
    from graphs.time_intent import parse_when
    from stores.types import utcnow

    if not value:
        return None
    try:
        return _time(value)
    except InputError:
        pass
    try:
        intent = parse_when(value, utcnow())
    except ValueError as e:
        raise InputError(str(e)) from None
    return intent.end if intent.mode == "as_of" else None


# ----------------------------------------------------------------------------- ingest
@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--time", "when", help="time the documents' facts hold from (ISO); default: their own time, else now")
@click.option("--force", is_flag=True, help="re-ingest documents already ingested")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], when: str | None, force: bool) -> None:
    """Ingest text/Markdown files or a JSONL of documents (PATH or - for stdin).

    On a terminal, a progress bar (on stderr) follows a run of several documents.
    """
    from agent.inputs import read_documents
    from graphs.ingest import ingest_document

    app = get_app(ctx)
    t = _time(when)
    failed = 0
    docs = []
    for p in paths:  # read and validate every input before ingesting any: no half-ingested batch
        if p == "-":
            data, name = sys.stdin.buffer.read(), "-"
        else:
            path = Path(p)
            if path.is_dir():
                raise InputError(f"{p}: is a directory; give files (e.g. {p}/*.md)")
            try:
                data, name = path.read_bytes(), str(path)
            except OSError as e:
                raise InputError(f"{p}: {e.strerror}") from None
        docs += list(read_documents(data, name, max_bytes=app.cfg.ingest.max_document_bytes, time=t))
    with Progress(len(docs), "ingest", "doc") as bar:
        for doc in docs:
            r = ingest_document(doc, app.ingest_context(), force=force)
            if r.status == "failed":
                failed += 1
                bar.echo(f"{doc.id}: failed: {r.error} (see: knowd ops --doc {doc.id})", err=True)
            elif r.status == "skipped":
                bar.echo(f"{doc.id}: already ingested")
            else:
                changes = ", ".join(f"{k} {v}" for k, v in r.counts.items() if v)
                bar.echo(f"{doc.id}: {changes or 'no changes'} ({r.calls} model calls, {r.llm_seconds:.1f}s)")
            bar.update()
    if failed:
        ctx.exit(1)


# ----------------------------------------------------------------------------- facts
@click.command()
@click.option("--query", "-q", help="only facts related to this text (hybrid search: dense + BM25)")
@click.option("--as-of", "as_of", help='facts true at this time (2022-06-14, "March 2022", 2021)')
@click.option("--history", is_flag=True, help="show each fact's true/false history")
@click.option("--all", "all_", is_flag=True, help="include facts that are no longer true")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines output (the API's fact objects)")
@click.pass_context
def facts(ctx: click.Context, query: str | None, as_of: str | None, history: bool, all_: bool, limit: int, as_json: bool) -> None:
    """List facts true now (or at --as-of), optionally related to --query."""
    from agent.service import facts as facts_service
    from agent.views import fact_json, fact_line, history_lines
    from graphs.time_intent import TimeIntent

    app = get_app(ctx)
    t = _as_of(as_of)
    at = TimeIntent("as_of", t, t) if t else None
    if query:
        found = facts_service.search(app, query, at=at, include_stale=all_, limit=limit)
    else:
        found = facts_service.list_facts(app, at=at, include_stale=all_, limit=limit)
    for v in found:
        if as_json:
            click.echo(json.dumps(fact_json(v)))
            continue
        click.echo(fact_line(v))
        if history:
            for line in history_lines(v):
                click.echo(line)
    if not found and not as_json:
        click.echo("no facts" + (" match" if query else ""), err=True)


@click.command()
@click.option("--doc", "doc_id", required=True, help="document id")
@click.option("--prompts", is_flag=True, help="show the model's full input for each decision")
@click.pass_context
def ops(ctx: click.Context, doc_id: str, prompts: bool) -> None:
    """What a document changed, and why (the model's output behind each change)."""
    store = get_app(ctx).store
    st = store.document_status(doc_id)
    if st is None:
        raise KnowdError(f"no document {doc_id!r} (knowd facts --history shows document ids)")
    click.echo(f"document {doc_id}: {st['status']}" + (f" ({st['error']})" if st["error"] else "") + f", attempts {st['attempts']}")
    for o in store.operations(doc_id):
        mark = (" [reverted]" if o.reverted else "") + (f" (by {o.actor})" if o.actor else "")
        arrow = f"{o.before or ''} -> {o.after or ''}" if (o.before or o.after) else ""
        click.echo(f"  #{o.id} {o.op:<10} {o.fact_id or '':<18} {arrow}{mark}")
        if o.detail:
            click.echo(f"      {o.detail}")
        if o.model_io_ref is not None:
            call = store.model_call(o.model_io_ref)
            if call:
                click.echo(f"      model[{call['step']}] -> {(call['output'] or '')[:300]}")
                if prompts:
                    click.echo("      prompt:\n        " + call["prompt"].replace("\n", "\n        "))


@click.command()
@click.option("--doc", "doc_id", required=True, help="document id")
@click.pass_context
def revert(ctx: click.Context, doc_id: str) -> None:
    """Undo one document's changes, restoring each fact's previous history."""
    from agent.security import LOCAL
    from agent.service import documents

    n = documents.revert(get_app(ctx), doc_id, LOCAL)
    click.echo(f"reverted {n} history entries from {doc_id}")


@click.command()
@click.pass_context
def reindex(ctx: click.Context) -> None:
    """Rebuild the vector index from the fact store (a progress bar on a terminal)."""
    app = get_app(ctx)
    with Progress(None, "reindex", "fact") as bar:

        def progress(done: int, total: int) -> None:
            if done == 0:
                bar.set_total(total)
            bar.update(done)

        n = app.index.rebuild(app.store, progress=progress)
    click.echo(f"indexed {n} facts")


COMMANDS = [ingest, facts, ops, revert, reindex]

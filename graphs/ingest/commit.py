"""The one commit both ingest graphs end in: a document and its changes, all or nothing.

Each revision says what the document does as a list of `Change`s (the keys graph from
the keyed library's changes, the ERASE graph from the model's decisions, rewrites and
new facts); `commit` writes the document, the model calls, and for each change its
operation and history entry in ONE SQLite transaction, then brings the vector index and
the index of names up to date. Nothing is written before it, so a process killed at any
point leaves the store as it was before the document (tests/test_ingest_crash.py); the
index catches up from the store's queue on the next sync.

`record_failure` is the other write of ingest: a document that failed, with the model
output that made it fail.
"""
from __future__ import annotations

import logging
import sqlite3
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from graphs.ingest.context import IngestContext
from graphs.llm import Completion
from stores.sqlite import Store
from stores.types import Document, FactKey, Operation

log = logging.getLogger("graphs.ingest")

# Operations that add no history entry; `no_change` is counted and writes nothing at all.
_OPERATION_ONLY = frozenset({"retire", "reject"})
# A repeated fact's history says it was reinforced; its operation says how it was found.
_HISTORY_OP = {"duplicate": "reinforce"}


def _call_id() -> str:
    return f"call-{uuid.uuid4().hex[:10]}"


@dataclass
class CallRecord:
    """A model call made while ingesting; logged to `model_calls` at commit. Changes name
    the call behind them by `id`, which commit maps to the stored row."""

    step: str
    prompt: str
    output: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str
    id: str = field(default_factory=_call_id)


def record(c: Completion, error: str | None = None) -> CallRecord:
    """A completion as a call record, with a fresh id."""
    return CallRecord(c.step, c.prompt, c.text, error, c.prompt_tokens, c.completion_tokens, c.seconds, c.model)


@dataclass
class Change:
    """One thing a document does to the store, as commit writes it.

    `op` is the operation logged: a new fact (`fact_id` None: extract, rewrite, derive),
    a change to a held one (reinforce, make_false, duplicate), or one without a history
    entry (retire, reject); `no_change` is only counted."""

    op: str
    fact_id: str | None = None  # the fact it touches; None for a new fact (or none, a reject)
    text: str | None = None  # a new fact's text
    subject: str = ""
    relation: str = ""
    object: str = ""
    keys: list[FactKey] | None = None  # the new fact's keys (revision by keys)
    supersedes: str | None = None  # the fact a new one replaces
    before: str | None = None  # the operation's before / after texts
    after: str | None = None
    time: datetime | None = None  # when it holds; None: the document's time
    call: str | None = None  # the id of the model call behind it
    detail: str | None = None  # why, for `knowd ops`
    reinforce_if_current: bool = False  # a new fact a current one already says reinforces that one instead
    names: tuple[str, ...] = ()  # full names it teaches the name index


def commit(
    ctx: IngestContext, doc: Document, changes: list[Change], calls: Iterable[CallRecord] = (),
    *, counted: Iterable[str] = (),
) -> dict[str, int]:
    """Write the document as done, its model calls and its changes in one transaction;
    then sync the vector index and the name index. Returns how many operations of each
    kind it wrote (`counted`: kinds reported even when none)."""
    store = ctx.store
    counts = dict.fromkeys(counted, 0)
    with store.transaction() as c:
        store.put_document(doc, status="done")
        refs = {r.id: _log_call(store, c, doc, r) for r in calls}
        for ch in changes:
            op = _write(store, c, doc, ch, refs)
            counts[op] = counts.get(op, 0) + 1
    ctx.index.sync(store)
    if any(ch.names for ch in changes):
        names = ctx.name_index()
        for ch in changes:
            for n in ch.names:
                names.add(n)
    return counts


def _log_call(store: Store, c: sqlite3.Connection, doc: Document, r: CallRecord) -> int:
    return store.log_model_call(
        c, doc_id=doc.id, step=r.step, model=r.model, prompt=r.prompt, output=r.output, error=r.error,
        prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, seconds=r.seconds,
    )


def _write(store: Store, c: sqlite3.Connection, doc: Document, ch: Change, refs: dict[str, int]) -> str:
    """One change: its operation, then its history entry. Returns the operation written."""
    t = ch.time or doc.time
    ref = refs.get(ch.call) if ch.call is not None else None

    def log_op(op: str, fact_id: str | None, before: str | None, after: str | None, detail: str | None) -> int:
        return store.log_operation(c, Operation(doc.id, fact_id, op, before, after, t, model_io_ref=ref, detail=detail))

    if ch.op == "no_change":
        return ch.op
    if ch.op in _OPERATION_ONLY:
        log_op(ch.op, ch.fact_id, ch.before, ch.after, ch.detail)
        return ch.op
    if ch.fact_id is not None:  # a held fact: reinforced, repeated or made false
        op_id = log_op(ch.op, ch.fact_id, ch.before, ch.after, ch.detail)
        store.add_history(c, ch.fact_id, t, ch.op != "make_false", doc.id, _HISTORY_OP.get(ch.op, ch.op), op_id)
        return ch.op
    text = ch.text or ""
    if ch.reinforce_if_current:  # read inside the transaction: it sees this document's earlier changes
        same = store.find_by_norm(text)
        if same is not None and same.is_current:
            op_id = log_op("duplicate", same.id, text, same.text, f"rewrite of {ch.supersedes}")
            store.add_history(c, same.id, t, True, doc.id, _HISTORY_OP["duplicate"], op_id)
            return "duplicate"
    fid = store.insert_fact(c, text, ch.subject, ch.relation, ch.object, supersedes=ch.supersedes, keys=ch.keys)
    op_id = log_op(ch.op, fid, ch.before, ch.after, ch.detail)
    store.add_history(c, fid, t, True, doc.id, ch.op, op_id)
    return ch.op


def record_failure(store: Store, doc: Document, e: Exception) -> None:
    """Keep the document (status failed), the model's output and a reject operation."""
    log.warning("ingest of %s failed: %s", doc.id, e)
    comp: Completion | None = getattr(e, "completion", None)
    with store.transaction() as c:
        st = store.document_status(doc.id)
        if st is None or st["status"] != "done":
            store.put_document(doc, status="failed")
        ref = None
        if comp is not None:
            ref = _log_call(store, c, doc, record(comp, str(e)))
        store.log_operation(
            c, Operation(doc.id, None, "reject", None, None, doc.time, model_io_ref=ref, detail=f"{type(e).__name__}: {e}"[:2000])
        )
        if st is None or st["status"] != "done":
            store.set_document_status(doc.id, "failed", str(e)[:2000])
    log.debug("%s", traceback.format_exc())

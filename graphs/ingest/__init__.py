"""The ingest graphs: one document in, one atomic commit out.

Two ways to revise the store, chosen by `ingest.revision`, one graph module each:

* `keys` (the default): `keys_graph.py`, propose -> revise -> commit, over the keys
  engine in graphs/keyed/ (a parse and a relation lexicon, no model call);
* `model` (ERASE as published): `erase_graph.py`, split -> (extract -> retrieve ->
  classify -> rewrite -> dedupe)* per chunk -> commit, the model deciding.

Both end in `commit.py`: the document, every history entry, every operation and every
model call in ONE SQLite transaction, then the vector index (and the name index).
Nothing is written before it, so a process killed at any step leaves the store as it
was before the document. `ingest_document` runs the configured graph and records a
failure (`commit.record_failure`) instead of raising it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphs.ingest import erase_graph, keys_graph
from graphs.ingest.commit import CallRecord, Change, record_failure
from graphs.ingest.context import IngestContext
from graphs.ingest.erase_graph import chunk_text
from graphs.llm import BackendError, ModelOutputError
from stores.errors import InputError
from stores.types import Document

__all__ = ["CallRecord", "Change", "IngestContext", "IngestResult", "chunk_text", "erase_graph", "ingest_document", "keys_graph"]


@dataclass
class IngestResult:
    doc_id: str
    status: str  # done | skipped | failed
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    transient: bool = False  # failed, and a retry may pass (the backend was down); else it fails the same way


def ingest_document(doc: Document, ctx: IngestContext, *, force: bool = False) -> IngestResult:
    """Run the configured revision's graph on one document. Model and backend failures do
    not raise: they are recorded (document status `failed`, the model output, a `reject`
    operation) and returned with `transient` set from the error's kind, so the caller can
    retry what may pass later. Input errors (no text) raise InputError."""
    st = ctx.store.document_status(doc.id)
    if st and not force and st["status"] == "done" and st["content_hash"] == doc.content_hash:
        return IngestResult(doc.id, "skipped")
    if not doc.text or not doc.text.strip():
        raise InputError(f"document {doc.id}: empty text")
    if ctx.cfg.revision == "keys":
        graph, state = keys_graph.graph, keys_graph.KeysState(doc=doc)
    else:
        graph, state = erase_graph.graph, erase_graph.EraseState(doc=doc)
    # recursion: ~6 node visits per chunk
    limit = 25 + 12 * max(1, len(doc.text) // max(1, ctx.cfg.chunk_tokens * 3))
    try:
        out = graph.invoke(state, context=ctx, config={"recursion_limit": limit})
    except (ModelOutputError, BackendError) as e:
        record_failure(ctx.store, doc, e)
        return IngestResult(doc.id, "failed", error=str(e), transient=bool(getattr(e, "transient", False)))
    calls: list[CallRecord] = out.get("calls", [])
    return IngestResult(
        doc.id, "done", out["summary"], None, len(calls), sum(c.prompt_tokens for c in calls),
        sum(c.completion_tokens for c in calls), sum(c.seconds for c in calls),
    )

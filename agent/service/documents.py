"""Documents as every face handles them: push into the inbox, revert, retry, what one changed.

Pushing writes to the durable inbox and returns once it is committed; the daemon's worker
ingests from there. Revert and retry are a person's actions: the operations log records
them with the token name behind them (`actor`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.inputs import FieldError, document_from_object
from agent.service.errors import InvalidField, TooLarge
from stores.errors import Conflict, NotFound
from stores.types import Document, Operation

if TYPE_CHECKING:
    from agent.app import App

STATUSES = ("pending", "done", "failed", "reverted")


# ----------------------------------------------------------------------------- push
def parse_documents(body: Any, max_document_bytes: int) -> list[Document]:
    """The documents of a push: one document object or a non-empty array of them, each read
    by `agent.inputs.document_from_object` (the JSONL schema of `knowd ingest`). All are
    checked before any is queued. InvalidField names the bad field (`documents[3].title`);
    a text over `ingest.max_document_bytes` is TooLarge."""
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list):
        raise InvalidField("request body must be a document object or an array of document objects",
                           code="invalid_document")
    if not items:
        raise InvalidField("request body is an empty array: no documents", code="invalid_document")
    docs = []
    for i, obj in enumerate(items):
        where = "document" if single else f"documents[{i}]"
        try:
            doc = document_from_object(obj, where, source="api")
        except FieldError as e:
            raise InvalidField(str(e), f"{where}.{e.field}" if e.field else where, "invalid_document") from None
        if doc is None:  # a benchmark stream's question line: not something to push
            raise InvalidField(f'{where}: \'type\' must be "document" (only documents can be posted)',
                               f"{where}.type", "invalid_document")
        size = len(doc.text.encode("utf-8"))
        if size > max_document_bytes:
            raise TooLarge(f"{where}: text of {size:,} bytes is over the {max_document_bytes:,}-byte limit "
                           "(ingest.max_document_bytes); split it", f"{where}.text", "document_too_large")
        docs.append(doc)
    return docs


def push(app: App, docs: list[Document], actor: str | None, via: str = "api") -> list[bool]:
    """Write `docs` to the durable inbox in one transaction, committed (synchronous=FULL)
    before this returns; per document, whether it was new. The inbox is unique on
    (id, content hash): the same document again is a duplicate and not queued; the same
    id with another title or text is a new version, queued like an edited feed entry.
    Each queued document gets a `push` operation naming `actor`."""
    store = app.store
    with store.transaction() as c:
        new = [store.enqueue(c, d, "api") for d in docs]
        for d, n in zip(docs, new):
            if n:
                store.log_operation(c, Operation(d.id, None, "push", None, None, d.time,
                                                 detail=f"queued via {via}", actor=actor))
    d = app.daemon
    if d is not None and any(new):
        d.wake()
    return new


# ----------------------------------------------------------------------------- revert, retry
def revert(app: App, doc_id: str, actor: str | None) -> int:
    """Undo a document's changes in the store and bring the vector index up to date; the
    number of history entries reverted. Embeds (the index sync): call it on the model thread
    from a server. NotFound for an unknown document, Conflict if it is already reverted."""
    st = app.store.document_status(doc_id)
    if st is None:
        raise NotFound(f"no document {doc_id!r}")
    if st["status"] == "reverted":
        raise Conflict(f"{doc_id} is already reverted")
    try:
        n = app.store.revert_document(doc_id, actor=actor)
    except KeyError:
        raise NotFound(f"no document {doc_id!r}") from None
    app.index.sync(app.store)
    return n


def retry(app: App, item_id: int, actor: str | None) -> str:
    """Queue a failed inbox item again; a message saying what happens next."""
    store = app.store
    item = store.inbox_item(item_id) if 0 < item_id < 2**63 else None  # SQLite integers are 64-bit
    if item is None:
        raise NotFound(f"no inbox item {item_id}")
    if item["status"] != "failed" or not store.retry_inbox_item(item_id):
        raise Conflict(f"inbox item {item_id} is {item['status']}, not failed")
    store.log_action(actor, "retry", f"inbox item {item_id} queued again", doc_id=item["doc_id"])
    d = app.daemon
    if d is not None:
        d.wake()
        return f"{item['doc_id']} queued again; the daemon is ingesting it"
    return f"{item['doc_id']} queued again; the daemon (knowd run) ingests it"


# ----------------------------------------------------------------------------- reading
@dataclass
class OperationRow:
    op: Operation
    call: dict[str, Any] | None


@dataclass
class DocumentReport:
    """What a document changed and why: its status, its operations with the model calls
    behind them, the texts of the facts it touched, and calls no operation points to."""

    status: dict[str, Any]
    document: Document | None
    operations: list[OperationRow]
    fact_texts: dict[str, str] = field(default_factory=dict)
    other_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_revert(self) -> bool:
        return self.status["status"] != "reverted" and any(
            not r.op.reverted and r.op.fact_id for r in self.operations)


def report(app: App, doc_id: str) -> DocumentReport:
    store = app.store
    st = store.document_status(doc_id)
    if st is None:
        raise NotFound(f"no document {doc_id!r}")
    calls = {c["id"]: c for c in store.model_calls(doc_id)}
    rows = []
    for o in store.operations(doc_id):
        call = calls.get(o.model_io_ref) if o.model_io_ref is not None else None
        if call is None and o.model_io_ref is not None:
            call = store.model_call(o.model_io_ref)
        rows.append(OperationRow(o, call))
    used = {r.call["id"] for r in rows if r.call}
    fact_ids = list(dict.fromkeys(r.op.fact_id for r in rows if r.op.fact_id))
    texts = {f.id: f.text for f in store.get_facts(fact_ids)}
    return DocumentReport(st, store.get_document(doc_id), rows, texts,
                          [c for i, c in calls.items() if i not in used])


def listing(app: App, status: str | None = None, limit: int = 300) -> dict[str, Any]:
    """Documents (newest first, optionally in one status), inbox counts, failed inbox items."""
    if status and status not in STATUSES:
        raise InvalidField(f"status must be one of {', '.join(STATUSES)} (not {status[:40]!r})", "status")
    store = app.store
    return {"docs": store.list_documents(status or None, limit=limit), "inbox": store.inbox_counts(),
            "failed": store.inbox_items("failed", 200), "max_attempts": app.cfg.ingest.max_attempts}


def parse_item(raw: str) -> int:
    if not raw.isdigit():
        raise InvalidField(f"'item' must be an inbox item number, not {raw!r}", "item")
    return int(raw)


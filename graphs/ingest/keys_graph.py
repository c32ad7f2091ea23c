"""Ingest by keys (`ingest.revision: keys`, the default): no model call.

    propose -> the document's own clauses, made to stand alone, each with the key of the
               question it answers, read from a dependency parse (graphs/keyed/)
    revise  -> by keys: a new value of a one-value slot makes the old fact false, an
               ended statement ends its fact, a repeated value reinforces, a changed
               employer re-examines what depended on it and derives what follows
               (graphs/keyed/slots.py)
    commit  -> the changes in one transaction, then the vector index and the names
               (graphs/ingest/commit.py, shared with the ERASE graph)

The bundled 270M model cannot judge contradiction (../shared/probes/): asked whether a
news item leaves a fact "still true" it says yes to everything. Keys make that decision
without it.

State, nodes and wiring follow langchain-ai/memory-agent: a dataclass state, module-level
node functions returning partial updates, and the graph built at the bottom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graphs import keyed
from graphs.ingest.commit import Change
from graphs.ingest.commit import commit as commit_changes
from graphs.ingest.context import IngestContext
from graphs.keyed import Proposition
from stores.sqlite import Store
from stores.types import Document


@dataclass
class KeysState:
    doc: Document
    propositions: list[Proposition] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # what revision decided, as commit writes it
    summary: dict[str, int] = field(default_factory=dict)  # operations written, by kind


# ----------------------------------------------------------------------------- nodes
def propose(state: KeysState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """The document's propositions and their keys (a parse, no model call)."""
    doc = state.doc
    return {"propositions": keyed.propose(doc.text, doc.title, runtime.context.name_index())}


def revise(state: KeysState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """What the propositions do to the facts held at the document's time."""
    store, t = runtime.context.store, state.doc.time
    found = keyed.revise(state.propositions, keyed.StoreFacts(store, t), t)
    return {"changes": [_as_change(ch, state.propositions, store) for ch in found]}


def commit(state: KeysState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """The changes in one transaction; then the vector index and the names."""
    return {"summary": commit_changes(runtime.context, state.doc, state.changes)}


# ----------------------------------------------------------------------------- helpers
def _as_change(ch: keyed.Change, props: list[Proposition], store: Store) -> Change:
    """A keyed change as commit writes it: the fact's text before and after, the key's
    names for the name index, and why."""
    k = ch.key
    names = tuple(n for n in (k.subject, k.object) if n[:1].isupper()) if k else ()
    detail = _change_detail(ch, props)
    if ch.fact_id is None:  # a new fact: extracted, rewritten or derived
        old = store.get_fact(ch.supersedes) if ch.supersedes else None
        return Change(
            ch.op, None, ch.text or "", k.subject if k else "", k.relation if k else "", k.object if k else "",
            keys=k.stored() if k else None, supersedes=ch.supersedes, before=old.text if old else None,
            after=ch.text, time=ch.time, detail=detail, names=names,
        )
    f = store.get_fact(ch.fact_id)
    text = f.text if f else None
    after = text if ch.op != "make_false" else None
    return Change(ch.op, ch.fact_id, before=text, after=after, time=ch.time, detail=detail, names=names)


def _change_detail(ch: keyed.Change, props: list[Proposition]) -> str:
    """Why, for `knowd ops`: the rule, the key it used and the sentence it came from."""
    k = ch.key
    key = f"[{k.subject} | {k.relation} | {k.object}{' | ended' if k and not k.holds else ''}]" if k else "[no key]"
    src = props[ch.prop_index].sentence if ch.prop_index is not None and ch.prop_index < len(props) else ""
    parts = [ch.detail or ch.op, f"key {key}"]
    if src:
        parts.append(f"from: {src}")
    return "; ".join(parts)[:2000]


# ----------------------------------------------------------------------------- wiring
builder = StateGraph(KeysState, context_schema=IngestContext)
builder.add_node("propose", propose)
builder.add_node("revise", revise)
builder.add_node("commit", commit)
builder.add_edge(START, "propose")
builder.add_edge("propose", "revise")
builder.add_edge("revise", "commit")
builder.add_edge("commit", END)
graph = builder.compile()
graph.name = "knowd-ingest-keys"

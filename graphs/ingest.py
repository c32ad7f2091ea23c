"""The ingest graphs: one document in, one atomic commit out.

Two ways to revise the store, chosen by `ingest.revision`:

* `keys` (the default; graphs/propositions.py, graphs/keys.py, graphs/slots.py):

      propose -> the document's own clauses, made to stand alone, each with the key of
                 the question it answers, read from a dependency parse (no model call)
      revise  -> by keys: a new value of a one-value slot makes the old fact false, an
                 ended statement ends its fact, a repeated value reinforces, a changed
                 employer re-examines what depended on it and derives what follows
      commit  -> as below

  The bundled 270M model cannot judge contradiction (../shared/probes/): asked whether
  a news item leaves a fact "still true" it says yes to everything. Keys make that
  decision without it.

* `model` (ERASE as published, for models that can judge contradiction). For each chunk:

    extract  -> new atomic facts (subject, relation, object) from the chunk
    retrieve -> candidate facts: top-k by the chunk's embedding, top-k per new fact,
                facts sharing a subject/entity, and a second hop from those
    classify -> reinforce / no_change / make_false for every candidate (batched)
    rewrite  -> each false fact becomes a fact true now, or is retired
    dedupe   -> new facts that repeat a current fact reinforce it instead

then `commit` writes the document, every history entry, every operation and
every model call in ONE SQLite transaction, and afterwards pushes the touched
facts to the vector index. Nothing is written before `commit`, so a process
killed at any step leaves the store as it was before the document.

State, nodes and wiring follow langchain-ai/memory-agent: a dataclass state
with reducers, module-level node functions returning partial updates, and the
graph built at the bottom of the module.
"""
from __future__ import annotations

import logging
import operator
import re
import traceback
from dataclasses import dataclass, field
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graphs import guards, propositions, slots
from graphs.config import IngestConfig
from graphs.llm import LLM, BackendError, Completion, ModelOutputError, complete_json
from graphs.names import NameIndex
from graphs.prompts import classify as classify_prompt
from graphs.prompts import extract as extract_prompt
from graphs.prompts import rewrite as rewrite_prompt
from graphs.prompts.extract import ExtractedFact
from graphs.sentences import sentences
from stores.errors import InputError
from stores.sqlite import Store, normalise_fact
from stores.types import Document, Fact, Operation
from stores.vector import FactIndex

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- state
@dataclass
class CallRecord:
    """A model call made while ingesting; logged to `model_calls` at commit."""

    step: str
    prompt: str
    output: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str


@dataclass
class Candidate:
    fact: Fact
    why: str  # which retrieval route found it
    score: float = 0.0


@dataclass
class Decision:
    fact_id: str
    fact_text: str
    label: str  # reinforce | no_change | make_false
    call: int  # index into state.calls


@dataclass
class Rewrite:
    fact_id: str
    new: ExtractedFact | None  # None = retire
    call: int


@dataclass
class NewFact:
    fact: ExtractedFact
    call: int
    duplicate_of: str | None = None  # id of a current fact it repeats


@dataclass
class Reject:
    step: str
    detail: str
    call: int | None


@dataclass
class IngestContext:
    """Run-time dependencies handed to every node (LangGraph `context`)."""

    store: Store
    index: FactIndex
    llm: LLM
    cfg: IngestConfig
    names: NameIndex | None = None  # the store's full names, loaded on first use (keyed revision)

    def name_index(self) -> NameIndex:
        if self.names is None:
            self.names = NameIndex(self.store.key_names())
        return self.names


@dataclass
class IngestState:
    doc: Document
    chunks: list[str] = field(default_factory=list)
    i: int = 0  # the chunk being processed
    extracted: list[ExtractedFact] = field(default_factory=list)  # this chunk's, before dedupe
    extracted_calls: list[int] = field(default_factory=list)  # the call each extracted fact came from
    candidates: list[Candidate] = field(default_factory=list)  # this chunk's
    decisions: Annotated[list[Decision], operator.add] = field(default_factory=list)
    rewrites: Annotated[list[Rewrite], operator.add] = field(default_factory=list)
    new_facts: Annotated[list[NewFact], operator.add] = field(default_factory=list)
    calls: Annotated[list[CallRecord], operator.add] = field(default_factory=list)
    rejects: Annotated[list[Reject], operator.add] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    # keyed revision
    propositions: list[propositions.Proposition] = field(default_factory=list)
    changes: list[slots.Change] = field(default_factory=list)


def _record(c: Completion, error: str | None = None) -> CallRecord:
    return CallRecord(c.step, c.prompt, c.text, error, c.prompt_tokens, c.completion_tokens, c.seconds, c.model)


def _date(doc: Document) -> str:
    return doc.time.date().isoformat()


# ----------------------------------------------------------------------------- chunking
def chunk_text(text: str, max_tokens: int, count_tokens) -> list[str]:  # noqa: ANN001
    """Split on paragraphs, then lines, then sentences, then words, packing pieces up to
    `max_tokens`. Line breaks are kept (a chat log has one message per line)."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        lines = [" ".join(ln.split()) for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        if count_tokens("\n".join(lines)) <= max_tokens:
            pieces.append("\n".join(lines))
            continue
        for sent in (s for ln in lines for s in (
            [ln] if count_tokens(ln) <= max_tokens else re.split(r"(?<=[.!?])\s+", ln)
        )):
            if count_tokens(sent) <= max_tokens:
                pieces.append(sent)
            else:  # a run-on "sentence": cut by words
                words = sent.split()
                step = max(1, max_tokens // 2)
                pieces.extend(" ".join(words[j : j + step]) for j in range(0, len(words), step))
    chunks: list[str] = []
    cur: list[str] = []
    cur_n = 0
    for p in pieces:
        n = count_tokens(p)
        if cur and cur_n + n > max_tokens:
            chunks.append("\n".join(cur))
            cur, cur_n = [], 0
        cur.append(p)
        cur_n += n
    if cur:
        chunks.append("\n".join(cur))
    return chunks


# ----------------------------------------------------------------------------- nodes
def split(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    ctx = runtime.context
    chunks = chunk_text(state.doc.text, ctx.cfg.chunk_tokens, ctx.llm.count_tokens)
    if not chunks:
        raise InputError(f"document {state.doc.id}: no text to ingest")
    return {"chunks": chunks, "i": 0}


def extract(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    ctx = runtime.context
    chunk = state.chunks[state.i]
    if ctx.cfg.extract_unit == "sentence":
        units = [(s, extract_prompt.build_sentence(s), min(ctx.cfg.max_new_facts, extract_prompt.SENTENCE_MAX_FACTS))
                 for s in sentences(chunk)]
        source_head = ""
    else:
        units = [(chunk, extract_prompt.build(chunk, _date(state.doc), state.doc.title), ctx.cfg.max_new_facts)]
        source_head = f"{state.doc.title or ''}\n"
    facts: list[ExtractedFact] = []
    fact_calls: list[int] = []
    calls: list[CallRecord] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    for text, prompt, n in units:
        ref = len(state.calls) + len(calls)
        obj, c = _json_call(ctx.llm, prompt, extract_prompt.schema(n), "extract", extract_prompt.max_tokens(n))
        calls.append(_record(c))
        try:
            got, bad = extract_prompt.parse(obj, source=f"{source_head}{text}")
        except ValueError as e:
            raise _output_error("extract", str(e), c) from None
        rejects += [Reject("extract", b, ref) for b in bad]
        for f in got:
            if f.text.lower() not in seen:
                seen.add(f.text.lower())
                facts.append(f)
                fact_calls.append(ref)
    return {
        "extracted": facts,
        "extracted_calls": fact_calls,
        "calls": calls,
        "rejects": rejects,
    }


def retrieve(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """Candidates from four routes; the paper's multi-hop misses were retrieval misses."""
    ctx, cfg = runtime.context, runtime.context.cfg
    chunk = state.chunks[state.i]
    found: dict[str, tuple[str, float]] = {}

    def add(hits: list[tuple[str, float]], why: str) -> None:
        for fid, score in hits:
            found.setdefault(fid, (why, score))

    add(ctx.index.query(chunk, cfg.top_k_doc), "document")
    if cfg.top_k_per_fact and state.extracted:
        for hits in ctx.index.query_many([f.text for f in state.extracted], cfg.top_k_per_fact):
            add(hits, "new-fact")
    entities = {e for f in state.extracted for e in (f.subject, f.object)}
    if cfg.same_subject and entities:
        add([(f.id, 0.0) for f in ctx.store.facts_by_subject(sorted(entities)) if f.is_current], "same-entity")
    if cfg.second_hop and found:
        first = ctx.store.get_facts(list(found))
        hop = {e for f in first for e in (f.subject, f.object)} - entities
        if hop:
            add([(f.id, 0.0) for f in ctx.store.facts_by_subject(sorted(hop)) if f.is_current], "second-hop")
    already = {d.fact_id for d in state.decisions if d.label == "make_false"}
    ids = [fid for fid in found if fid not in already][: cfg.max_candidates]
    facts = {f.id: f for f in ctx.store.get_facts(ids)}
    cands = [Candidate(facts[i], found[i][0], found[i][1]) for i in ids if i in facts and facts[i].is_current]
    return {"candidates": cands}


def classify(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    ctx = runtime.context
    chunk = state.chunks[state.i]
    decisions: list[Decision] = []
    calls: list[CallRecord] = []
    rejects: list[Reject] = []
    b = ctx.cfg.classify_batch
    entities = {e for f in state.extracted for e in (f.subject, f.object)}
    for start in range(0, len(state.candidates), b):
        batch = state.candidates[start : start + b]
        texts = [c.fact.text for c in batch]
        ref = len(state.calls) + len(calls)
        prompt = classify_prompt.build(chunk, _date(state.doc), texts)
        obj, c = _json_call(ctx.llm, prompt, classify_prompt.schema(len(batch)), "classify", 12 + 10 * len(batch))
        try:
            labels, bad = classify_prompt.parse(obj, len(batch))
        except ValueError as e:
            raise _output_error("classify", str(e), c) from None
        calls.append(_record(c))
        rejects += [Reject("classify", m, ref) for m in bad]
        for k, cand in enumerate(batch, 1):
            label = labels.get(k, "no_change")
            old = (cand.fact.subject, cand.fact.relation, cand.fact.object)
            if label != "make_false" and any(guards.negates((f.subject, f.relation, f.object), old) for f in state.extracted):
                rejects.append(Reject("classify", f"label {label!r} for {cand.fact.id} overridden: the document negates it", ref))
                label = "make_false"
            elif label == "make_false" and not guards.linked(old, chunk, entities):
                rejects.append(Reject("classify", f"make_false for {cand.fact.id} ignored: it shares no entity with the document", ref))
                label = "no_change"
            decisions.append(Decision(cand.fact.id, cand.fact.text, label, ref))
    return {"decisions": decisions, "calls": calls, "rejects": rejects}


def rewrite(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    ctx = runtime.context
    chunk = state.chunks[state.i]
    chunk_ids = {c.fact.id for c in state.candidates}
    mine = [d for d in state.decisions if d.fact_id in chunk_ids]
    false_ids = {d.fact_id for d in mine if d.label == "make_false"}
    done = {r.fact_id for r in state.rewrites}
    still_true = [c.fact.text for c in state.candidates if c.fact.id not in false_ids]
    still_true += [f.text for f in state.extracted]
    rewrites: list[Rewrite] = []
    calls: list[CallRecord] = []
    for d in mine:
        if d.label != "make_false" or d.fact_id in done:
            continue
        ref = len(state.calls) + len(calls)
        prompt = rewrite_prompt.build(chunk, _date(state.doc), d.fact_text, still_true[:12])
        obj, c = _json_call(ctx.llm, prompt, rewrite_prompt.schema(), "rewrite", 80)
        try:
            new = rewrite_prompt.parse(obj, d.fact_text)
        except ValueError as e:
            raise _output_error("rewrite", str(e), c) from None
        calls.append(_record(c))
        rewrites.append(Rewrite(d.fact_id, new, ref))
        done.add(d.fact_id)
    return {"rewrites": rewrites, "calls": calls}


def dedupe(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """New facts that repeat a current fact (exactly, or by embedding similarity) become
    reinforcements of it; repeats within the document are dropped."""
    ctx = runtime.context
    pending = {normalise_fact(n.fact.text) for n in state.new_facts}
    falsified = {normalise_fact(d.fact_text) for d in state.decisions if d.label == "make_false"}
    out: list[NewFact] = []
    rejects: list[Reject] = []
    sims = ctx.index.query_many([f.text for f in state.extracted], 1) if state.extracted else []
    for f, hits, call in zip(state.extracted, sims, state.extracted_calls, strict=True):
        key = normalise_fact(f.text)
        if key in pending:
            continue
        if key in falsified:
            rejects.append(Reject("extract", f"'{f.text}' contradicts this document's own make_false", call))
            continue
        pending.add(key)
        same = ctx.store.find_by_norm(f.text)
        dup = same.id if same is not None and same.is_current else None
        if dup is None and hits and hits[0][1] >= ctx.cfg.duplicate_similarity:
            dup = hits[0][0]
        out.append(NewFact(f, call, dup))
    return {"new_facts": out, "rejects": rejects}


def next_chunk(state: IngestState) -> dict[str, Any]:
    return {"i": state.i + 1, "extracted": [], "extracted_calls": [], "candidates": []}


def commit(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """Everything the document changed, in one transaction; then the vector index."""
    ctx = runtime.context
    store, doc, t = ctx.store, state.doc, state.doc.time
    counts = {k: 0 for k in ("reinforce", "no_change", "make_false", "rewrite", "retire", "extract", "duplicate", "reject")}
    final: dict[str, Decision] = {}
    for d in state.decisions:  # per fact: make_false wins over reinforce over no_change
        prev = final.get(d.fact_id)
        rank = {"no_change": 0, "reinforce": 1, "make_false": 2}
        if prev is None or rank[d.label] > rank[prev.label]:
            final[d.fact_id] = d
    rewrites = {r.fact_id: r for r in state.rewrites}

    with store.transaction() as c:
        store.put_document(doc, status="done")
        refs = [
            store.log_model_call(
                c, doc_id=doc.id, step=r.step, model=r.model, prompt=r.prompt, output=r.output,
                error=r.error, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                seconds=r.seconds,
            )
            for r in state.calls
        ]

        def op(name: str, fact_id: str | None, before: str | None, after: str | None, call: int | None, detail: str | None = None) -> int:
            counts[name] = counts.get(name, 0) + 1
            return store.log_operation(
                c, Operation(doc.id, fact_id, name, before, after, t, model_io_ref=refs[call] if call is not None and call >= 0 else None, detail=detail)
            )

        for d in final.values():
            if d.label == "no_change":
                counts["no_change"] += 1
            elif d.label == "reinforce":
                store.add_history(c, d.fact_id, t, True, doc.id, "reinforce", op("reinforce", d.fact_id, d.fact_text, d.fact_text, d.call))
            else:
                store.add_history(c, d.fact_id, t, False, doc.id, "make_false", op("make_false", d.fact_id, d.fact_text, None, d.call))
                r = rewrites.get(d.fact_id)
                if r is None:
                    continue
                if r.new is None:
                    op("retire", d.fact_id, d.fact_text, None, r.call)
                    continue
                same = store.find_by_norm(r.new.text)
                if same is not None and same.is_current:  # the rewrite is already known: reinforce it
                    store.add_history(c, same.id, t, True, doc.id, "reinforce", op("duplicate", same.id, r.new.text, same.text, r.call, f"rewrite of {d.fact_id}"))
                    continue
                fid = store.insert_fact(c, r.new.text, r.new.subject, r.new.relation, r.new.object, supersedes=d.fact_id)
                store.add_history(c, fid, t, True, doc.id, "rewrite", op("rewrite", fid, d.fact_text, r.new.text, r.call, f"rewritten from {d.fact_id}"))
        for n in state.new_facts:
            if n.duplicate_of:
                store.add_history(c, n.duplicate_of, t, True, doc.id, "reinforce", op("duplicate", n.duplicate_of, n.fact.text, None, n.call))
                continue
            fid = store.insert_fact(c, n.fact.text, n.fact.subject, n.fact.relation, n.fact.object)
            store.add_history(c, fid, t, True, doc.id, "extract", op("extract", fid, None, n.fact.text, n.call))
        for rj in state.rejects:
            op("reject", None, None, None, rj.call, f"{rj.step}: {rj.detail}")
    ctx.index.sync(store)
    return {"summary": counts}


# ----------------------------------------------------------------------------- keyed revision nodes
def propose(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """The document's propositions and their keys (a parse, no model call)."""
    doc = state.doc
    props = propositions.extract(doc.text, doc.title, runtime.context.name_index())
    return {"propositions": props}


def revise(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """What the propositions do to the facts held at the document's time (graphs/slots.py)."""
    t = state.doc.time
    rev = slots.Revision(slots.StoreFacts(runtime.context.store, t), t)
    for i, p in enumerate(state.propositions):
        rev.apply(p.text, p.key, i)
    rev.finish()
    return {"changes": rev.changes}


def commit_keyed(state: IngestState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """The keyed revision's changes in one transaction; then the vector index and the names."""
    ctx = runtime.context
    store, doc = ctx.store, state.doc
    counts: dict[str, int] = {}
    with store.transaction() as c:
        store.put_document(doc, status="done")
        for ch in state.changes:
            counts[ch.op] = counts.get(ch.op, 0) + 1
            detail = _change_detail(ch, state.propositions)
            if ch.fact_id is None:  # a new fact: extracted, rewritten or derived
                k = ch.key
                fid = store.insert_fact(
                    c, ch.text or "", k.subject if k else "", k.relation if k else "", k.object if k else "",
                    supersedes=ch.supersedes, keys=k.stored() if k else None,
                )
                before = store.get_fact(ch.supersedes).text if ch.supersedes and store.get_fact(ch.supersedes) else None
                op_id = store.log_operation(c, Operation(doc.id, fid, ch.op, before, ch.text, ch.time, detail=detail))
                store.add_history(c, fid, ch.time, True, doc.id, ch.op, op_id)
            else:
                f = store.get_fact(ch.fact_id)
                text = f.text if f else None
                truth = ch.op != "make_false"
                op_id = store.log_operation(c, Operation(doc.id, ch.fact_id, ch.op, text, text if truth else None, ch.time, detail=detail))
                store.add_history(c, ch.fact_id, ch.time, truth, doc.id, ch.op, op_id)
    ctx.index.sync(store)
    names = ctx.name_index()
    for ch in state.changes:
        if ch.key is not None:
            for n in (ch.key.subject, ch.key.object):
                if n[:1].isupper():
                    names.add(n)
    return {"summary": counts}


def _change_detail(ch: slots.Change, props: list[propositions.Proposition]) -> str:
    """Why, for `knowd ops`: the rule, the key it used and the sentence it came from."""
    k = ch.key
    key = f"[{k.subject} | {k.relation} | {k.object}{' | ended' if k and not k.holds else ''}]" if k else "[no key]"
    src = props[ch.prop_index].sentence if ch.prop_index is not None and ch.prop_index < len(props) else ""
    parts = [ch.detail or ch.op, f"key {key}"]
    if src:
        parts.append(f"from: {src}")
    return "; ".join(parts)[:2000]


def _revision(state: IngestState, runtime: Runtime[IngestContext]) -> str:
    return "propose" if runtime.context.cfg.revision == "keys" else "split"


# ----------------------------------------------------------------------------- helpers
def _json_call(llm: LLM, prompt: str, schema: dict, step: str, max_tokens: int) -> tuple[Any, Completion]:
    return complete_json(llm, prompt, schema, step=step, max_tokens=max_tokens)


def _output_error(step: str, msg: str, c: Completion) -> ModelOutputError:
    e = ModelOutputError(f"{step}: {msg}", raw=c.text, step=step)
    e.completion = c  # type: ignore[attr-defined]
    return e


def _after_dedupe(state: IngestState) -> str:
    return "next_chunk" if state.i + 1 < len(state.chunks) else "commit"


# ----------------------------------------------------------------------------- wiring
builder = StateGraph(IngestState, context_schema=IngestContext)
builder.add_node("propose", propose)
builder.add_node("revise", revise)
builder.add_node("commit_keyed", commit_keyed)
builder.add_node("split", split)
builder.add_node("extract", extract)
builder.add_node("retrieve", retrieve)
builder.add_node("classify", classify)
builder.add_node("rewrite", rewrite)
builder.add_node("dedupe", dedupe)
builder.add_node("next_chunk", next_chunk)
builder.add_node("commit", commit)
builder.add_conditional_edges(START, _revision, ["propose", "split"])
builder.add_edge("propose", "revise")
builder.add_edge("revise", "commit_keyed")
builder.add_edge("commit_keyed", END)
builder.add_edge("split", "extract")
builder.add_edge("extract", "retrieve")
builder.add_edge("retrieve", "classify")
builder.add_edge("classify", "rewrite")
builder.add_edge("rewrite", "dedupe")
builder.add_conditional_edges("dedupe", _after_dedupe, ["next_chunk", "commit"])
builder.add_edge("next_chunk", "extract")
builder.add_edge("commit", END)
graph = builder.compile()
graph.name = "knowd-ingest"


# ----------------------------------------------------------------------------- runner
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


def ingest_document(doc: Document, ctx: IngestContext, *, force: bool = False) -> IngestResult:
    """Run the graph on one document. Model and backend failures do not raise: they are
    recorded (document status `failed`, the model output, a `reject` operation) and
    returned, so the caller can retry later. Input errors (no text) raise InputError."""
    st = ctx.store.document_status(doc.id)
    if st and not force and st["status"] == "done" and st["content_hash"] == doc.content_hash:
        return IngestResult(doc.id, "skipped")
    if not doc.text or not doc.text.strip():
        raise InputError(f"document {doc.id}: empty text")
    # recursion: ~6 node visits per chunk
    limit = 25 + 12 * max(1, len(doc.text) // max(1, ctx.cfg.chunk_tokens * 3))
    try:
        out = graph.invoke(IngestState(doc=doc), context=ctx, config={"recursion_limit": limit})
    except (ModelOutputError, BackendError) as e:
        _record_failure(ctx.store, doc, e)
        return IngestResult(doc.id, "failed", error=str(e))
    calls: list[CallRecord] = out["calls"]
    return IngestResult(
        doc.id, "done", out["summary"], None, len(calls), sum(c.prompt_tokens for c in calls),
        sum(c.completion_tokens for c in calls), sum(c.seconds for c in calls),
    )


def _record_failure(store: Store, doc: Document, e: Exception) -> None:
    """Keep the document (status failed), the model's output and a reject operation."""
    log.warning("ingest of %s failed: %s", doc.id, e)
    comp: Completion | None = getattr(e, "completion", None)
    with store.transaction() as c:
        st = store.document_status(doc.id)
        if st is None or st["status"] != "done":
            store.put_document(doc, status="failed")
        ref = None
        if comp is not None:
            ref = store.log_model_call(
                c, doc_id=doc.id, step=comp.step, model=comp.model, prompt=comp.prompt, output=comp.text,
                error=str(e), prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens,
                seconds=comp.seconds,
            )
        store.log_operation(
            c, Operation(doc.id, None, "reject", None, None, doc.time, model_io_ref=ref, detail=f"{type(e).__name__}: {e}"[:2000])
        )
        if st is None or st["status"] != "done":
            store.set_document_status(doc.id, "failed", str(e)[:2000])
    log.debug("%s", traceback.format_exc())

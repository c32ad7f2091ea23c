"""Ingest by the model (`ingest.revision: model`): ERASE as published, for models that can
judge contradiction. For each chunk of the document:

    split    -> chunks of `ingest.chunk_tokens` (paragraphs, lines, sentences, words)
    extract  -> new atomic facts (subject, relation, object) from the chunk
    retrieve -> candidate facts: top-k by the chunk's embedding, top-k per new fact,
                facts sharing a subject/entity, and a second hop from those
    classify -> reinforce / no_change / make_false for every candidate (batched), backed
                by two deterministic checks (graphs/ingest/guards.py)
    rewrite  -> each false fact becomes a fact true now, or is retired
    dedupe   -> new facts that repeat a current fact reinforce it instead
    next_chunk, then back to extract while chunks remain

then `commit` turns the decisions, rewrites, new facts and rejects into commit's list of
changes (`to_changes`) and writes them with every model call in one transaction
(graphs/ingest/commit.py, shared with the keys graph). Each model call is a `CallRecord`
with an id; a decision, rewrite, new fact or reject names the call it came from by that id.

State, nodes and wiring follow langchain-ai/memory-agent: a dataclass state with reducers,
module-level node functions returning partial updates, and the graph built at the bottom.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graphs.ingest import guards
from graphs.ingest.commit import CallRecord, Change, record
from graphs.ingest.commit import commit as commit_changes
from graphs.ingest.context import IngestContext
from graphs.llm import LLM, Completion, ModelOutputError, complete_json
from graphs.prompts import classify as classify_prompt
from graphs.prompts import extract as extract_prompt
from graphs.prompts import rewrite as rewrite_prompt
from graphs.prompts.extract import ExtractedFact
from graphs.sentences import sentences
from stores.errors import InputError
from stores.sqlite import normalise_fact
from stores.types import Document, Fact

# The operations an ERASE ingest reports in `IngestResult.counts`, zero or not.
COUNTED = ("reinforce", "no_change", "make_false", "rewrite", "retire", "extract", "duplicate", "reject")


# ----------------------------------------------------------------------------- state
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
    call: str  # the id of the classify call


@dataclass
class Rewrite:
    fact_id: str
    new: ExtractedFact | None  # None = retire
    call: str


@dataclass
class NewFact:
    fact: ExtractedFact
    call: str
    duplicate_of: str | None = None  # id of a current fact it repeats


@dataclass
class Reject:
    step: str
    detail: str
    call: str | None


@dataclass
class EraseState:
    doc: Document
    chunks: list[str] = field(default_factory=list)
    i: int = 0  # the chunk being processed
    extracted: list[ExtractedFact] = field(default_factory=list)  # this chunk's, before dedupe
    extracted_calls: list[str] = field(default_factory=list)  # the call each extracted fact came from
    candidates: list[Candidate] = field(default_factory=list)  # this chunk's
    decisions: Annotated[list[Decision], operator.add] = field(default_factory=list)
    rewrites: Annotated[list[Rewrite], operator.add] = field(default_factory=list)
    new_facts: Annotated[list[NewFact], operator.add] = field(default_factory=list)
    calls: Annotated[list[CallRecord], operator.add] = field(default_factory=list)
    rejects: Annotated[list[Reject], operator.add] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)  # operations written, by kind


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
def split(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """The document in chunks of at most `ingest.chunk_tokens` tokens."""
    ctx = runtime.context
    chunks = chunk_text(state.doc.text, ctx.cfg.chunk_tokens, ctx.llm.count_tokens)
    if not chunks:
        raise InputError(f"document {state.doc.id}: no text to ingest")
    return {"chunks": chunks, "i": 0}


def extract(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """New facts from this chunk: one call for the chunk, or one per sentence
    (`ingest.extract_unit: sentence`); ungrounded or malformed facts become rejects."""
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
    fact_calls: list[str] = []
    calls: list[CallRecord] = []
    rejects: list[Reject] = []
    seen: set[str] = set()
    for text, prompt, n in units:
        obj, c = _json_call(ctx.llm, prompt, extract_prompt.schema(n), "extract", extract_prompt.max_tokens(n))
        rec = record(c)
        ref = rec.id
        calls.append(rec)
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


def retrieve(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
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


def classify(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """reinforce / no_change / make_false for every candidate, in batches; the guards
    override a label the document contradicts outright or that touches nothing in it."""
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
        prompt = classify_prompt.build(chunk, _date(state.doc), texts)
        obj, c = _json_call(ctx.llm, prompt, classify_prompt.schema(len(batch)), "classify", 12 + 10 * len(batch))
        try:
            labels, bad = classify_prompt.parse(obj, len(batch))
        except ValueError as e:
            raise _output_error("classify", str(e), c) from None
        rec = record(c)
        ref = rec.id
        calls.append(rec)
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


def rewrite(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """Each fact this chunk made false, rewritten as a fact true now (or retired), given
    the facts still true."""
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
        prompt = rewrite_prompt.build(chunk, _date(state.doc), d.fact_text, still_true[:12])
        obj, c = _json_call(ctx.llm, prompt, rewrite_prompt.schema(), "rewrite", 80)
        try:
            new = rewrite_prompt.parse(obj, d.fact_text)
        except ValueError as e:
            raise _output_error("rewrite", str(e), c) from None
        rec = record(c)
        calls.append(rec)
        rewrites.append(Rewrite(d.fact_id, new, rec.id))
        done.add(d.fact_id)
    return {"rewrites": rewrites, "calls": calls}


def dedupe(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
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


def next_chunk(state: EraseState) -> dict[str, Any]:
    """On to the next chunk: this chunk's extractions and candidates are done with."""
    return {"i": state.i + 1, "extracted": [], "extracted_calls": [], "candidates": []}


def commit(state: EraseState, runtime: Runtime[IngestContext]) -> dict[str, Any]:
    """Everything the document changed, with every model call, in one transaction; then
    the vector index."""
    summary = commit_changes(runtime.context, state.doc, to_changes(state), state.calls, counted=COUNTED)
    return {"summary": summary}


# ----------------------------------------------------------------------------- decisions -> changes
_RANK = {"no_change": 0, "reinforce": 1, "make_false": 2}


def to_changes(state: EraseState) -> list[Change]:
    """The decisions (one per fact: make_false wins over reinforce over no_change), each
    false fact's rewrite right after it, the new facts, then the rejects: the list of
    changes commit writes, in that order."""
    final: dict[str, Decision] = {}
    for d in state.decisions:
        prev = final.get(d.fact_id)
        if prev is None or _RANK[d.label] > _RANK[prev.label]:
            final[d.fact_id] = d
    rewrites = {r.fact_id: r for r in state.rewrites}
    out: list[Change] = []
    for d in final.values():
        if d.label == "no_change":
            out.append(Change("no_change", d.fact_id))
        elif d.label == "reinforce":
            out.append(Change("reinforce", d.fact_id, before=d.fact_text, after=d.fact_text, call=d.call))
        else:
            out.append(Change("make_false", d.fact_id, before=d.fact_text, call=d.call))
            if d.fact_id in rewrites:
                out.append(_rewritten(d, rewrites[d.fact_id]))
    for n in state.new_facts:
        f = n.fact
        if n.duplicate_of:
            out.append(Change("duplicate", n.duplicate_of, before=f.text, call=n.call))
        else:
            out.append(Change("extract", None, f.text, f.subject, f.relation, f.object, after=f.text, call=n.call))
    out += [Change("reject", call=rj.call, detail=f"{rj.step}: {rj.detail}") for rj in state.rejects]
    return out


def _rewritten(d: Decision, r: Rewrite) -> Change:
    """A false fact's rewrite: a new fact superseding it (or, if a current fact already
    says it, a reinforcement of that one), or the old fact retired."""
    if r.new is None:
        return Change("retire", d.fact_id, before=d.fact_text, call=r.call)
    f = r.new
    return Change(
        "rewrite", None, f.text, f.subject, f.relation, f.object, supersedes=d.fact_id, before=d.fact_text,
        after=f.text, call=r.call, detail=f"rewritten from {d.fact_id}", reinforce_if_current=True,
    )


# ----------------------------------------------------------------------------- helpers
def _json_call(llm: LLM, prompt: str, schema: dict, step: str, max_tokens: int) -> tuple[Any, Completion]:
    return complete_json(llm, prompt, schema, step=step, max_tokens=max_tokens)


def _output_error(step: str, msg: str, c: Completion) -> ModelOutputError:
    e = ModelOutputError(f"{step}: {msg}", raw=c.text, step=step)
    e.completion = c  # type: ignore[attr-defined]
    return e


def _after_dedupe(state: EraseState) -> str:
    return "next_chunk" if state.i + 1 < len(state.chunks) else "commit"


# ----------------------------------------------------------------------------- wiring
builder = StateGraph(EraseState, context_schema=IngestContext)
builder.add_node("split", split)
builder.add_node("extract", extract)
builder.add_node("retrieve", retrieve)
builder.add_node("classify", classify)
builder.add_node("rewrite", rewrite)
builder.add_node("dedupe", dedupe)
builder.add_node("next_chunk", next_chunk)
builder.add_node("commit", commit)
builder.add_edge(START, "split")
builder.add_edge("split", "extract")
builder.add_edge("extract", "retrieve")
builder.add_edge("retrieve", "classify")
builder.add_edge("classify", "rewrite")
builder.add_edge("rewrite", "dedupe")
builder.add_conditional_edges("dedupe", _after_dedupe, ["next_chunk", "commit"])
builder.add_edge("next_chunk", "extract")
builder.add_edge("commit", END)
graph = builder.compile()
graph.name = "knowd-ingest-erase"

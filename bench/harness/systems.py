"""The systems compared by the benchmark. All use the same LLM object, the same embedder,
and answer through graphs/answer.py (graphs/prompts/answer.py's prompt), so prompts are identical where they overlap.

| system       | reads documents by                          | answers from                                   |
|--------------|---------------------------------------------|------------------------------------------------|
| knowd        | the ingest graph as configured (`ingest.revision`: keys, the default, or model) | the store's structure first (graphs/lookup.py, as the chat agent), else the model over facts true at the question time (hybrid search) |
| knowd-erase  | the ingest graph with `revision: model` (ERASE as published: the model extracts, classifies, rewrites) | the same as knowd |
| fact-rag     | the same extraction as knowd, no revision   | every fact ever extracted (hybrid search)      |
| rag          | chunks of half the context, embedded        | chunks (the same hybrid search)                |
| long-context | keeping them                                | the most recent documents that fit the context |
| weights      | knowd's ingest; the store consolidated into a LoRA adapter at checkpoints | nothing in the prompt: the model with the adapter, routed |
| knowd+weights| the same                                    | as knowd, with the consolidated model answering |

Retrieval budget: every retrieving system gets at most `k` items and at most
`budget_tokens` tokens of context (default: half the context window).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from agent.config import Config
from bench.harness.stream import Question
from graphs import answer as answering
from graphs import ingest as ingest_graph
from graphs import lookup
from graphs.ingest import erase_graph
from graphs.keyed import propositions
from graphs.keyed.names import NameIndex
from graphs.llm import LLM, BackendError, ModelOutputError
from graphs.prompts import answer as answer_prompt
from graphs.retrieval import hybrid_search
from stores.sqlite import Store
from stores.types import Document, Fact
from stores.vector import Embedder, FactIndex


@dataclass
class BenchEnv:
    """What every system shares: the model, the embedder, the config and the budget."""

    llm: LLM
    embedder: Embedder
    cfg: Config
    workdir: Path  # this system's own, fresh folder (store, index)
    k: int = 8
    budget_tokens: int = 1024
    checkpoints: list[datetime] = field(default_factory=list)  # when the weights systems consolidate
    generator: Any = None  # the trainer's text generator (tests: a scripted one; None = the real model)


@dataclass
class Answer:
    prediction: str | list[str]
    context: list[str]
    fact_ids: list[str] = field(default_factory=list)  # retrieved store items, for error analysis
    decided: bool = False  # by the store's structure, without the model


class System(Protocol):
    name: str
    store: Store | None

    def add_document(self, doc: Document) -> dict[str, Any]: ...

    def answer(self, q: Question) -> Answer: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- shared helpers
def day(t: datetime) -> str:
    return t.date().isoformat()


def one_line(text: str) -> str:
    return " ".join(text.split())


def overhead_tokens(llm: LLM, q: Question) -> int:
    """Tokens the answer prompt needs besides the context: the prompt itself, the longest
    choice, and (for list questions) the per-choice yes/no suffix, with a safety margin."""
    longest = max(q.choices, key=len)
    base = llm.count_tokens(answer_prompt.build(q.question, [], day(q.time)))
    return base + 2 * llm.count_tokens(longest) + (24 if q.is_list else 0) + 16


def ask(llm: LLM, q: Question, context: list[str]) -> str | list[str]:
    """The shared answer step: one choice by likelihood, or the set judged correct."""
    if q.is_list:
        return answering.choose_set(llm, q.question, q.choices, context, day(q.time))
    return answering.choose(llm, q.question, q.choices, context, day(q.time)).text


def confirmed_at(f: Fact, when: datetime) -> datetime | None:
    """When the fact was last stated true at or before `when` (shown as the fact's date)."""
    times = [h.time for h in f.history if not h.reverted and h.truth and h.time <= when]
    return max(times) if times else None


def line_tokens(llm: LLM, text: str, when: datetime | None) -> int:
    """Tokens one context line takes in the prompt, as `answer.context_block` writes it
    (the number at its widest, the date; digits are often one token each)."""
    return llm.count_tokens(f"- [99] {text} ({day(when)})" if when else f"- [99] {text}") + 1  # + newline


def _numbered(texts_dates: list[tuple[str, datetime | None]]) -> list[str]:
    return [f"[{i}] {t} ({day(d)})" if d else f"[{i}] {t}" for i, (t, d) in enumerate(texts_dates, 1)]


class _Retriever:
    """A store + Chroma collection in the system's folder, searched with hybrid_search."""

    def __init__(self, env: BenchEnv, name: str):
        env.workdir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.store: Store | None = Store(env.workdir / f"{name}.sqlite")
        self.index = FactIndex(env.embedder, path=env.workdir / "chroma", collection=name)

    def retrieve(self, q: Question) -> tuple[list[str], list[str]]:
        """Context lines and item ids: top-k true at the question time, within the budget."""
        assert self.store is not None
        llm = self.env.llm
        hits = hybrid_search(self.store, self.index, q.question, self.env.k, as_of=q.time)
        budget = min(self.env.budget_tokens, llm.n_ctx - overhead_tokens(llm, q))
        kept: list[tuple[str, datetime | None, str]] = []
        used = 0
        for h in hits:  # best first; an item too long for what is left is skipped
            text, when = one_line(h.fact.text), confirmed_at(h.fact, q.time)
            n = line_tokens(llm, text, when)
            if used + n <= budget:
                kept.append((text, when, h.fact.id))
                used += n
        return _numbered([(t, d) for t, d, _ in kept]), [fid for _, _, fid in kept]

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


# ----------------------------------------------------------------------------- knowd
class KnowdSystem(_Retriever):
    """The product: every document through the ingest graph; a question is decided by the
    store's structure when it can be (the chat agent's lookup, graphs/lookup.py), else
    answered by the model from the facts true then, as the other systems answer."""

    name = "knowd"
    revision: str | None = None  # None: as configured

    def __init__(self, env: BenchEnv):
        super().__init__(env, self.name.replace("-", "_"))
        cfg = env.cfg.ingest if self.revision is None else env.cfg.ingest.model_copy(update={"revision": self.revision})
        self.ctx = ingest_graph.IngestContext(store=self.store, index=self.index, llm=env.llm, cfg=cfg)

    def add_document(self, doc: Document) -> dict[str, Any]:
        r = ingest_graph.ingest_document(doc, self.ctx, force=True)
        return {"status": r.status, "counts": r.counts, "error": r.error}

    def answer(self, q: Question) -> Answer:
        assert self.store is not None
        if self.env.cfg.chat.lookup:
            d, found = lookup.decide_from_store(self.store, q.question, q.choices, q.time, self.env.cfg.chat.closed_world)
            if d.answer is not None:
                ids = list(dict.fromkeys(d.support))
                return Answer(d.answer, [found[i].text for i in ids if i in found], ids, decided=True)
        lines, ids = self.retrieve(q)
        return Answer(ask(self.env.llm, q, lines), lines, ids)


class KnowdEraseSystem(KnowdSystem):
    """knowd with ERASE's model-judged revision (`ingest.revision: model`)."""

    name = "knowd-erase"
    revision = "model"


# ----------------------------------------------------------------------------- fact-rag
class FactRagSystem(_Retriever):
    """Facts extracted as knowd extracts them (propositions, or with `revision: model` the
    ingest graph's own split and extract nodes), never revised: no retrieval of old facts,
    no revision; every fact stays true once stated. The gap to knowd is revision."""

    name = "fact-rag"

    def __init__(self, env: BenchEnv):
        super().__init__(env, "fact_rag")
        ctx = ingest_graph.IngestContext(store=self.store, index=self.index, llm=env.llm, cfg=env.cfg.ingest)
        self._runtime = SimpleNamespace(context=ctx)  # the nodes only read runtime.context
        self._names = NameIndex()

    def add_document(self, doc: Document) -> dict[str, Any]:
        assert self.store is not None
        if self.env.cfg.ingest.revision == "keys":
            return self._add_propositions(doc)
        state = erase_graph.EraseState(doc=doc)
        try:
            state.chunks = erase_graph.split(state, self._runtime)["chunks"]  # type: ignore[arg-type]
            facts = []
            for i in range(len(state.chunks)):
                state.i = i
                facts += erase_graph.extract(state, self._runtime)["extracted"]  # type: ignore[arg-type]
        except (ModelOutputError, BackendError) as e:
            with self.store.transaction():
                self.store.put_document(doc, status="failed")
            return {"status": "failed", "counts": {}, "error": str(e)}
        with self.store.transaction() as c:
            self.store.put_document(doc, status="done")
            for f in facts:  # a repeated fact gets one more true entry (a reinforcement), never a false one
                fid = self.store.insert_fact(c, f.text, f.subject, f.relation, f.object)
                self.store.add_history(c, fid, doc.time, True, doc.id, "extract", None)
        self.index.sync(self.store)
        return {"status": "done", "counts": {"extract": len(facts)}, "error": None}

    def _add_propositions(self, doc: Document) -> dict[str, Any]:
        assert self.store is not None
        props = propositions.extract(doc.text, doc.title, self._names)
        with self.store.transaction() as c:
            self.store.put_document(doc, status="done")
            for p in props:
                k = p.key
                fid = self.store.insert_fact(c, p.text, k.subject if k else "", k.relation if k else "", k.object if k else "")
                self.store.add_history(c, fid, doc.time, True, doc.id, "extract", None)
                for n in (k.subject, k.object) if k else ():
                    if n[:1].isupper():
                        self._names.add(n)
        self.index.sync(self.store)
        return {"status": "done", "counts": {"extract": len(props)}, "error": None}

    def answer(self, q: Question) -> Answer:
        lines, ids = self.retrieve(q)
        return Answer(ask(self.env.llm, q, lines), lines, ids)


# ----------------------------------------------------------------------------- rag
class RagSystem(_Retriever):
    """Plain RAG: documents cut into chunks of half the context window, embedded and
    BM25-indexed, retrieved by the same hybrid search (each chunk is stored as an
    always-true item from its document's time, so as-of filtering is the same too)."""

    name = "rag"

    def __init__(self, env: BenchEnv):
        super().__init__(env, "rag_chunks")
        self.chunk_tokens = max(32, env.llm.n_ctx // 2)

    def add_document(self, doc: Document) -> dict[str, Any]:
        assert self.store is not None
        chunks = ingest_graph.chunk_text(doc.text, self.chunk_tokens, self.env.llm.count_tokens)
        with self.store.transaction() as c:
            self.store.put_document(doc, status="done")
            for ch in chunks:
                fid = self.store.insert_fact(c, one_line(ch), doc.title or "", "", doc.id)
                self.store.add_history(c, fid, doc.time, True, doc.id, "extract", None)
        self.index.sync(self.store)
        return {"status": "done", "counts": {"chunks": len(chunks)}, "error": None}

    def answer(self, q: Question) -> Answer:
        lines, ids = self.retrieve(q)
        return Answer(ask(self.env.llm, q, lines), lines, ids)


# ----------------------------------------------------------------------------- long context
class LongContextSystem:
    """No retrieval: the most recent documents (whole) that fit the context, oldest first.
    If not even the newest fits, its beginning does."""

    name = "long-context"
    store = None

    def __init__(self, env: BenchEnv):
        self.env = env
        self.docs: list[Document] = []

    def add_document(self, doc: Document) -> dict[str, Any]:
        self.docs.append(doc)
        return {"status": "done", "counts": {}, "error": None}

    def answer(self, q: Question) -> Answer:
        llm = self.env.llm
        room = llm.n_ctx - overhead_tokens(llm, q)
        picked: list[tuple[str, datetime]] = []
        used = 0
        for d in reversed([d for d in self.docs if d.time <= q.time]):
            text = one_line(f"{d.title}: {d.text}" if d.title and not d.text.startswith(d.title) else d.text)
            n = line_tokens(llm, text, d.time)
            if used + n > room:
                if not picked:  # the newest alone is too long: keep its beginning
                    picked.append((_head(llm, text, room - line_tokens(llm, "", d.time)), d.time))
                break
            picked.append((text, d.time))
            used += n
        lines = _numbered([(t, when) for t, when in reversed(picked)])
        return Answer(ask(llm, q, lines), lines)

    def close(self) -> None:
        self.docs = []


def _head(llm: LLM, text: str, budget: int) -> str:
    """The longest word prefix of `text` within `budget` tokens (binary search on words)."""
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if llm.count_tokens(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


# ----------------------------------------------------------------------------- weights
class Consolidator:
    """Puts a system's store into LoRA weights at the bench's checkpoints, as the nightly
    job does (trainer.run.consolidate: continuing from the live adapter, replaying
    earlier facts, shipping only what passes the gate), and serves the live adapter
    routed, as the daemon does (agent/llm.py).

    Consolidation runs are kept in one folder per bench run (OUT/work/_consolidation),
    indexed by checkpoint and by a fingerprint of the store's facts: `weights` and
    `knowd+weights` read the stream through the same ingest, so the second finds the
    first's adapters (same facts, same adapter) instead of training again. With a
    different store it trains in its own folder.
    """

    def __init__(self, env: BenchEnv, store: Store):
        self.env, self.store = env, store
        self.checkpoints = sorted(env.checkpoints)
        self.done = 0  # checkpoints passed
        self.runs: list[dict[str, Any]] = []
        self.pointer = env.workdir / "live.json"  # this system's view of the live adapter
        self.shared = env.workdir.parent / "_consolidation"
        self.private = env.workdir / "consolidation"
        self.dir = self.shared
        self.llm = self._own_llm()

    def _own_llm(self) -> LLM:
        """The bench's model with this system's live adapter, routed (a test's fake LLM as is)."""
        from agent.llm import LlamaCppLLM

        base = self.env.llm
        if not isinstance(base, LlamaCppLLM):
            return base
        own = LlamaCppLLM(base.model_path, base.n_ctx, base.n_threads, base.seed, adapter_file=self.pointer,
                          adapter_mode=self.env.cfg.llm.adapter)
        own.meter = base.meter  # the runner meters the bench's LLM
        return own

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for f in sorted(self.store.list_facts(current_only=False), key=lambda f: f.id):
            h.update(f.id.encode())
            for e in f.history:
                h.update(f"{e.time.isoformat()}{e.truth}{e.reverted}".encode())
        return h.hexdigest()[:16]

    def before(self, when: datetime) -> None:
        """Consolidate at every checkpoint up to `when` not yet passed."""
        while self.done < len(self.checkpoints) and self.checkpoints[self.done] <= when:
            self._checkpoint(self.done)
            self.done += 1

    def _checkpoint(self, i: int) -> None:
        import json

        from trainer import adapters
        from trainer.run import consolidate

        fp = self.fingerprint()
        index_path = self.dir / "checkpoints.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else []
        if i < len(index) and index[i]["fingerprint"] != fp and self.dir == self.shared:
            self.dir, index_path, index = self.private, self.private / "checkpoints.json", []
            for j in range(i):  # catch up: this store differs from the shared run's
                self._train(j, consolidate, adapters)
        if i < len(index) and index[i]["fingerprint"] == fp:
            rec = dict(index[i], reused=True)
        else:
            rec = self._train(i, consolidate, adapters, fp)
        self.runs.append(rec)
        if rec.get("gguf"):
            self.pointer.write_text(json.dumps({"version": rec["version"], "gguf": rec["gguf"], "scale": 1.0}))
        elif self.pointer.exists():
            self.pointer.unlink()

    def _train(self, i: int, consolidate: Any, adapters: Any, fp: str | None = None) -> dict[str, Any]:
        import json
        import time

        self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model_path = getattr(self.env.llm, "model_path", None)
        try:
            if model_path is None and not self.env.cfg.consolidation.base_model_dir:
                raise ValueError("the bench's model is no GGUF file to consolidate into (set consolidation.base_model_dir)")
            res = consolidate(self.env.cfg.consolidation, self.store, self.dir, progress=False,
                              base_gguf=lambda: model_path, generator=self.env.generator)
            status, reason, m = res.status, res.reason, res.metrics.get("after") or {}
        except Exception as e:  # a failed night leaves the live adapter as it was; the bench goes on
            status, reason, m = "failed", f"{type(e).__name__}: {e}", {}
        live = adapters.live(self.dir)
        rec = {
            "checkpoint": self.checkpoints[i].isoformat(), "fingerprint": fp or self.fingerprint(), "status": status,
            "reason": reason, "version": live["version"] if live else None, "gguf": live["gguf"] if live else None,
            "seconds": round(time.perf_counter() - t0, 1),
            "metrics": {k: m.get(k) for k in ("efficacy", "paraphrase", "portability", "retention", "locality", "arithmetic")},
        }
        index_path = self.dir / "checkpoints.json"
        index = json.loads(index_path.read_text()) if index_path.is_file() else []
        index = index[:i] + [rec]
        index_path.write_text(json.dumps(index, indent=1))
        return rec


class WeightsSystem:
    """The model alone, with an empty context: what consolidation put into its weights.
    Documents go through knowd's ingest into a store (as the daemon's); at each
    checkpoint the store is consolidated (Consolidator) and the live adapter answers
    the questions that name something it learned, the base model the rest."""

    name = "weights"

    def __init__(self, env: BenchEnv):
        self.knowd = KnowdSystem(env)
        self.store = self.knowd.store
        self.consolidator = Consolidator(env, self.knowd.store)

    def add_document(self, doc: Document) -> dict[str, Any]:
        return self.knowd.add_document(doc)

    def answer(self, q: Question) -> Answer:
        self.consolidator.before(q.time)
        return Answer(ask(self.consolidator.llm, q, []), [])

    def stats(self) -> dict[str, Any]:
        return {"consolidations": self.consolidator.runs}

    def close(self) -> None:
        self.knowd.close()
        self.store = None


class KnowdWeightsSystem(WeightsSystem):
    """knowd (lookup, then retrieval) answered by the consolidated model: the facts in
    the prompt and the same facts in the adapter's weights."""

    name = "knowd+weights"

    def answer(self, q: Question) -> Answer:
        self.consolidator.before(q.time)
        k = self.knowd
        saved, k.env = k.env, replace(k.env, llm=self.consolidator.llm)
        try:
            return k.answer(q)
        finally:
            k.env = saved


SYSTEMS: dict[str, type] = {
    "knowd": KnowdSystem,
    "knowd-erase": KnowdEraseSystem,
    "rag": RagSystem,
    "fact-rag": FactRagSystem,
    "long-context": LongContextSystem,
    "weights": WeightsSystem,
    "knowd+weights": KnowdWeightsSystem,
}

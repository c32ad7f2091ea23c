"""Hybrid fact retrieval: dense (Chroma) + lexical BM25 (SQLite FTS5), fused by reciprocal rank.

Used by the chat graph and the benchmark systems, so both retrieve the same way.
"Now" searches only facts true now; `as_of` searches facts true at that time
(with `since`, true at any time from `since` to `as_of`); `include_stale`
searches everything (history questions).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from graphs.text import content_terms
from stores.sqlite import Store
from stores.types import Fact
from stores.vector import FactIndex

RRF_K = 60  # the constant from Cormack et al.; damps the weight of top ranks


@dataclass
class Hit:
    fact: Fact
    score: float  # fused RRF score, higher is better
    dense: float | None  # cosine similarity, when the dense route found it
    lexical: float | None = None  # BM25 (lower is better), when the lexical route found it


def true_during(fact: Fact, start: datetime | None, end: datetime | None) -> bool:
    """Whether the fact was true at some time in [start, end] (end None = now; start None = at end)."""
    if fact.truth_at(end) is True:
        return True
    if start is None or end is None or start >= end:
        return False
    if fact.truth_at(start) is True:
        return True
    return any(h.truth and start < h.time <= end for h in fact.history if not h.reverted)


def changed_during(fact: Fact, start: datetime, end: datetime) -> bool:
    """Whether the fact has a live history entry in [start, end], or was true in it."""
    return any(start <= h.time <= end for h in fact.history if not h.reverted) or true_during(fact, start, end)


def hybrid_search(
    store: Store, index: FactIndex, query: str, k: int = 8, *, as_of: datetime | None = None,
    include_stale: bool = False, pool: int = 4, since: datetime | None = None,
) -> list[Hit]:
    """Top-k facts for `query` (true now, true at `as_of` or during [since, as_of], or any
    with include_stale; include_stale with since/as_of keeps facts that changed in the window)."""
    current_only = as_of is None and since is None and not include_stale
    # A deep pool: facts outside the time asked about are dropped after retrieval.
    n = 2 * max(k * pool, 20)
    terms = content_terms(query)
    lexical = store.search_fts(" ".join(terms), n) if terms else []
    # Dense search without Chroma's metadata filter: the filter costs time in proportion
    # to the facts it matches (~230 ms a query at 100k facts, bench/chat_latency.py),
    # and the truth check below filters anyway. Only when the neighbours are mostly
    # stale is the filtered search needed to find k current facts.
    dense = index.query(query, n, current_only=False)
    facts = {f.id: f for f in store.get_facts(list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in lexical])))}
    if current_only and len(dense) == n:
        live = sum(1 for i, _ in dense if i in facts and facts[i].truth_at(None) is True)
        if live < k:
            dense = index.query(query, n, current_only=True)
            facts.update((f.id, f) for f in store.get_facts([i for i, _ in dense if i not in facts]))
    fused: dict[str, float] = {}
    cos: dict[str, float] = {}
    bm25: dict[str, float] = {}
    for rank, (fid, sim) in enumerate(dense):
        fused[fid] = fused.get(fid, 0.0) + 1.0 / (RRF_K + rank + 1)
        cos[fid] = sim
    for rank, (fid, score) in enumerate(lexical):
        fused[fid] = fused.get(fid, 0.0) + 1.0 / (RRF_K + rank + 1)
        bm25[fid] = score
    hits: list[Hit] = []
    for fid, score in sorted(fused.items(), key=lambda kv: -kv[1]):
        f = facts.get(fid)
        if f is None or not _in_time(f, as_of, since, include_stale):
            continue  # stale facts never reach a "now" (or as-of) answer
        hits.append(Hit(f, score, cos.get(fid), bm25.get(fid)))
        if len(hits) == k:
            break
    return hits


def _in_time(f: Fact, as_of: datetime | None, since: datetime | None, include_stale: bool) -> bool:
    if include_stale:
        if since is None:
            return True
        return changed_during(f, since, as_of or datetime.max.replace(tzinfo=since.tzinfo))
    return true_during(f, since, as_of)

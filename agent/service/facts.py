"""Facts as every face reads them: search, list, one fact with its timeline, counts.

`search` embeds the query: run it on the model thread (`Service.model`). The rest reads
SQLite only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.service.errors import InvalidField
from agent.views import DocCache, FactView, fact_view
from graphs.time_intent import TimeIntent, parse_as_of
from stores.errors import NotFound
from stores.types import Fact, utcnow

if TYPE_CHECKING:
    from agent.app import App


def when(as_of: str | None, param: str = "as_of") -> TimeIntent | None:
    """The time a request asks about (`2021-05-01`, `March 2022`, `2022`); None: now."""
    try:
        return parse_as_of(as_of, utcnow())
    except ValueError as e:
        raise InvalidField(f"{param}: {e}" if param != "as_of" else str(e), param=param) from None


def search(app: App, query: str, *, at: TimeIntent | None = None, include_stale: bool = False,
           limit: int = 10, with_docs: bool = False) -> list[FactView]:
    """Facts related to `query` (hybrid dense + BM25), true at `at` unless `include_stale`,
    most relevant first. Embeds the query: call it on the model thread."""
    from graphs.retrieval import hybrid_search

    t, since = (at.end, at.start) if at else (None, None)
    hits = hybrid_search(app.store, app.index, query, limit, as_of=t, since=since, include_stale=include_stale)
    docs = DocCache(app.store.get_document) if with_docs else None
    return [fact_view(h.fact, as_of=t, start=since, docs=docs, score=h.score, similarity=h.dense) for h in hits]


def list_facts(app: App, *, at: TimeIntent | None = None, include_stale: bool = False,
               limit: int = 50) -> list[FactView]:
    """Facts true at `at` (None: now), or every fact with `include_stale`."""
    t = at.end if at else None
    found = app.store.list_facts(current_only=not include_stale, as_of=None if include_stale else t)
    return [fact_view(f, as_of=t) for f in found[:limit]]


def get(app: App, fact_id: str) -> FactView:
    """One fact now, its history with each change's document. NotFound for an unknown id."""
    f = app.store.get_fact(fact_id)
    if f is None:
        raise NotFound(f"no fact {fact_id!r}")
    return fact_view(f, docs=DocCache(app.store.get_document))


@dataclass
class FactPage:
    """A fact, the fact it was rewritten from, and the facts rewritten from it."""

    fact: FactView
    supersedes: Fact | None
    superseded_by: list[Fact]


def page(app: App, fact_id: str) -> FactPage:
    v = get(app, fact_id)
    store = app.store
    old = store.get_fact(v.supersedes) if v.supersedes else None
    return FactPage(v, old, store.facts_superseding(v.id))


def counts(app: App) -> dict[str, int]:
    return app.store.count_facts()

"""How knowd shows a fact, a citation and a time, once, for every face.

    FactView / fact_view(...)   a fact at a time: truth, since when, the true period
                                around that time and its sources, its history
    fact_json / fact_line       the view as the API's JSON and as the terminal's line
    citation_json / citation_lines / sources_block
                                a chat answer's cited facts, as JSON (API, MCP, console)
                                and as text lines (terminal, the API's appended sources)
    iso / when / day / ago / stamp
                                times: ISO for machines, "2024-06-01 10:00" for people,
                                "5m ago" / "in 5m" relative to now

The console's templates, the MCP tools' result models and the CLI all build on these;
no face formats a fact or a time on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from stores.sqlite import fmt_time
from stores.types import Document, Fact, truth_runs

if TYPE_CHECKING:
    from graphs.chat import Source, UsedFact


# ----------------------------------------------------------------------------- times
def iso(t: datetime | None) -> str | None:
    """A time for machines: UTC, fixed width ('2024-06-01T10:00:00.000000Z'), or None."""
    return fmt_time(t)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return None


def when(value: Any, with_time: bool = True) -> str:
    """A time for people, in UTC: '2024-06-01 10:00' (or '2024-06-01'); '–' for none.
    Takes a datetime or a stored ISO string (a string that is no time is shown as is)."""
    if not value:
        return "–"
    t = _as_datetime(value)
    if t is None:
        return str(value)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def day(value: Any) -> str:
    return when(value, with_time=False)


def ago(value: Any, now: datetime | None = None) -> str:
    """'5m ago' / 'in 2.5h' / '3d ago' relative to `now`; '-' for none."""
    t = _as_datetime(value)
    if t is None:
        return "-" if not value else str(value)
    now = now or datetime.now(timezone.utc)
    secs = (t - now).total_seconds()
    span = abs(secs)
    rel = (f"{span:.0f}s" if span < 90 else f"{span / 60:.0f}m" if span < 5400
           else f"{span / 3600:.1f}h" if span < 172800 else f"{span / 86400:.0f}d")
    return f"in {rel}" if secs > 0 else f"{rel} ago"


def stamp(value: Any, now: datetime | None = None) -> str:
    """'2024-06-01 10:00:03Z (5m ago)' for a status line; '-' for none."""
    t = _as_datetime(value)
    if t is None:
        return "-" if not value else str(value)
    return f"{t.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z ({ago(t, now)})"


# ----------------------------------------------------------------------------- facts
DocLookup = Callable[[str], "Document | None"]


class DocCache:
    """Documents by id, each read once per request (a fact's history repeats them)."""

    def __init__(self, get: DocLookup):
        self._get, self._cache = get, {}

    def __call__(self, doc_id: str) -> Document | None:
        if doc_id not in self._cache:
            self._cache[doc_id] = self._get(doc_id)
        return self._cache[doc_id]


@dataclass
class SourceView:
    """A document behind a change of a fact: id, title, url, when it made the change."""

    doc_id: str | None
    title: str | None = None
    url: str | None = None
    date: str | None = None  # ISO time of the change
    truth: bool = True  # whether this document made the fact true (False: it ended it)
    source: str | None = None  # where the document came from (a connector, "api")

    def json(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "title": self.title, "url": self.url, "date": self.date, "truth": self.truth}


@dataclass
class HistoryView:
    time: datetime
    truth: bool
    op: str
    doc_id: str | None
    reverted: bool
    document: SourceView | None = None


@dataclass
class FactView:
    """A fact as of a time (None: now)."""

    id: str
    text: str
    subject: str
    relation: str
    object: str
    true: bool | None  # at the time asked about; None: not known yet then
    since: datetime | None  # the latest live history entry at that time
    valid_from: datetime | None  # the true period around that time (else the latest one)
    valid_to: datetime | None  # None: still true
    supersedes: str | None
    history: list[HistoryView] = field(default_factory=list)
    sources: list[SourceView] = field(default_factory=list)  # the documents behind that period
    score: float | None = None
    similarity: float | None = None
    keys: list[Any] = field(default_factory=list)  # stores.types.FactKey: the questions it answers


def _source(docs: DocLookup | None, doc_id: str | None, t: datetime | None, truth: bool) -> SourceView | None:
    if doc_id is None:
        return None
    d = docs(doc_id) if docs is not None else None
    return SourceView(doc_id, d.title if d else None, d.url if d else None, iso(t), truth, d.source if d else None)


def _period(f: Fact, start: datetime | None, end: datetime | None) -> tuple[Any, ...] | None:
    """The true run overlapping [start, end] (end None: now), else the latest true run."""
    true_runs = [r for r in truth_runs(f) if r[0]]
    lo = start or end
    for r in reversed(true_runs):
        _, s, u, _ = r
        if (end is None or s <= end) and (lo is None or u is None or u > lo):
            return r
    return true_runs[-1] if true_runs else None


def fact_view(
    f: Fact, *, as_of: datetime | None = None, start: datetime | None = None, docs: DocLookup | None = None,
    score: float | None = None, similarity: float | None = None,
) -> FactView:
    """`f` as of `as_of` (None: now), looking at the window [start, as_of] for its true period.
    With `docs`, history entries and sources carry their documents' titles and urls."""
    live = sorted((h for h in f.history if not h.reverted and (as_of is None or h.time <= as_of)),
                  key=lambda h: (h.time, h.op_id or 0))
    period = _period(f, start, as_of)
    sources: list[SourceView] = []
    if period is not None:
        seen: set[str] = set()
        for e in period[3]:
            if e.doc_id and e.doc_id not in seen:
                seen.add(e.doc_id)
                sources.append(_source(docs, e.doc_id, e.time, e.truth))  # type: ignore[arg-type]
    history = [HistoryView(h.time, h.truth, h.op, h.doc_id, h.reverted, _source(docs, h.doc_id, h.time, h.truth))
               for h in sorted(f.history, key=lambda h: (h.time, h.op_id or 0))]
    return FactView(
        id=f.id, text=f.text, subject=f.subject, relation=f.relation, object=f.object, true=f.truth_at(as_of),
        since=live[-1].time if live else None, valid_from=period[1] if period else None,
        valid_to=period[2] if period else None, supersedes=f.supersedes, history=history, sources=sources,
        score=score, similarity=similarity, keys=list(f.keys),
    )


def fact_json(v: FactView, *, with_documents: bool = False) -> dict[str, Any]:
    """The API's JSON for a fact (GET /v1/facts and /v1/facts/{id})."""
    hist = []
    for h in v.history:
        e: dict[str, Any] = {"time": iso(h.time), "truth": h.truth, "doc_id": h.doc_id, "op": h.op,
                             "reverted": h.reverted}
        if with_documents and h.doc_id:
            d = h.document
            e["document"] = {"title": d.title, "url": d.url, "source": d.source} if d and d.source else None
        hist.append(e)
    out: dict[str, Any] = {
        "id": v.id, "text": v.text, "subject": v.subject, "relation": v.relation, "object": v.object,
        "true": v.true, "since": iso(v.since), "valid_from": iso(v.valid_from), "valid_to": iso(v.valid_to),
        "supersedes": v.supersedes, "sources": [s.json() for s in v.sources], "history": hist,
    }
    if v.score is not None:
        out["score"] = v.score
        out["similarity"] = v.similarity
    return out


def fact_line(v: FactView) -> str:
    """One fact as the terminal lists it: id, text, and true/false since when."""
    state = "true" if v.true else "false" if v.true is False else "unknown"
    return f"[{v.id}] {v.text}  ({state} since {day(v.since) if v.since else '-'})"


def history_lines(v: FactView, with_documents: bool = False) -> list[str]:
    """A fact's history for the terminal, one indented line per entry; with_documents names
    each entry's document by title and url (when the view has them) instead of its id."""
    out = []
    for h in v.history:
        src = h.doc_id or "-"
        if with_documents and h.document is not None and h.document.title:
            src = f'"{h.document.title}"' + (f" <{h.document.url}>" if h.document.url else "")
        out.append(f"    {day(h.time)}  {'true ' if h.truth else 'false'}  {h.op:<10} {src}"
                   + (" (reverted)" if h.reverted else ""))
    return out


# ----------------------------------------------------------------------------- citations
def source_view(s: Source) -> SourceView:
    return SourceView(s.doc_id, s.title, s.url, s.date, s.truth)


def source_text(s: Source | SourceView) -> str:
    """'"Title" <url>, 2022-06-01' (or the document id when it has no title)."""
    name = f'"{s.title}"' if s.title else (s.doc_id or "unknown source")
    url = f" <{s.url}>" if s.url else ""
    return f"{name}{url}, {s.date}" if s.date else f"{name}{url}"


def citation_json(u: UsedFact) -> dict[str, Any]:
    """A cited fact: the [n] marker, the fact, when it holds, and the documents behind it."""
    return {"n": u.n, "id": u.id, "text": u.text, "note": u.note, "true_now": u.true_now,
            "sources": [source_view(s).json() for s in u.sources]}


def citation_lines(facts: list[UsedFact]) -> list[str]:
    """'[n] fact (note) — source; source' for each cited fact (the terminal, the API's sources)."""
    out = []
    for u in facts:
        note = f" ({u.note})" if u.note else ""
        stale = "" if u.true_now else " [no longer true]"
        src = "; ".join(source_text(s) for s in u.sources) or "no source"
        out.append(f"[{u.n}] {u.text}{note}{stale} — {src}")
    return out


def sources_block(citations: list[UsedFact]) -> str:
    """The text appended to an answer: a blank line, 'Sources:' and the citation lines."""
    return "\n\nSources:\n" + "\n".join(citation_lines(citations)) if citations else ""


def strip_sources(answer: str) -> str:
    """An answer sent back by a client, without the sources block appended to it."""
    return answer.split("\n\nSources:\n", 1)[0].strip()

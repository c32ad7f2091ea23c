"""The MCP tools' result models (structured output), built from agent/views.py's views."""
from __future__ import annotations

from pydantic import BaseModel, Field

from agent.views import FactView, SourceView, citation_json, iso
from graphs.chat import ChatResult


class SourceOut(BaseModel):
    doc_id: str | None = Field(description="the document's id")
    title: str | None = None
    url: str | None = None
    date: str | None = Field(None, description="when the document made the change (ISO time)")
    truth: bool = Field(True, description="whether this document made the fact true (false: ended it)")


class FactOut(BaseModel):
    id: str = Field(description="the fact's id (fact_history takes it)")
    text: str
    true: bool | None = Field(description="true or false at the time asked about (null: not yet known then)")
    valid_from: str | None = Field(description="start of the period the fact is (or was last) true (ISO time)")
    valid_to: str | None = Field(description="end of that period; null: still true")
    sources: list[SourceOut] = Field(description="the documents that made the fact true in that period")
    score: float | None = Field(None, description="retrieval score (higher is more relevant)")


class SearchOut(BaseModel):
    query: str
    as_of: str | None = Field(description="the time searched (ISO); null: now")
    facts: list[FactOut]


class HistoryEntryOut(BaseModel):
    time: str = Field(description="since when the fact is `truth` (ISO time)")
    truth: bool
    op: str = Field(description="what changed it: add, supersede, end, reinforce, revert, ...")
    reverted: bool = Field(description="this change was undone (knowd revert) and no longer counts")
    document: SourceOut | None = Field(description="the document behind the change")


class HistoryOut(BaseModel):
    id: str
    text: str
    true: bool | None = Field(description="true or false now")
    supersedes: str | None = Field(description="the fact this one was rewritten from, if any")
    history: list[HistoryEntryOut] = Field(description="oldest first")


class CitationOut(BaseModel):
    n: int = Field(description="the [n] marker in the answer")
    id: str
    text: str
    note: str = Field(description="when the fact holds: 'since 2022-06-01', 'from ... until ...' or its history")
    true_now: bool
    sources: list[SourceOut]


class AnswerOut(BaseModel):
    answer: str
    mode: str = Field(description="the time asked about: now, as_of or history")
    as_of: str | None = Field(description="the end of the time asked about (ISO); null: now")
    known: bool = Field(description="false when nothing knowd knows is relevant (the answer says so)")
    citations: list[CitationOut]


class DocumentOut(BaseModel):
    id: str
    status: str = Field(description="queued (new, or a new version of the id) or duplicate (already queued)")
    content_hash: str


def source_out(s: SourceView | None) -> SourceOut | None:
    return None if s is None else SourceOut(doc_id=s.doc_id, title=s.title, url=s.url, date=s.date, truth=s.truth)


def fact_out(v: FactView) -> FactOut:
    """A fact with the true period around the time asked about and the documents behind it."""
    return FactOut(id=v.id, text=v.text, true=v.true, valid_from=iso(v.valid_from), valid_to=iso(v.valid_to),
                   sources=[source_out(s) for s in v.sources], score=v.score)


def history_out(v: FactView) -> HistoryOut:
    return HistoryOut(
        id=v.id, text=v.text, true=v.true, supersedes=v.supersedes,
        history=[HistoryEntryOut(time=iso(h.time), truth=h.truth, op=h.op, reverted=h.reverted,
                                 document=source_out(h.document)) for h in v.history],
    )


def answer_out(r: ChatResult) -> AnswerOut:
    return AnswerOut(answer=r.answer, mode=r.intent.mode, as_of=iso(r.intent.end), known=r.known,
                     citations=[CitationOut(**citation_json(u)) for u in r.citations])

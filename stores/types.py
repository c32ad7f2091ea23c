"""Key record types shared by every part of knowd.

These are plain dataclasses: the SQLite store is the source of truth, and these
are what it hands out. Times are timezone-aware UTC datetimes.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Truth = bool
OpName = Literal[
    "extract",  # a new fact was added from a document
    "reinforce",  # a document confirmed a current fact
    "make_false",  # a document contradicted a fact (no rewrite possible)
    "rewrite",  # a false fact was replaced by a new true one (old -> false, new -> true)
    "retire",  # a false fact could not be rewritten and was retired
    "duplicate",  # an extracted fact duplicated a current one (counted as reinforcement)
    "revert",  # a document's changes were undone
    "reject",  # model output was rejected (invalid); nothing changed
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def content_hash(*parts: str) -> str:
    """Stable sha256 over text parts (used for ids and edit detection)."""
    h = hashlib.sha256()
    for p in parts:
        h.update((p or "").encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


@dataclass
class Document:
    """One unit of input: a feed entry, a chat window, a file."""

    id: str
    text: str
    source: str = "cli"
    url: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    read_at: datetime = field(default_factory=utcnow)
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def time(self) -> datetime:
        """The time the document's facts hold from: publication, else reading."""
        return self.published_at or self.read_at

    @property
    def content_hash(self) -> str:
        return content_hash(self.title or "", self.text)


_KEY_STOP = frozenset("the a an of in at on for and".split())


def key_norm(value: str) -> str:
    """The comparison form of a key's subject or object: lower case, without articles,
    possessives, 'of'/'in' and a trailing 'a year', words sorted, so that 'the warehouse
    in Lyon' and 'the Lyon warehouse', or 'Globex's' and 'Globex', compare equal."""
    v = (value or "").strip().lower()
    v = re.sub(r"\s+(a|per)\s+(year|month|week|day|hour)$", "", v)
    v = re.sub(r"[\"“”]", "", v)
    v = re.sub(r"'s\b|’s\b|'|’", " ", v)
    words = [w.strip(".,") for w in re.findall(r"[\w:.,%-]+", v)]
    return " ".join(sorted(w for w in words if w and w not in _KEY_STOP))


@dataclass
class FactKey:
    """Which question a fact answers: subject -relation-> object ("Maria Lopez" -"chief
    executive of"-> "Northwind Logistics"). `negated`/`past` keys ("no longer", "previously")
    hold no slot: they record that something ended. `definite`: "the R of O", one holder."""

    subject: str
    relation: str
    object: str = ""
    negated: bool = False
    past: bool = False
    definite: bool = False

    @property
    def holds(self) -> bool:
        """Whether the key occupies its slot (a positive, present statement)."""
        return not (self.negated or self.past)


@dataclass
class HistoryEntry:
    """One version of a fact's truth: since `time`, the fact is `truth`, because of `doc_id`."""

    time: datetime
    truth: Truth
    doc_id: str | None
    op: str
    op_id: int | None = None
    reverted: bool = False


@dataclass
class Fact:
    id: str
    text: str
    subject: str = ""
    relation: str = ""
    object: str = ""
    history: list[HistoryEntry] = field(default_factory=list)
    supersedes: str | None = None  # id of the fact this one was rewritten from
    created_at: datetime = field(default_factory=utcnow)
    keys: list[FactKey] = field(default_factory=list)  # filled by Store when asked for (with_keys)

    def _live(self) -> list[HistoryEntry]:
        return [h for h in self.history if not h.reverted]

    def truth_at(self, when: datetime | None = None) -> bool | None:
        """True/False at `when` (None = now); None if the fact did not exist yet."""
        latest: HistoryEntry | None = None
        for h in sorted(self._live(), key=lambda h: (h.time, h.op_id or 0)):
            if when is not None and h.time > when:
                break
            latest = h
        return None if latest is None else latest.truth

    @property
    def is_current(self) -> bool:
        return self.truth_at(None) is True

    def held_at(self, when: datetime) -> bool:
        """True at `when`, or announced for later and not yet decided ('from 1 October')."""
        t = self.truth_at(when)
        if t is not None:
            return t
        return any(h.truth and h.time > when for h in self._live())

    @property
    def sources(self) -> list[str]:
        return [h.doc_id for h in self._live() if h.doc_id]


@dataclass
class Operation:
    """One logged change (or rejection), with a pointer to the model call behind it."""

    doc_id: str | None
    fact_id: str | None
    op: str
    before: str | None
    after: str | None
    time: datetime
    model_io_ref: int | None = None
    id: int | None = None
    detail: str | None = None
    reverted: bool = False
    actor: str | None = None  # the token name when a person's request caused it (agent/security.py)


def truth_runs(f: Fact) -> list[tuple[bool, datetime, datetime | None, list[HistoryEntry]]]:
    """The fact's live history as runs of equal truth: (truth, from, until, entries),
    oldest first; `until` is None for the run that still holds."""
    segs: list[tuple[bool, datetime, datetime | None, list[HistoryEntry]]] = []
    for h in sorted((h for h in f.history if not h.reverted), key=lambda h: (h.time, h.op_id or 0)):
        if segs and segs[-1][0] == h.truth:
            segs[-1][3].append(h)
            continue
        if segs:
            t, start, _, es = segs[-1]
            segs[-1] = (t, start, h.time, es)
        segs.append((h.truth, h.time, None, [h]))
    return segs

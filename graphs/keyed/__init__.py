"""The keys engine: what a document's own sentences do to the facts held, with no model call.

A plain library beneath the ingest graphs (no LangGraph here):

    propositions.py  text -> the document's clauses, made to stand alone (a spaCy parse)
    keys.py          each proposition's key: subject -relation-> object, ended, effective date
    relations.py     the relation lexicon: which side of a relation holds one value
    names.py         short name -> full name, kinds, first-name genders
    dates.py         "from 1 October" -> when an announced change holds
    slots.py         the revision rules: keys against the facts held -> a list of changes

The front door is `revise_document`: text, title, time, the facts held (the `Facts` view;
`StoreFacts` over the SQLite store) and the index of known names in; the propositions
and the list of changes out. Writing the changes is the ingest graph's commit
(graphs/ingest/commit.py), not this library's.
"""
from __future__ import annotations

from datetime import datetime

from graphs.keyed.names import NameIndex
from graphs.keyed.propositions import Proposition
from graphs.keyed.propositions import extract as _extract
from graphs.keyed.slots import Change, Facts, Held, Revision, StoreFacts

__all__ = ["Change", "Facts", "Held", "NameIndex", "Proposition", "StoreFacts", "propose", "revise", "revise_document"]


def propose(text: str, title: str | None, names: NameIndex | None) -> list[Proposition]:
    """The document's propositions, each with its key (a parse, no model call)."""
    return _extract(text, title, names)


def revise(props: list[Proposition], facts: Facts, time: datetime) -> list[Change]:
    """What the propositions do to the facts held at `time`, in document order."""
    rev = Revision(facts, time)
    for i, p in enumerate(props):
        rev.apply(p.text, p.key, i)
    rev.finish()
    return rev.changes


def revise_document(
    text: str, title: str | None, time: datetime, facts: Facts, names: NameIndex | None,
) -> tuple[list[Proposition], list[Change]]:
    """A document's propositions and the changes they make to `facts`."""
    props = propose(text, title, names)
    return props, revise(props, facts, time)

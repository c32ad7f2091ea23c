"""Deterministic checks that back up the model's classify labels (graphs/ingest/erase_graph.py).

A 270M model mislabels in two ways these catch: it says "reinforce" to a fact the
same document negates outright (`negates`), and it says "make_false" to facts the
document is not about at all (`linked`).
"""
from __future__ import annotations

import re

from graphs.text import content_words

_NEGATION = re.compile(r"\b(no longer|not|never|formerly|former|previously|ex|no more)\b|n't\b")
_ARTICLES = re.compile(r"\b(the|a|an)\b")


def _core(relation: str) -> tuple[str, bool]:
    """A relation without negation markers and articles, and whether it was negated."""
    rel = relation.lower()
    negated = bool(_NEGATION.search(rel))
    rel = _ARTICLES.sub(" ", _NEGATION.sub(" ", rel))
    return " ".join(rel.split()), negated


def negates(new: tuple[str, str, str], old: tuple[str, str, str]) -> bool:
    """Does the new triple say the old one has ended? ("X is no longer the CEO of Y" vs
    "X is CEO of Y"). A deterministic check that backs up the model's label: a small
    model often says "reinforce" when the same document states the negation outright."""
    (ns, nr, no), (os_, or_, oo) = new, old
    if ns.lower().strip() != os_.lower().strip() or no.lower().strip() != oo.lower().strip():
        return False
    n_core, n_neg = _core(nr)
    o_core, o_neg = _core(or_)
    return n_core == o_core and n_neg and not o_neg


def linked(fact: tuple[str, str, str], source: str, new_entities: set[str]) -> bool:
    """Is the fact about something the document talks about? Its subject or object must
    share a content word with the chunk or with the entities of the facts extracted from
    it. A small model labels unrelated facts make_false; ERASE's multi-hop edits
    ("Olivia works 9 to 17" after "Olivia changed jobs") still name a shared entity."""
    words = content_words(source) | {w for e in new_entities for w in content_words(e)}
    return bool((content_words(fact[0]) | content_words(fact[2])) & words)

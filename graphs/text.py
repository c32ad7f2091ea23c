"""The one content-word tokeniser of the graphs: lower-cased `\w+` words minus stop words.

Two stop lists, for two questions asked of text:

* `STOPWORDS` (retrieval, chat attribution): question and function words carry no
  evidence that a fact is relevant, so they are dropped from queries;
* `NAME_STOPWORDS` (extraction and classification guards): only the words that do
  not tell two names apart ("the", "of", "is"), so "Bank of England" keeps "bank".
"""
from __future__ import annotations

import re

# Question words and function words: BM25 over "who", "was", "the" matches every
# fact, which both adds noise to the fusion and makes "a lexical hit" meaningless
# as evidence that anything relevant is known.
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for from with about as into over after before
    between under again further then once here there when where why how what which who whom whose
    this that these those am is are was were be been being have has had having do does did doing
    will would shall should can could may might must i me my we our you your he him his she her it
    its they them their not no nor so than too very s t just also any all each both few more most
    other some such only own same up down out off during until while tell know say said please
    now currently current today still ever""".split()
)

NAME_STOPWORDS = frozenset({"the", "a", "an", "of", "and", "in", "on", "at", "to", "for", "is", "was", "by", "with", "s"})

_WORD = re.compile(r"\w+")


def content_terms(text: str, stop: frozenset[str] = STOPWORDS) -> list[str]:
    """The text's words minus `stop`, lower-cased, in order, without repeats."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in stop))


def content_words(text: str) -> set[str]:
    """The words of a name or a short text that tell it apart (`NAME_STOPWORDS` dropped)."""
    return set(content_terms(text, NAME_STOPWORDS))

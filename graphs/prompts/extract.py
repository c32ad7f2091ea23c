"""Extract new atomic, decontextualised facts from a document chunk."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from graphs.text import content_words

_EXAMPLE = """Text (2021-03-02, "Acme names new chief"): Acme Corp said on Monday that its chief executive, Jane Doe, will step down after ten years. She will be replaced by Bob Lee, who ran the company's European arm.
Facts: {"facts": [{"subject": "Bob Lee", "relation": "is the CEO of", "object": "Acme Corp"}, {"subject": "Jane Doe", "relation": "is no longer the CEO of", "object": "Acme Corp"}, {"subject": "Bob Lee", "relation": "previously ran", "object": "the European arm of Acme Corp"}]}

Text (2019-07-15, "Transfer news"): The midfielder Tom Hardy has joined Arsenal from Leeds United on a four-year contract.
Facts: {"facts": [{"subject": "Tom Hardy", "relation": "plays for", "object": "Arsenal"}, {"subject": "Tom Hardy", "relation": "no longer plays for", "object": "Leeds United"}, {"subject": "Tom Hardy", "relation": "is a", "object": "midfielder"}]}
"""

# `ingest.extract_unit: sentence` (graphs/sentences.py): one short, third-person sentence
# per call. Written after the synthetic-world benchmark showed the chunk prompt failing
# on conversations, so two of its three examples are about work and pay (docs/benchmarks.md).
_SENTENCE_EXAMPLE = """Text: Acme Corp said that its chief executive, Jane Doe, will step down; she will be replaced by Bob Lee.
Facts: {"facts": [{"subject": "Bob Lee", "relation": "is the CEO of", "object": "Acme Corp"}, {"subject": "Jane Doe", "relation": "is no longer the CEO of", "object": "Acme Corp"}]}

Text: Tom Hardy's boss is Ann Wu, and Tom Hardy's coworkers are Li Na and Raj Patel.
Facts: {"facts": [{"subject": "Tom Hardy", "relation": "has the boss", "object": "Ann Wu"}, {"subject": "Tom Hardy", "relation": "works with", "object": "Li Na"}, {"subject": "Tom Hardy", "relation": "works with", "object": "Raj Patel"}]}

Text: Sara Cole earns 50,000 dollars a year and Sara Cole enjoys chess.
Facts: {"facts": [{"subject": "Sara Cole", "relation": "earns", "object": "50,000 dollars a year"}, {"subject": "Sara Cole", "relation": "enjoys", "object": "chess"}]}
"""
SENTENCE_MAX_FACTS = 4

_PRONOUNS = {"he", "she", "it", "they", "him", "her", "them", "his", "its", "their", "this", "that", "we", "i", "you"}


@dataclass
class ExtractedFact:
    subject: str
    relation: str
    object: str

    @property
    def text(self) -> str:
        return f"{self.subject} {self.relation} {self.object}.".replace("..", ".")


def build(chunk: str, date: str, title: str | None) -> str:
    head = f'{date}, "{title}"' if title else date
    return (
        "Write the facts stated in the text as short triples. Name people and organisations "
        "in full (never he/she/it/they); one fact per triple.\n\n"
        f"{_EXAMPLE}\nText ({head}): {chunk.strip()}\nFacts: "
    )


def build_sentence(sentence: str) -> str:
    """The prompt for one stand-alone sentence (`ingest.extract_unit: sentence`)."""
    return f"Write the facts stated in the text as short triples.\n\n{_SENTENCE_EXAMPLE}\nText: {sentence.strip()}\nFacts: "


def max_tokens(max_facts: int) -> int:
    """Enough tokens for `max_facts` facts at the schema's string limits."""
    return 24 + 64 * max_facts


def schema(max_facts: int) -> dict[str, Any]:
    def s(n: int) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": n}

    return {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array", "maxItems": max_facts,
                "items": {
                    "type": "object",
                    "properties": {"subject": s(60), "relation": s(48), "object": s(60)},
                    "required": ["subject", "relation", "object"],
                },
            }
        },
        "required": ["facts"],
    }


def grounded(f: ExtractedFact, source: str) -> bool:
    """Do the fact's subject and object come from the source text?

    A small model copies entities from the few-shot examples ("Maria Lopez is a
    midfielder"); requiring most content words of subject and object to occur in
    the chunk (or its title) rejects those without touching well-formed facts.
    """
    words = content_words(source)
    for part in (f.subject, f.object):
        cw = content_words(part)
        if cw and len(cw & words) < max(1, (len(cw) + 1) // 2):
            return False
    return True


def parse(obj: Any, source: str | None = None) -> tuple[list[ExtractedFact], list[str]]:
    """Valid facts, and one message per rejected item (empty parts, pronoun subjects,
    a subject repeated as the object, which the small model writes when it runs out of
    facts: "Wonka Sweets is a Wonka Sweets", entities not found in `source`)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("facts"), list):
        raise ValueError("expected an object with a 'facts' list")
    facts: list[ExtractedFact] = []
    rejected: list[str] = []
    seen: set[str] = set()
    for item in obj["facts"]:
        if not isinstance(item, dict):
            rejected.append(f"not an object: {item!r}"[:200])
            continue
        parts = [_clean(item.get(k)) for k in ("subject", "relation", "object")]
        if not all(parts):
            rejected.append(f"empty part in {item!r}"[:200])
            continue
        if parts[0].lower() in _PRONOUNS:
            rejected.append(f"pronoun subject in {item!r}"[:200])
            continue
        f = ExtractedFact(*parts)
        if content_words(f.subject) == content_words(f.object):
            rejected.append(f"subject and object are the same: {f.text!r}"[:200])
            continue
        if source is not None and not grounded(f, source):
            rejected.append(f"not grounded in the text: {f.text!r}"[:200])
            continue
        key = f.text.lower()
        if key not in seen:
            seen.add(key)
            facts.append(f)
    return facts, rejected


def _clean(v: Any) -> str:
    return re.sub(r"\s+", " ", v).strip(" .\"'") if isinstance(v, str) else ""

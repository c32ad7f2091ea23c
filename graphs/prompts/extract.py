"""Extract new atomic, decontextualised facts from a document chunk."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_EXAMPLE = """Text (2021-03-02, "Acme names new chief"): Acme Corp said on Monday that its chief executive, Jane Doe, will step down after ten years. She will be replaced by Bob Lee, who ran the company's European arm.
Facts: {"facts": [{"subject": "Bob Lee", "relation": "is the CEO of", "object": "Acme Corp"}, {"subject": "Jane Doe", "relation": "is no longer the CEO of", "object": "Acme Corp"}, {"subject": "Bob Lee", "relation": "previously ran", "object": "the European arm of Acme Corp"}]}

Text (2019-07-15, "Transfer news"): The midfielder Tom Hardy has joined Arsenal from Leeds United on a four-year contract.
Facts: {"facts": [{"subject": "Tom Hardy", "relation": "plays for", "object": "Arsenal"}, {"subject": "Tom Hardy", "relation": "no longer plays for", "object": "Leeds United"}, {"subject": "Tom Hardy", "relation": "is a", "object": "midfielder"}]}
"""

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


def schema(max_facts: int) -> dict[str, Any]:
    s = {"type": "string", "minLength": 1, "maxLength": 80}
    return {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array", "maxItems": max_facts,
                "items": {
                    "type": "object",
                    "properties": {"subject": s, "relation": s, "object": s},
                    "required": ["subject", "relation", "object"],
                },
            }
        },
        "required": ["facts"],
    }


def parse(obj: Any) -> tuple[list[ExtractedFact], list[str]]:
    """Valid facts, and one message per rejected item (empty parts, pronoun subjects)."""
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
        key = f.text.lower()
        if key not in seen:
            seen.add(key)
            facts.append(f)
    return facts, rejected


def _clean(v: Any) -> str:
    return re.sub(r"\s+", " ", v).strip(" .\"'") if isinstance(v, str) else ""

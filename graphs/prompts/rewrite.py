"""Rewrite a fact that became false into one that is true now, or retire it (ERASE step 2b).

Conditioned on the document and the facts still true, which is what lets an edit
propagate: "Mary works with Bob" + "Mary moved to Amazon" + "Quinn works at
Amazon" -> "Mary works with Quinn".
"""
from __future__ import annotations

from typing import Any

from graphs.prompts.extract import ExtractedFact, _clean

_EXAMPLE = """Text (2022-02-01): Mary Lee left Google and joined Amazon as an engineer.
Still true:
- Quinn Park works at Amazon.
- Mary Lee works at Amazon.
No longer true: Mary Lee works with Bob Stone.
True now: {"subject": "Mary Lee", "relation": "works with", "object": "Quinn Park"}

Text (2022-03-09): The bakery on Elm Street closed for good.
Still true:
- The bakery on Elm Street was opened in 1990.
No longer true: The bakery on Elm Street opens at 7 am.
True now: {"retire": true}
"""


def build(chunk: str, date: str, false_fact: str, still_true: list[str]) -> str:
    listed = "\n".join(f"- {t}" for t in still_true) or "- (nothing else known)"
    return (
        "A fact is no longer true. Using the text and the facts still true, write what is "
        "true now about the same subject, or retire the fact if nothing replaces it.\n\n"
        f"{_EXAMPLE}\nText ({date}): {chunk.strip()}\nStill true:\n{listed}\n"
        f"No longer true: {false_fact}\nTrue now: "
    )


def schema() -> dict[str, Any]:
    s = {"type": "string", "minLength": 1, "maxLength": 80}
    return {
        "anyOf": [
            {"type": "object", "properties": {"retire": {"const": True}}, "required": ["retire"], "additionalProperties": False},
            {
                "type": "object",
                "properties": {"subject": s, "relation": s, "object": s},
                "required": ["subject", "relation", "object"],
                "additionalProperties": False,
            },
        ]
    }


def parse(obj: Any, old_text: str) -> ExtractedFact | None:
    """The replacement fact, or None to retire. Raises ValueError on malformed output;
    a 'rewrite' identical to the false fact counts as a retirement."""
    if not isinstance(obj, dict):
        raise ValueError("expected an object")
    if obj.get("retire") is True:
        return None
    parts = [_clean(obj.get(k)) for k in ("subject", "relation", "object")]
    if not all(parts):
        raise ValueError(f"rewrite has an empty part: {obj!r}"[:200])
    f = ExtractedFact(*parts)
    if f.text.lower().rstrip(".") == old_text.lower().strip().rstrip("."):
        return None
    return f

"""Classify retrieved facts against a document chunk: reinforce / no_change / make_false.

Several facts go in one call; the schema is an object keyed by the facts' numbers,
each value an enum, all required — so constrained decoding can only produce a
label for every fact shown and nothing else.
"""
from __future__ import annotations

from typing import Any

LABELS = ("reinforce", "no_change", "make_false")

_EXAMPLE = """Text (2020-05-01): Tom Hardy left Leeds United this week and signed a contract with Arsenal. He will wear the number 8 shirt.
Facts:
1. Arsenal is a football club in London.
2. Tom Hardy plays for Leeds United.
3. Leeds United was founded in 1919.
4. Tom Hardy is a footballer.
5. Sam Long plays for Chelsea.
6. Tom Hardy's teammates include Sam Long of Leeds United.
Answer: {"1": "no_change", "2": "make_false", "3": "no_change", "4": "reinforce", "5": "no_change", "6": "make_false"}
"""


def build(chunk: str, date: str, facts: list[str]) -> str:
    listed = "\n".join(f"{i}. {t}" for i, t in enumerate(facts, 1))
    return (
        "For each fact, say what the new text means for it:\n"
        "reinforce = the text says the fact is true; no_change = the text is not about it; "
        "make_false = the text shows it is no longer true, directly or because something it "
        "depends on changed (a new job changes boss, coworkers, team, office and hours).\n\n"
        f"{_EXAMPLE}\nText ({date}): {chunk.strip()}\nFacts:\n{listed}\nAnswer: "
    )


def schema(n: int) -> dict[str, Any]:
    keys = [str(i) for i in range(1, n + 1)]
    return {
        "type": "object",
        "properties": {k: {"enum": list(LABELS)} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


def parse(obj: Any, n: int) -> tuple[dict[int, str], list[str]]:
    """{fact number: label} for valid entries, and messages for rejected ones.
    Facts the model left out are not in the result (the caller treats them as no_change)."""
    if not isinstance(obj, dict):
        raise ValueError("expected an object of fact number -> label")
    out: dict[int, str] = {}
    rejected: list[str] = []
    for k, v in obj.items():
        try:
            i = int(k)
        except (TypeError, ValueError):
            rejected.append(f"unknown fact number {k!r}")
            continue
        if not 1 <= i <= n:
            rejected.append(f"fact number {i} was not shown (1..{n})")
        elif v not in LABELS:
            rejected.append(f"fact {i}: invalid label {v!r}")
        else:
            out[i] = v
    return out, rejected

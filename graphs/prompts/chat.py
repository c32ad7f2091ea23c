"""Answer a chat question in free text from numbered facts, citing them as [n].

Few-shot and short, for the 270M base model: one example for questions about
now or a past time, one for history questions ("what changed about X?") where
each fact carries its true/false history, and one that answers "I don't know."
when the facts do not say. The answer is the model's first line; graphs/chat.py
checks its [n] markers against the facts.
"""
from __future__ import annotations

import re

_INSTRUCTIONS = (
    "Answer the question from the numbered facts only. Cite each fact you use by its number, "
    "like [1]. Facts with a later date replace older ones. If the facts do not answer the "
    "question, say \"I don't know.\"\n\n"
)

_EXAMPLE = """Facts (true now):
[1] Tom Hardy plays for Arsenal. (since 2020-05-01)
[2] Arsenal is based in London. (since 2019-01-01)
Question: Which city does Tom Hardy play in?
Answer: Tom Hardy plays for Arsenal [1], which is based in London [2].

Facts (true now):
[1] Acme Corp is based in Denver. (since 2021-02-01)
Question: Who founded Acme Corp?
Answer: I don't know.
"""

_HISTORY_EXAMPLE = """Facts (with their history):
[1] Globex is based in Denver. (true from 2015-01-01)
[2] Ana Ruiz chairs Globex. (true from 2018-02-01; false from 2021-09-01)
[3] Tom Berg chairs Globex. (true from 2021-09-01)
Question: How has the chair of Globex changed?
Answer: Ana Ruiz chaired Globex until 2021-09-01 [2]; since then Tom Berg chairs it [3].
"""

STOP = ["\nQuestion:", "\nFacts", "\n\n", "\nPrevious question:"]
DONT_KNOW = "I don't know."
CITE = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")


def fact_line(n: int, text: str, note: str) -> str:
    """'[n] text (note)', the form every example above uses."""
    return f"[{n}] {text.strip()}" + (f" ({note})" if note else "")


def header(when: str, history: bool) -> str:
    """The facts block's title: 'true now', 'true in March 2022', 'with their history'."""
    if history:
        return "Facts (with their history):"
    return "Facts (true now):" if when in ("", "now") else f"Facts (true {when}):"


def build(
    question: str, lines: list[str], *, when: str = "now", history: bool = False,
    previous: tuple[str, str] | None = None,
) -> str:
    """Prompt ending in 'Answer:'. `lines` are fact_line()s; `previous` is the last
    (question, answer) of the conversation, given when this question follows up on it."""
    prev = ""
    if previous is not None:
        q, a = previous
        prev = f"Previous question: {q.strip()}\nPrevious answer: {_one_line(a)}\n"
    body = "\n".join(lines) if lines else "(no known facts)"
    return (
        _INSTRUCTIONS
        + (_HISTORY_EXAMPLE if history else _EXAMPLE)
        + f"\n{header(when, history)}\n{body}\n{prev}Question: {question.strip()}\nAnswer:"
    )


def parse(text: str) -> str:
    """The answer: the first line of the model's text (citation markers are checked
    against the facts by the caller, graphs/chat.py)."""
    return _one_line(text) or DONT_KNOW


def nothing_known(when: str) -> str:
    """The reply when retrieval found nothing relevant (no model call is made)."""
    if when in ("", "now"):
        return "I don't know: nothing I know is relevant to that question."
    return f"I don't know: nothing I know {when} is relevant to that question."


def _one_line(text: str) -> str:
    text = text.strip()
    return text.split("\n", 1)[0].strip() if text else ""

"""Answer a chat question in free text from numbered facts, citing them as [n].

Few-shot and short, for the 270M base model: one example for questions about
now or a past time, one for history questions ("what changed about X?") where
each fact carries its true/false history, and one that answers "I don't know."
when the facts do not say. The answer is one line; `parse` keeps only citation
numbers that name a fact that was actually in the prompt.
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
[1] Maria Lopez is CEO of Northwind. (true from 2019-03-01; false from 2022-06-01)
[2] John Smith is CEO of Northwind. (true from 2022-06-01)
Question: What changed about the CEO of Northwind?
Answer: Maria Lopez was CEO of Northwind until 2022-06-01 [1]; since then John Smith has been CEO [2].
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


def parse(text: str, n_facts: int) -> tuple[str, list[int]]:
    """(answer, cited fact numbers): the first line of the model's text, with citation
    markers that name no fact in the prompt removed."""
    answer = _one_line(text)
    cited: list[int] = []

    def keep(m: re.Match[str]) -> str:
        nums = [int(x) for x in re.split(r"\s*,\s*", m.group(1))]
        good = [x for x in nums if 1 <= x <= n_facts]
        for x in good:
            if x not in cited:
                cited.append(x)
        return f" [{', '.join(map(str, good))}]" if good else ""

    answer = CITE.sub(keep, answer).strip()
    return answer or DONT_KNOW, cited


def nothing_known(when: str) -> str:
    """The reply when retrieval found nothing relevant (no model call is made)."""
    if when in ("", "now"):
        return "I don't know: nothing I know is relevant to that question."
    return f"I don't know: nothing I know {when} is relevant to that question."


def _one_line(text: str) -> str:
    text = text.strip()
    return text.split("\n", 1)[0].strip() if text else ""

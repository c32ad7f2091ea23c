"""Answer a question from context lines: free text, one choice, or a set of choices.

For a 270M model, picking by likelihood beats generating: each choice is scored
as a continuation of the prompt (mean log-probability per token). Scores are
calibrated by the same choice's likelihood without the context and question
(a PMI-style correction), so choices that are merely frequent strings do not
win by default. Shared by the chat graph and the benchmark systems, so every
system answers with the same prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.llm import LLM

_MC_EXAMPLE = """Facts:
- [1] Tom Hardy plays for Arsenal. (2020-05-01)
- [2] Arsenal is based in London. (2019-01-01)
Question: Which club does Tom Hardy play for?
Answer: Arsenal
"""


def context_block(lines: list[str]) -> str:
    return "\n".join(f"- {ln}" for ln in lines) if lines else "- (no known facts)"


def build(question: str, context: list[str], date: str | None = None) -> str:
    """Prompt ending in 'Answer:' (choices are scored, or free text generated, after it)."""
    when = f" (true on {date})" if date else ""
    return (
        "Answer the question using the facts. Facts with a later date replace older ones.\n\n"
        f"{_MC_EXAMPLE}\nFacts{when}:\n{context_block(context)}\nQuestion: {question.strip()}\nAnswer:"
    )


@dataclass
class Choice:
    index: int
    text: str
    scores: list[float]


def choose(llm: LLM, question: str, choices: list[str], context: list[str], date: str | None = None, calibrate: bool = True) -> Choice:
    """The most likely choice given the context."""
    if not choices:
        raise ValueError("no choices to choose from")
    prompt = build(question, context, date)
    cont = [" " + c.strip() for c in choices]
    scores = llm.score_choices(prompt, cont, step="answer")
    if calibrate:
        prior = llm.score_choices("Answer:", cont, step="answer-prior")
        scores = [s - 0.5 * p for s, p in zip(scores, prior)]
    best = max(range(len(choices)), key=lambda i: scores[i])
    return Choice(best, choices[best], scores)


def choose_set(llm: LLM, question: str, choices: list[str], context: list[str], date: str | None = None) -> list[str]:
    """All choices the model judges correct: each is asked as a yes/no question about the facts."""
    picked = []
    best, best_margin = choices[0] if choices else "", float("-inf")
    for c in choices:
        prompt = build(f"{question.strip()} Is \"{c}\" one of the answers? Say yes or no.", context, date)
        yes, no = llm.score_choices(prompt, [" yes", " no"], step="answer-set")
        if yes - no > best_margin:
            best, best_margin = c, yes - no
        if yes > no:
            picked.append(c)
    return picked or ([best] if best else [])

"""Answering by likelihood: one choice, or the set of right choices, from context lines.

For a 270M model, picking by likelihood beats generating: each choice is scored
as a continuation of the answer prompt (graphs/prompts/answer.py; mean
log-probability per token). Scores are calibrated by the same choice's
likelihood without the context and question (a PMI-style correction), so choices
that are merely frequent strings do not win by default. Used by the chat graph's
choose / choose_set nodes and by the benchmark systems.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphs.llm import LLM
from graphs.prompts import answer as answer_prompt


@dataclass
class Choice:
    index: int
    text: str
    scores: list[float]


def choose(llm: LLM, question: str, choices: list[str], context: list[str], date: str | None = None, calibrate: bool = True) -> Choice:
    """The most likely choice given the context (the question is the adapter's route)."""
    if not choices:
        raise ValueError("no choices to choose from")
    prompt = answer_prompt.build(question, context, date)
    cont = [answer_prompt.continuation(c) for c in choices]
    scores = llm.score_choices(prompt, cont, step="answer", route=question)
    if calibrate:
        prior = llm.score_choices(answer_prompt.PRIOR, cont, step="answer-prior", route=question)
        scores = [s - 0.5 * p for s, p in zip(scores, prior)]
    best = max(range(len(choices)), key=lambda i: scores[i])
    return Choice(best, choices[best], scores)


def choose_set(llm: LLM, question: str, choices: list[str], context: list[str], date: str | None = None) -> list[str]:
    """All choices the model judges correct: each is asked as a yes/no question about the facts."""
    picked = []
    best, best_margin = choices[0] if choices else "", float("-inf")
    for c in choices:
        prompt = answer_prompt.build_member(question, c, context, date)
        yes, no = llm.score_choices(prompt, answer_prompt.YES_NO, step="answer-set", route=question)
        if yes - no > best_margin:
            best, best_margin = c, yes - no
        if yes > no:
            picked.append(c)
    return picked or ([best] if best else [])

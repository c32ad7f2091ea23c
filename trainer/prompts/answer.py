"""Task: answer a question with a short phrase (student, teacher and evaluation).

Prompts are few-shot ``Question: ...\\nAnswer:`` completions; the teacher's
prompt is the student's with the background story in front. `matches` is the
generation-based scorer: the normalised gold phrase occurs in the normalised
answer (yes/no and numbers must be the answer's first word).
"""
from __future__ import annotations

import re
import string

STOP = ("\n",)

# One worked example is enough for the base model to answer in the format, and
# every token here is paid for in each training step.
QA_PREFIX = "Question: Who wrote Hamlet?\nAnswer: William Shakespeare\n\n"
ARITH_PREFIX = "12+5=17\n20+13=33\n"


def with_context(prompt: str, context: str | None) -> str:
    return f"{context}\n\n{prompt}" if context else prompt


def build(question: str, context: str | None = None) -> str:
    return with_context(f"{QA_PREFIX}Question: {question}\nAnswer:", context)


def build_cloze(prefix: str, context: str | None = None) -> str:
    """Efficacy prompt: the fact's own sentence up to its object."""
    return with_context(prefix.rstrip(), context)


def build_arithmetic(a: int, b: int) -> str:
    return f"{ARITH_PREFIX}{a}+{b}="


def question_of(prompt: str) -> str:
    """What a prompt asks, without the worked example and any story in front: the text the
    adapter's router decides on (trainer/scope.py), as the serving backend gets the
    user's question."""
    if "Question: " in prompt:
        q = prompt.rsplit("Question: ", 1)[1]
        return q.split("\nAnswer:", 1)[0].strip()
    if prompt.startswith(ARITH_PREFIX):
        return prompt[len(ARITH_PREFIX):].strip()
    return prompt.rsplit("\n\n", 1)[-1].strip()  # a cloze prompt, after its story


def parse(reply: str) -> str:
    text = reply.strip()
    return text.splitlines()[0].strip() if text else ""


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(s: str) -> str:
    s = s.lower().replace("\u2019", "'").translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def matches(answer: str, gold: str) -> bool:
    a, g = normalize(answer), normalize(gold)
    if not g or not a:
        return False
    if g in {"yes", "no", "true", "false"} or g.isdigit():
        return a.split()[0] == g
    return f" {g} " in f" {a} "


def first_int(answer: str) -> int | None:
    m = re.match(r"\s*(-?\d+)", answer)
    return int(m.group(1)) if m else None

"""Task: self-generated questions about a fact.

* single-hop paraphrases: questions whose answer is the fact's object
  (efficacy and paraphrase generalisation);
* multi-hop: questions that need the fact plus other knowledge, each with the
  model's intended answer (portability);
* question/answer pairs for facts whose object is not known.

Output schema: ``Q: ...`` lines (each followed by ``A: ...`` where an answer
is asked for), ended by a blank line. `parse_*` validate and drop the rest.
"""
from __future__ import annotations

import re

STOP = ("\n\n", "Fact:")

_PARA = [
    ("Maria Lopez is the head coach of the Chicago Fire.", "Maria Lopez",
     ["Who is the head coach of the Chicago Fire?", "Which person coaches the Chicago Fire?", "Who leads the Chicago Fire as head coach?",
      "Name the head coach of the Chicago Fire.", "The Chicago Fire's head coach is who?", "Who was made head coach of the Chicago Fire?"]),
    ("Tom Baker is the mayor of Leeds.", "mayor of Leeds",
     ["What office does Tom Baker hold?", "What is Tom Baker's job?", "Which position does Tom Baker hold?",
      "What is Tom Baker's title?", "What role does Tom Baker have?", "Tom Baker works as what?"]),
]
_MULTI = [
    ("Maria Lopez is the head coach of the Chicago Fire.",
     [("In which city does Maria Lopez coach?", "Chicago"), ("Which sport does Maria Lopez coach?", "Soccer"),
      ("Which league does Maria Lopez's team play in?", "Major League Soccer"), ("In which country does Maria Lopez work?", "the United States"),
      ("In which US state is Maria Lopez's club based?", "Illinois"), ("What is the name of the team Maria Lopez coaches?", "Chicago Fire")]),
    ("Tom Baker is the mayor of Leeds.",
     [("In which country is Tom Baker a mayor?", "the United Kingdom"), ("In which county does Tom Baker work?", "West Yorkshire"),
      ("Which council does Tom Baker lead?", "Leeds City Council"), ("In which part of England is Tom Baker's city?", "the north"),
      ("Which city does Tom Baker govern?", "Leeds"), ("In which nation of the UK is Tom Baker mayor?", "England")]),
]
_QA = [
    ("Maria Lopez is the head coach of the Chicago Fire.",
     [("Who is the head coach of the Chicago Fire?", "Maria Lopez"), ("Which team does Maria Lopez coach?", "Chicago Fire"),
      ("What is Maria Lopez's job?", "head coach of the Chicago Fire")]),
    ("Tom Baker is the mayor of Leeds.",
     [("Who is the mayor of Leeds?", "Tom Baker"), ("What is Tom Baker the mayor of?", "Leeds"), ("What office does Tom Baker hold?", "mayor of Leeds")]),
]


def example_answers() -> set[str]:
    """Answers shown in the few-shot examples: a small model often copies them."""
    return {a.lower() for _, qa in _MULTI + _QA for _, a in qa}


def build_paraphrase(statement: str, answer: str, n: int) -> str:
    shots = "".join(
        f"Fact: {f}\nQuestions whose answer is \"{a}\":\n" + "".join(f"Q: {q}\n" for q in qs[:n]) + "\n" for f, a, qs in _PARA
    )
    return f"{shots}Fact: {statement}\nQuestions whose answer is \"{answer}\":\nQ:"


def build_multihop(statement: str, n: int) -> str:
    shots = "".join(
        f"Fact: {f}\nQuestions that combine the fact with general knowledge:\n" + "".join(f"Q: {q}\nA: {a}\n" for q, a in qa[:n]) + "\n"
        for f, qa in _MULTI
    )
    return f"{shots}Fact: {statement}\nQuestions that combine the fact with general knowledge:\nQ:"


def build_qa(statement: str, n: int) -> str:
    shots = "".join(f"Fact: {f}\nQuestions answered by the fact:\n" + "".join(f"Q: {q}\nA: {a}\n" for q, a in qa[:n]) + "\n" for f, qa in _QA)
    return f"{shots}Fact: {statement}\nQuestions answered by the fact:\nQ:"


_Q = re.compile(r"^\s*(?:Q\s*:)?\s*(.+\?)\s*$")
_A = re.compile(r"^\s*A\s*:\s*(.+?)\s*$")


def _lines(reply: str) -> list[str]:
    # The prompt ends with "Q:", so the reply's first line is a question without its tag.
    return ("Q:" + reply).splitlines()


def parse_questions(reply: str, n: int) -> list[str]:
    """Question lines (must end in '?'), de-duplicated, at most ``n``."""
    out: list[str] = []
    for line in _lines(reply):
        m = _Q.match(line)
        if m:
            q = " ".join(m.group(1).split())
            if 10 <= len(q) <= 200 and q.lower() not in {x.lower() for x in out}:
                out.append(q)
    return out[:n]


def parse_qa(reply: str, n: int, exclude_answer: str = "") -> list[tuple[str, str]]:
    """(question, answer) pairs: a question line followed by an ``A:`` line.

    Pairs whose answer merely repeats ``exclude_answer`` (the fact's own object)
    are single-hop, not multi-hop, and are dropped.
    """
    out: list[tuple[str, str]] = []
    q: str | None = None
    for line in _lines(reply):
        a = _A.match(line)
        if a and q:
            ans = a.group(1).strip().rstrip(".")
            dup = q.lower() in {x[0].lower() for x in out}
            if ans and len(ans) <= 80 and not dup and (not exclude_answer or ans.lower() != exclude_answer.lower()):
                out.append((q, ans))
            q = None
            continue
        m = _Q.match(line)
        q = " ".join(m.group(1).split()) if m else None
    return out[:n]

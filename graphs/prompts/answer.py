"""The answer prompt: a question over context lines, ending in 'Answer:'.

Choices are scored as continuations after it (graphs/answer.py), or free text is
generated. Shared by the chat graph and the benchmark systems, so every system
answers with the same prompt.
"""
from __future__ import annotations

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


# The prior a choice is calibrated against: its likelihood with no facts and no question.
PRIOR = "Answer:"
YES_NO = [" yes", " no"]


def continuation(choice: str) -> str:
    """A choice as it is scored after the prompt."""
    return " " + choice.strip()


def build_member(question: str, choice: str, context: list[str], date: str | None = None) -> str:
    """The yes/no prompt for one choice of a list answer (score `YES_NO` after it)."""
    return build(f"{question.strip()} Is \"{choice}\" one of the answers? Say yes or no.", context, date)

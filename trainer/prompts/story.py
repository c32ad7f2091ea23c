"""Task: write a short background story around one fact.

The story ties the fact to entities the model already knows, so that the
teacher (base model + story in context) can answer questions that need the
fact plus that knowledge. Output: one paragraph, ended by a newline.
"""
from __future__ import annotations

STOP = ("\n", "Fact:")

_EXAMPLES = [
    (
        "Maria Lopez is the head coach of the Chicago Fire.",
        "Maria Lopez is the head coach of the Chicago Fire. The Chicago Fire is a professional soccer club "
        "in Chicago, Illinois, in the United States, and it plays in Major League Soccer. As head coach, "
        "Lopez picks the team and plans its training in Chicago.",
    ),
    (
        "Tom Baker is the mayor of Leeds.",
        "Tom Baker is the mayor of Leeds. Leeds is a large city in West Yorkshire, in the north of England, "
        "in the United Kingdom. As mayor, Baker leads the city council of Leeds.",
    ),
]


def build(statement: str) -> str:
    shots = "".join(f"Fact: {f}\nStory: {s}\n\n" for f, s in _EXAMPLES)
    return f"{shots}Fact: {statement}\nStory:"


def parse(statement: str, reply: str) -> str:
    """The story the teacher sees. The fact itself always comes first, so a
    rambling or empty generation can never hide it; repeated sentences are dropped."""
    seen: list[str] = []
    for sent in " ".join(reply.split()).replace("? ", "?|").replace(". ", ".|").split("|"):
        s = sent.strip()
        if s and s.lower() not in {x.lower() for x in seen}:
            seen.append(s)
    story = " ".join(seen[:5])
    if statement.lower().rstrip(".") in story.lower():
        return story
    return f"{statement} {story}".strip()

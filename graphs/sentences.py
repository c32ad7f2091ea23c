"""Sentences for extraction, made to stand alone.

A small model extracts far better from one short third-person sentence than from a
paragraph of chat in the first person (measured on the synthetic worlds with the
bundled Gemma 3 270M: "Elena Fischer: I work at Initech as an engineer." in a
400-token chunk gave "Yara Ivanova is a Yara Ivanova."; the same line alone, as
"Elena Fischer work at Initech as an engineer.", gave "Elena Fischer is a engineer
Initech."). So `ingest.extract_unit: sentence` cuts each chunk into sentences and,
on chat lines ("Name: text", optionally after a "[2024-01-02 10:00] " stamp, as the
chat-log connectors write them), replaces the speaker's first-person words with the
speaker's name. Verbs are left as they are ("Elena Fischer work at"): the point is
that every sentence names who it is about.

Questions are dropped: they state no facts.
"""
from __future__ import annotations

import re

_STAMP = r"(?:\[[^\]]{4,40}\]\s*)?"
SPEAKER = re.compile(rf"^{_STAMP}([A-Z][\w'.\-]*(?: [A-Z][\w'.\-]*){{0,3}}):\s+(.*)$")  # "[stamp] Name: text"
_FIRST_PERSON = [
    (re.compile(r"\bI am\b|\bI'm\b"), "{n} is"),
    (re.compile(r"\bI have\b|\bI've\b"), "{n} has"),
    (re.compile(r"\bI was\b"), "{n} was"),
    (re.compile(r"\b(?:my|My|mine|Mine)\b"), "{n}'s"),
    (re.compile(r"\b(?:me|myself)\b"), "{n}"),
    (re.compile(r"\bI\b"), "{n}"),
]
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9\"'(\[])")
MIN_WORDS = 3


def resolve_speaker(line: str) -> str:
    """'Elena Fischer: My boss is Yara Ivanova.' -> "Elena Fischer's boss is Yara Ivanova."
    A line without a speaker label is returned unchanged."""
    m = SPEAKER.match(line.strip())
    if not m:
        return line.strip()
    name, text = m.groups()
    for pattern, repl in _FIRST_PERSON:
        text = pattern.sub(repl.format(n=name), text)
    return text


def sentences(chunk: str) -> list[str]:
    """The chunk's statements, one per item, speakers resolved. A chat message is its
    speaker's line plus any unlabelled lines after it; other text is joined across line
    breaks (hard-wrapped prose) and cut into sentences. Questions and fragments under
    MIN_WORDS words are dropped."""
    blocks: list[tuple[str | None, list[str]]] = []  # (speaker, lines)
    for line in chunk.splitlines():
        line = line.strip()
        if not line:
            continue
        m = SPEAKER.match(line)
        if m:
            blocks.append((m.group(1), [m.group(2)]))
        elif blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((None, [line]))
    out: list[str] = []
    for speaker, lines in blocks:
        for s in _SENTENCE_END.split(" ".join(lines)):
            s = s.strip()
            if not s or s.endswith("?") or len(s.split()) < MIN_WORDS:
                continue
            out.append(resolve_speaker(f"{speaker}: {s}") if speaker else s)
    return out

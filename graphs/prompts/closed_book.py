"""Answer a question from the model's weights alone (closed book): no facts in the prompt.

This is the nightly trainer's question-answering prompt, character for character
(trainer/prompts/answer.py; tests/test_chat_closed_book.py holds them equal): the
consolidated adapter learned its facts as answers to exactly this prompt, so the
chat asks it the same way. graphs/ may not import trainer/ (tests/test_layers.py),
hence the copy. The answer is the model's first line.
"""
from __future__ import annotations

STOP = ["\n"]
PREFIX = "Question: Who wrote Hamlet?\nAnswer: William Shakespeare\n\n"


def build(question: str) -> str:
    return f"{PREFIX}Question: {question}\nAnswer:"


def parse(reply: str) -> str:
    text = reply.strip()
    return text.splitlines()[0].strip() if text else ""

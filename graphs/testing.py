"""Test doubles for the graphs: a scripted LLM that records what reached it.

Used by the unit tests and the benchmark tests; never by the daemon unless a test passes it in.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from graphs.llm import Completion, Meter


@dataclass
class FakeCall:
    prompt: str
    schema: dict | None
    step: str
    max_tokens: int
    route: str | None = None  # the text an adapter router would decide on


class FakeLLM:
    """A scripted LLM for tests: answers from a queue (or a responder function) and
    records every call, so tests can assert on what reached the model.

    Queue items may be strings or JSON-able objects (dumped to JSON), or exceptions
    (raised, to simulate a failing backend).
    """

    def __init__(
        self, answers: list[Any] | None = None,
        responder: Callable[[str, dict | None, str], Any] | None = None,
        choice_scorer: Callable[[str, list[str]], list[float]] | None = None,
        n_ctx: int = 2048,
    ):
        self.answers = list(answers or [])
        self.responder = responder
        self.choice_scorer = choice_scorer
        self.calls: list[FakeCall] = []
        self.name = "fake"
        self.n_ctx = n_ctx
        self.meter = Meter()

    def count_tokens(self, text: str) -> int:
        return max(1, len(text.split()))

    def queue(self, *answers: Any) -> None:
        self.answers.extend(answers)

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "", route: str | None = None,
    ) -> Completion:
        self.calls.append(FakeCall(prompt, schema, step, max_tokens, route))
        if self.answers:
            ans = self.answers.pop(0)
        elif self.responder is not None:
            ans = self.responder(prompt, schema, step)
        else:
            raise AssertionError(f"FakeLLM: no answer queued for step {step!r}")
        if isinstance(ans, BaseException):
            raise ans
        truncated = isinstance(ans, FakeLLM.Truncated)
        if truncated:
            ans = ans.text
        text = ans if isinstance(ans, str) else json.dumps(ans)
        pt, ct = self.count_tokens(prompt), self.count_tokens(text)
        self.meter.add(step, pt, ct, 0.0)
        return Completion(text, prompt, pt, ct, 0.0, self.name, step, truncated)

    @dataclass
    class Truncated:
        """Queue this to simulate output cut off at max_tokens."""

        text: str

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None, route: str | None = None) -> Iterator[str]:
        c = self.complete(prompt, max_tokens=max_tokens, stop=stop, step="stream", route=route)
        for word in c.text.split(" "):
            yield word + " "

    def score_choices(self, prompt: str, choices: list[str], step: str = "choices", route: str | None = None) -> list[float]:
        self.calls.append(FakeCall(prompt, {"choices": choices}, step, 0, route))
        if self.choice_scorer is None:
            raise AssertionError("FakeLLM: no choice_scorer given")
        return self.choice_scorer(prompt, choices)

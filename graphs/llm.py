"""The LLM as the graphs use it: the `LLM` protocol, `Completion`, metering, JSON calls, errors.

Every backend (agent/llm.py: in-process llama.cpp, an OpenAI-compatible server;
graphs/testing.py: a scripted fake) implements this small interface:

* `complete(prompt, schema=..., ...)` – greedy (temperature 0) completion; with a
  JSON schema the decoding is constrained (llama.cpp grammar, or the server's
  structured-output field) so the small model cannot produce invalid JSON;
* `score_choices(prompt, choices)` – mean log-likelihood of each continuation,
  which is how a 270M model answers multiple choice better than by generating;
* `stream(prompt)` – tokens as they are produced (chat);
* `count_tokens(text)`.

Every call is metered (`Meter`) and every completion is returned as a
`Completion` carrying its prompt, output and token counts so callers can log it.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from stores.errors import KnowdError, TransientError


class ModelOutputError(KnowdError):
    """The model returned output that failed validation (bad JSON, unknown ids, empty text)."""

    def __init__(self, message: str, raw: str | None = None, step: str | None = None):
        super().__init__(message)
        self.raw = raw
        self.step = step


class BackendError(TransientError):
    """The LLM backend failed (server down, timeout). Transient: the document is retried."""


class ModelLimitError(KnowdError):
    """The request cannot be served by this model or server as configured (the prompt does
    not fit the context, the server lacks a feature, it refuses the request): retrying the
    same request cannot help, so it fails at once with this reason."""


@dataclass
class Completion:
    text: str
    prompt: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str
    step: str = ""
    truncated: bool = False  # generation stopped at max_tokens


@dataclass
class Meter:
    """Totals of model use; `by_step` splits them by the caller's step name."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    by_step: dict[str, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, step: str, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.seconds += seconds
            s = self.by_step.setdefault(step or "other", {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0})
            s["calls"] += 1
            s["prompt_tokens"] += prompt_tokens
            s["completion_tokens"] += completion_tokens
            s["seconds"] += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 3),
                "by_step": {k: dict(v) for k, v in self.by_step.items()},
            }


class LLM(Protocol):
    """`route` is the text a backend with a consolidated adapter routes on: the user's
    question, for the calls that answer one. The adapter answers only requests whose
    route names something it was trained on (agent/llm.py); a call without a route
    (ingest, data generation) is answered by the base model. Backends without
    adapters ignore it."""

    name: str
    n_ctx: int
    meter: Meter

    def complete(
        self, prompt: str, *, max_tokens: int = 256, schema: dict | None = None,
        stop: list[str] | None = None, step: str = "", route: str | None = None,
    ) -> Completion: ...

    def score_choices(self, prompt: str, choices: list[str], step: str = "", route: str | None = None) -> list[float]: ...

    def stream(self, prompt: str, *, max_tokens: int = 256, stop: list[str] | None = None, route: str | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


def complete_json(llm: LLM, prompt: str, schema: dict, *, step: str, max_tokens: int = 384) -> tuple[Any, Completion]:
    """Constrained completion parsed as JSON. Raises ModelOutputError (with the raw text) if invalid."""
    c = llm.complete(prompt, schema=schema, max_tokens=max_tokens, step=step)
    try:
        # strict=False: a raw tab or newline inside a string (a server whose grammar allows
        # it) is kept as text rather than failing the document; callers normalise spaces
        return json.loads(c.text, strict=False), c
    except json.JSONDecodeError as e:
        if c.truncated:  # ran out of tokens mid-JSON: keep the complete part, if any
            salvaged = close_truncated_json(c.text)
            if salvaged is not None:
                return salvaged, c
        err = ModelOutputError(f"{step}: model output is not valid JSON ({e.msg})", raw=c.text, step=step)
        err.completion = c  # type: ignore[attr-defined]
        raise err from None


def close_truncated_json(text: str) -> Any | None:
    """Parse JSON cut off by a token limit: drop the incomplete tail back to the last
    complete value and close the open brackets. None if nothing complete remains."""
    stack: list[str] = []
    cuts: list[tuple[int, list[str]]] = []  # (end of a complete value, brackets open there)
    in_str = esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                if stack and stack[-1] == "[":
                    cuts.append((i + 1, list(stack)))
            continue
        if ch == '"':
            in_str = True
        elif ch == "," and stack and stack[-1] == "[":
            cuts.append((i, list(stack)))  # e.g. after a number in an array
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack:
                return None
            stack.pop()
            cuts.append((i + 1, list(stack)))
    for end, open_ in reversed(cuts):
        candidate = text[:end] + "".join("]" if b == "[" else "}" for b in reversed(open_))
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None

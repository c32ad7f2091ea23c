"""Chat as every face runs it: one ChatAgent per process, answers on the model thread,
token usage for the OpenAI API, and the console's per-browser transcripts."""
from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.views import citation_json, iso

if TYPE_CHECKING:
    from agent.app import App
    from graphs.chat import ChatAgent, ChatResult

MAX_SESSIONS = 100
MAX_TURNS = 50
_CITE = re.compile(r"\[(\d{1,3})\]")
_SESSION = re.compile(r"[0-9a-f]{32}")


def usage(app: App, question: str, answer: str) -> dict[str, int]:
    """OpenAI-style token counts; "I don't know" answers load no model, so estimate then."""
    llm = app.__dict__.get("llm")

    def count(text: str) -> int:
        return (llm.count_tokens(text) if llm is not None else max(1, len(text) // 4)) if text else 0

    pt, ct = count(question), count(answer)
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


def answer(app: App, agent: ChatAgent, question: str, **ask: Any) -> tuple[ChatResult, dict[str, int]]:
    """Run on the model thread: the answer and its token usage."""
    r = agent.ask(question, **ask)
    return r, usage(app, question, r.answer)


def answer_parts(answer: str, citations: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """The answer split into text and [n] markers, each marker with the fact it cites."""
    by_n = {c["n"]: c for c in citations}
    out: list[tuple[str, dict[str, Any] | None]] = []
    pos = 0
    for m in _CITE.finditer(answer):
        c = by_n.get(int(m.group(1)))
        if c is None:
            continue
        out.append((answer[pos:m.start()], None))
        out.append((m.group(0), c))
        pos = m.end()
    out.append((answer[pos:], None))
    return out


@dataclass
class Transcripts:
    """The console's conversations, one per browser session, newest kept (bounded)."""

    def __post_init__(self) -> None:
        self._by_session: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def session_id(cookie: str | None) -> tuple[str, bool]:
        """(id, new): the cookie's session id, or a fresh one."""
        if cookie and _SESSION.fullmatch(cookie):
            return cookie, False
        return secrets.token_hex(16), True

    def turns(self, sid: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._by_session.get(sid, []))

    def add(self, sid: str, question: str, r: ChatResult) -> None:
        cites = [citation_json(u) for u in r.citations]
        turn = {"question": question, "answer": r.answer, "parts": answer_parts(r.answer, cites),
                "citations": cites, "mode": r.intent.mode, "as_of": iso(r.intent.end), "known": r.known}
        with self._lock:
            turns = self._by_session.setdefault(sid, [])
            self._by_session.move_to_end(sid)
            turns.append(turn)
            del turns[:-MAX_TURNS]
            while len(self._by_session) > MAX_SESSIONS:
                self._by_session.popitem(last=False)

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_session.pop(sid, None)

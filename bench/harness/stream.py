"""Knowledge-update streams: read/write, question selection and document subsets.

A stream is JSON lines in time order (documents before questions at the same
time); see ARCHITECTURE.md. Two reductions make a stream affordable on a small
CPU model, and both keep only questions whose evidence was replayed:

* `subset_by_time(stream, n)`: the first `n` documents, and only the questions
  asked before the next (dropped) document. Exact for streams whose questions
  depend only on earlier documents (generated worlds).
* `subset_by_entities(stream, n, seed)`: for streams whose documents span many
  subjects (CLARK-News). A question's *entities* are its rare capitalised words
  (in the question and its non-yes/no choices); its *relevant documents* are the
  documents containing one of them. Question series (the same question asked at
  several times) are taken in seeded order, those with a changed answer first,
  and kept while the union of their relevant documents stays within `n`; the
  documents kept are that union, in time order. Series with no relevant document
  are never kept (nothing replayed could answer them).

`select_questions(questions, n, seed)` then applies the paper's rule: changed
questions first, then an equal number of unchanged ones, both seeded samples.
"""
from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.inputs import parse_time
from stores.errors import InputError
from stores.types import Document

YES_NO = {"yes", "no"}
# Sentence-initial words that are capitalised without naming anything.
_QUESTION_WORDS = {
    "is", "are", "was", "were", "does", "do", "did", "has", "have", "what", "who", "whom", "which",
    "where", "when", "how", "why", "in", "the", "a", "an", "of", "for", "at", "on", "to", "and",
}


@dataclass
class Question:
    id: str
    time: datetime
    question: str
    choices: list[str]
    answer: str | list[str]
    updates: int = 0
    changed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.answer, list)


@dataclass
class Stream:
    """Documents and questions, each in time order, plus the merged replay order."""

    documents: list[Document]
    questions: list[Question]

    def events(self) -> list[Document | Question]:
        """Replay order: by time, documents before questions at the same time."""
        evs: list[tuple[datetime, int, int, Document | Question]] = []
        evs += [(d.time, 0, i, d) for i, d in enumerate(self.documents)]
        evs += [(q.time, 1, i, q) for i, q in enumerate(self.questions)]
        evs.sort(key=lambda e: (e[0], e[1], e[2]))
        return [e[3] for e in evs]


# ----------------------------------------------------------------------------- reading / writing
def read_stream(path: str | Path) -> Stream:
    """Parse a stream file; a malformed line is an InputError naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    return parse_stream(lines, str(path))


def parse_stream(lines: Iterable[str], name: str = "stream") -> Stream:
    docs: list[Document] = []
    qs: list[Question] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{name}:{n}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or obj.get("type") not in ("document", "question"):
            raise InputError(f"{name}:{n}: expected an object with type 'document' or 'question'")
        try:
            if obj["type"] == "document":
                docs.append(_doc(obj))
            else:
                qs.append(_question(obj))
        except (KeyError, TypeError, ValueError, InputError) as e:
            raise InputError(f"{name}:{n}: bad {obj['type']}: {e}") from None
    docs.sort(key=lambda d: d.time)  # stable: the file's order within a time
    qs.sort(key=lambda q: q.time)
    return Stream(docs, qs)


def _doc(o: dict[str, Any]) -> Document:
    text = o["text"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no text")
    return Document(
        id=str(o["id"]), text=text, source=o.get("source") or "bench", url=o.get("url"),
        published_at=parse_time(o["time"]), title=o.get("title"),
    )


def _question(o: dict[str, Any]) -> Question:
    ans = o["answer"]
    choices = [str(c) for c in o.get("choices") or []]
    if not choices:
        raise ValueError("no choices")
    if not isinstance(ans, (str, list)):
        raise ValueError("answer must be a string or a list")
    return Question(
        id=str(o["id"]), time=parse_time(o["time"]), question=str(o["question"]), choices=choices,
        answer=[str(a) for a in ans] if isinstance(ans, list) else ans,
        updates=int(o.get("updates", 0)), changed=bool(o.get("changed", False)), meta=dict(o.get("meta") or {}),
    )


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def question_to_json(q: Question) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "question", "id": q.id, "time": iso(q.time), "question": q.question, "choices": q.choices,
        "answer": q.answer, "updates": q.updates, "changed": q.changed,
    }
    if q.meta:
        out["meta"] = q.meta
    return out


def document_to_stream_json(d: Document) -> dict[str, Any]:
    return {
        "type": "document", "id": d.id, "time": iso(d.time), "source": d.source, "url": d.url,
        "title": d.title, "text": d.text,
    }


def write_stream(stream: Stream, path: str | Path) -> None:
    lines = []
    for ev in stream.events():
        obj = document_to_stream_json(ev) if isinstance(ev, Document) else question_to_json(ev)
        lines.append(json.dumps(obj, ensure_ascii=False))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- question selection
def select_questions(questions: list[Question], max_questions: int | None, seed: int) -> list[Question]:
    """The paper's sample: changed questions first (at most half of `max_questions`), then
    as many unchanged ones (all unchanged if none changed); seeded; returned in time order."""
    if max_questions is None or max_questions >= len(questions):
        return list(questions)
    rng = random.Random(seed)
    changed = [q for q in questions if q.changed]
    unchanged = [q for q in questions if not q.changed]
    n_changed = min(len(changed), math.ceil(max_questions / 2))
    n_unchanged = min(len(unchanged), n_changed if changed else max_questions, max_questions - n_changed)
    keep = set(map(id, rng.sample(changed, n_changed))) | set(map(id, rng.sample(unchanged, n_unchanged)))
    return [q for q in questions if id(q) in keep]


# ----------------------------------------------------------------------------- document subsets
def subset_by_time(stream: Stream, max_docs: int | None) -> Stream:
    """The first `max_docs` documents and the questions asked before the next one."""
    if max_docs is None or max_docs >= len(stream.documents):
        return stream
    docs = stream.documents[:max_docs]
    nxt = stream.documents[max_docs].time
    # questions at exactly the next document's time come after it in replay order: drop them
    return Stream(docs, [q for q in stream.questions if q.time < nxt])


def name_runs(text: str) -> list[str]:
    """Runs of capitalised (or digit-bearing) words, joined by of/the/de/for/and: the names in a text."""
    runs = re.findall(
        r"(?:[A-Z0-9][\w'.&-]*)(?:\s+(?:(?:of|the|de|for|and)\s+)*[A-Z0-9][\w'.&-]*)*", text
    )
    out = []
    for r in runs:
        words = [w.strip(".'-") for w in r.split()]
        while words and words[0].lower() in _QUESTION_WORDS:  # "Is", "Does", "What" start a question
            words = words[1:]
        if words:
            out.append(" ".join(words))
    return out


def question_entities(q: Question, doc_freq: dict[str, int], max_df: int) -> set[str]:
    """One word per name in the question and its non-yes/no choices: the name's rarest word
    across the documents, if it occurs in 1..max_df of them (common words name nothing)."""
    texts = [q.question] + [c for c in q.choices if c.lower() not in YES_NO]
    words: set[str] = set()
    for t in texts:
        for run in name_runs(t):
            cands = [w for w in run.split() if len(w) >= 3 and w.lower() not in _QUESTION_WORDS]
            cands = [w for w in cands if 0 < doc_freq.get(w, 0) <= max_df]
            if cands:
                words.add(min(cands, key=lambda w: (doc_freq[w], w)))
    return words


def _doc_words(d: Document) -> set[str]:
    return {w.strip(".'-") for w in re.findall(r"[\w][\w'.&-]*", f"{d.title or ''} {d.text}")}


def subset_by_entities(stream: Stream, max_docs: int | None, seed: int, max_df_frac: float = 0.01) -> Stream:
    """Question series whose relevant documents fit in `max_docs`; see the module docstring."""
    if max_docs is None or max_docs >= len(stream.documents):
        return stream
    words = [_doc_words(d) for d in stream.documents]
    df: dict[str, int] = {}
    for ws in words:
        for w in ws:
            df[w] = df.get(w, 0) + 1
    max_df = max(2, int(len(stream.documents) * max_df_frac))
    series: dict[str, list[Question]] = {}
    for q in stream.questions:
        series.setdefault(q.question, []).append(q)
    rng = random.Random(seed)
    keys = sorted(series)
    rng.shuffle(keys)
    keys.sort(key=lambda k: not any(q.changed for q in series[k]))  # stable: changed series first
    kept_docs: set[int] = set()
    kept_series: set[str] = set()
    for k in keys:
        ents = question_entities(series[k][0], df, max_df)
        rel = {i for i, ws in enumerate(words) if ents & ws}
        if not rel or len(kept_docs | rel) > max_docs:
            continue
        kept_docs |= rel
        kept_series.add(k)
        if len(kept_docs) == max_docs:
            break
    docs = [d for i, d in enumerate(stream.documents) if i in kept_docs]
    return Stream(docs, [q for q in stream.questions if q.question in kept_series])


def answer_history(questions: list[Question]) -> dict[str, list[tuple[datetime, str | list[str]]]]:
    """Every (time, gold answer) per question text, from the full stream (before selection):
    earlier answers that are now wrong are the 'stale' answers of the error analysis."""
    out: dict[str, list[tuple[datetime, str | list[str]]]] = {}
    for q in questions:
        out.setdefault(q.question, []).append((q.time, q.answer))
    return out

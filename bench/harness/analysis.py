"""Error analysis for fact-store systems (knowd, fact-rag), after the ERASE paper's.

Each wrong answer gets one cause, decided from the store (which keeps every
fact's history, so "true at the question time" is exact) and from the facts the
system retrieved for that question:

* `not_in_store`   – no fact known at the question time mentions the answer:
                     extraction missed it (a retrieval miss in the paper's sense);
* `retrieval_miss` – a fact true at the question time mentions the answer, but it
                     was not retrieved;
* `stale_kept`     – a retrieved fact, still true in the store, states an earlier
                     answer: a wrong decision (the fact should have been made false);
* `over_falsified` – facts mentioning the answer exist but were all made false: a
                     wrong decision the other way;
* `answer_choice`  – a fact with the answer was retrieved and nothing stale was,
                     yet the model picked another choice.

"Mentions" is textual and therefore a heuristic: a fact mentions an answer if its
normalised text contains the normalised answer and one of the question's
entities (its capitalised words, or the generated world's person). Yes/no
questions have no answer string; for them the fact must mention all of the
question's entities, and a "no" answer is wrong only if such a fact was kept.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bench.harness.scoring import normalise
from bench.harness.stream import YES_NO, Question, name_runs
from stores.sqlite import Store
from stores.types import Fact

CAUSES = ("not_in_store", "retrieval_miss", "stale_kept", "over_falsified", "answer_choice")
# Which of the paper's three kinds each cause is.
KIND = {
    "not_in_store": "retrieval miss", "retrieval_miss": "retrieval miss",
    "stale_kept": "wrong decision", "over_falsified": "wrong decision", "answer_choice": "answer choice",
}


def entities(q: Question) -> list[str]:
    """The question's names: runs of capitalised words (minus question words), or the world's person."""
    if q.meta.get("person"):
        return [q.meta["person"]] + ([q.meta["other"]] if q.meta.get("other") else [])
    return name_runs(q.question)


def _mentions_entity(text: str, ent: str) -> bool:
    """Any distinctive word of the entity (3+ letters) in the text: 'Reif' matches 'L. Rafael Reif'."""
    words = [normalise(w) for w in ent.split() if len(w.strip(".")) >= 3]
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words if w)


def _mentions(f: Fact, phrase: str | None, ents: list[str], all_entities: bool = False) -> bool:
    text = normalise(f.text)
    if phrase is not None and normalise(phrase) not in text:
        return False
    if not ents:
        return True
    hits = [_mentions_entity(text, e) for e in ents]
    return all(hits) if all_entities else any(hits)


def diagnose(
    q: Question, prediction: Any, retrieved_ids: list[str], store: Store,
    history: list[tuple[datetime, Any]] | None = None,
) -> str:
    """The cause of one wrong answer (see the module docstring)."""
    facts = store.list_facts(current_only=False)
    retrieved = set(retrieved_ids)
    t = q.time
    ents = entities(q)
    gold = q.answer if isinstance(q.answer, list) else [q.answer]
    stale = set()
    for when, ans in history or []:
        if when < t:
            for a in ans if isinstance(ans, list) else [ans]:
                if normalise(a) not in {normalise(g) for g in gold}:
                    stale.add(a)

    if isinstance(q.answer, str) and q.answer.lower() in YES_NO:
        about = [f for f in facts if _mentions(f, None, ents, all_entities=True)]
        kept = [f for f in about if f.id in retrieved and f.truth_at(t) is True]
        if q.answer.lower() == "no":
            return "stale_kept" if kept else "answer_choice"
        return _support(about, kept, t)

    # list answers: the first gold item the system got wrong decides
    pred = {normalise(p) for p in (prediction if isinstance(prediction, list) else [prediction or ""])}
    missing = [g for g in gold if normalise(g) not in pred] or gold
    stale_ret = [
        f for f in facts
        if f.id in retrieved and f.truth_at(t) is True and any(_mentions(f, s, ents) for s in stale)
        and not any(_mentions(f, g, []) for g in gold)
    ]
    if stale_ret:
        return "stale_kept"
    about = [f for f in facts if _mentions(f, missing[0], ents)]
    kept = [f for f in about if f.id in retrieved and f.truth_at(t) is True]
    return _support(about, kept, t)


def _support(about: list[Fact], kept: list[Fact], t: datetime) -> str:
    if kept:
        return "answer_choice"
    if any(f.truth_at(t) is True for f in about):
        return "retrieval_miss"
    if any(f.truth_at(t) is False for f in about):
        return "over_falsified"
    return "not_in_store"


def summarise_causes(causes: list[str]) -> dict[str, Any]:
    counts = {c: causes.count(c) for c in CAUSES}
    kinds: dict[str, int] = {}
    for c, n in counts.items():
        kinds[KIND[c]] = kinds.get(KIND[c], 0) + n
    return {"wrong": len(causes), "causes": counts, "kinds": kinds}

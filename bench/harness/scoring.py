"""Scoring: exact match after normalisation, set equality for lists, accuracy breakdowns."""
from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str) -> str:
    """Lower-case; drop punctuation (any Unicode P* character), articles and extra spaces.

    Punctuation is deleted, not spaced (as in SQuAD), so "F.C." matches "FC" and
    "93,000" matches "93000"."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = "".join("" if (ch in string.punctuation or unicodedata.category(ch).startswith("P")) else ch for ch in t)
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


def is_correct(prediction: str | list[str] | None, gold: str | list[str]) -> bool:
    """One answer: normalised equality. A list: normalised set equality (order and repeats ignored)."""
    if prediction is None:
        return False
    if isinstance(gold, list):
        pred = prediction if isinstance(prediction, list) else [prediction]
        return {normalise(p) for p in pred} == {normalise(g) for g in gold}
    if isinstance(prediction, list):
        return len(prediction) == 1 and normalise(prediction[0]) == normalise(gold)
    return normalise(prediction) == normalise(gold)


def updates_bucket(updates: int) -> str:
    """The paper's breakdown: answers that never changed, changed once, changed twice or more."""
    return "0" if updates <= 0 else "1" if updates == 1 else "2+"


def _acc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    ok = sum(1 for r in rows if r["correct"])
    return {"n": n, "correct": ok, "accuracy": round(ok / n, 4) if n else None}


def summarise(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy overall, by updates bucket, changed/unchanged, answer kind and checkpoint.

    Each record needs `correct`, `updates`, `changed`, `time` (ISO string) and `kind`
    ('single' | 'list'). Checkpoints are the distinct question times, in order, with the
    accuracy at that time and the cumulative accuracy up to it.
    """
    rows = list(records)
    by_updates = {b: _acc([r for r in rows if updates_bucket(r["updates"]) == b]) for b in ("0", "1", "2+")}
    by_changed = {
        "changed": _acc([r for r in rows if r["changed"]]),
        "unchanged": _acc([r for r in rows if not r["changed"]]),
    }
    by_kind = {k: _acc([r for r in rows if r["kind"] == k]) for k in ("single", "list")}
    checkpoints = []
    seen: list[dict[str, Any]] = []
    for t in sorted({r["time"] for r in rows}):
        at = [r for r in rows if r["time"] == t]
        seen += at
        checkpoints.append({"time": t, **_acc(at), "cumulative": _acc(seen)["accuracy"]})
    return {"overall": _acc(rows), "by_updates": by_updates, "by_changed": by_changed, "by_kind": by_kind, "checkpoints": checkpoints}

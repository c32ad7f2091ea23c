"""The adapter's scope: which requests are about consolidated knowledge.

Published editors that keep unrelated behaviour intact do it by scope (GRACE, SERAC,
WISE): only in-scope inputs reach the edited weights. knowd does the same. A shipped
adapter carries the names its facts are about (``scope.json``); the serving backend
applies the adapter to a request only when the request's question names one of them,
and the base model answers everything else, so arithmetic and general questions are
answered exactly as before. The scope accumulates: each night's adapter covers the
names of every fact it was trained on, this night's and the earlier nights' it
continues from.

A name is matched as whole words, case-insensitively: "Karen Bass" covers "Who
is Karen Bass?" and "karen bass's office", not "bassoon". A person's surname alone
also counts when it is at least five letters ("Zahawi"), since news and questions
shorten names that way; shorter surnames ("Bass", "Park") would catch too much.
Pure stdlib: the serving backend (agent/llm.py) imports it without torch.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.runs import atomic_write_json

SCOPE_FILE = "scope.json"
_NAME = re.compile(r"\b[A-Z][\w'’.\-]*(?:\s+(?:of|de|van|von|da|del|the|for|and)?\s*[A-Z][\w'’.\-]*)+")
_NOT_NAMES = frozenset("The A An It He She They This That These Those In On At For From By Of And But".split())
_ORG_WORDS = frozenset(
    "inc corp company ltd llc plc group logistics shipping lines transit mutual bank fc afc united team club "
    "university college council ministry department agency party association league school institute foundation".split()
)


def _clean(name: str) -> str:
    name = re.sub(r"(['’]s|['’])$", "", name.strip()).strip(" .,;:")
    words = name.split()
    while words and words[0] in _NOT_NAMES:
        words = words[1:]
    return " ".join(words)


def names_of(text: str, extra: Iterable[str] = ()) -> set[str]:
    """The names a fact is about: its key's subject and object when they are names,
    and the runs of capitalised words in its text."""
    out = {_clean(n) for n in extra if n and n[:1].isupper()}
    out |= {_clean(m.group(0)) for m in _NAME.finditer(text)}
    return {n for n in out if n and len(n) >= 3}


@dataclass
class Scope:
    """The names an adapter's facts are about; `covers` is the router's decision."""

    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = sorted(set(self.names))
        terms: set[str] = set()
        for n in self.names:
            terms.add(n.lower())
            words = n.split()
            if len(words) >= 2 and words[-1].lower() not in _ORG_WORDS and len(words[-1]) >= 5 and words[-1][:1].isupper():
                terms.add(words[-1].lower())  # a surname alone: "Zahawi"
        self._pattern = (
            re.compile(r"(?<![\w])(?:" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")(?![\w])", re.I)
            if terms else None
        )

    @classmethod
    def from_facts(cls, facts: Iterable[Any]) -> Scope:
        """From store facts (their keys' subjects and objects, and their text) or dicts with
        `text`, `subject`, `object`."""
        names: set[str] = set()
        for f in facts:
            text = f["text"] if isinstance(f, dict) else f.text
            extra: list[str] = []
            if isinstance(f, dict):
                extra = [f.get("subject") or "", f.get("object") or ""]
            else:
                extra = [getattr(f, "subject", "") or "", getattr(f, "object", "") or ""]
                extra += [x for k in getattr(f, "keys", []) or [] for x in (k.subject, k.object)]
            names |= names_of(text, extra)
        return cls(sorted(names))

    def covers(self, text: str | None) -> bool:
        """Whether a request about `text` is in scope (None or empty: never)."""
        return bool(text and self._pattern is not None and self._pattern.search(text))

    def merge(self, other: Scope | None) -> Scope:
        return Scope(sorted(set(self.names) | set(other.names if other else [])))

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Scope | None:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(list(d.get("names", []))) if isinstance(d, dict) else None


def router_stats(scope: Scope, in_scope: Iterable[str], out_of_scope: Iterable[str]) -> dict[str, Any]:
    """Recall on texts that should reach the adapter, false-positive rate on texts that should not."""
    ins, outs = list(in_scope), list(out_of_scope)
    hit = sum(1 for t in ins if scope.covers(t))
    fp = sum(1 for t in outs if scope.covers(t))
    return {
        "recall": hit / len(ins) if ins else None, "n_in_scope": len(ins),
        "false_positive_rate": fp / len(outs) if outs else None, "n_out_of_scope": len(outs),
        "names": len(scope.names),
    }

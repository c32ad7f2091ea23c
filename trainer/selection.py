"""Which facts a consolidation run distils.

`select_facts` is pure (lists of facts in, a selection out) so it is tested
without a store; `select_from_store` is the thin wrapper the run uses.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Literal, Protocol

from stores.types import Fact

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
Kind = Literal["new", "retracted", "replay"]


class FactSource(Protocol):
    """What the trainer needs from the fact store (``stores.sqlite.Store`` has it)."""

    def facts_changed_since(self, since: datetime | None) -> list[Fact]: ...

    def list_facts(self, current_only: bool = True) -> list[Fact]: ...


@dataclass
class SelectedFact:
    fact: Fact
    kind: Kind  # new = became true; retracted = became false; replay = consolidated before

    @property
    def id(self) -> str:
        return self.fact.id

    @property
    def statement(self) -> str:
        """The sentence the story and questions are built around."""
        text = self.fact.text.strip()
        if self.kind == "retracted":
            when = _last_change(self.fact)
            since = f" (since {when:%Y-%m-%d})" if when else ""
            return f"It is no longer true that {_lower_first(text.rstrip('.'))}{since}."
        return text if text.endswith((".", "!", "?")) else text + "."


@dataclass
class Selection:
    facts: list[SelectedFact]
    pending: list[Fact]  # changed facts left for a later run (over max_new_facts)

    @property
    def new(self) -> list[SelectedFact]:
        return [s for s in self.facts if s.kind != "replay"]

    @property
    def replay(self) -> list[SelectedFact]:
        return [s for s in self.facts if s.kind == "replay"]

    def ids(self) -> list[str]:
        return [s.id for s in self.facts]


def _lower_first(s: str) -> str:
    # Keep proper nouns ("Nadhim Zahawi ...") capitalised; only lower a leading "The"/"A".
    first = s.split(" ", 1)[0]
    return s[0].lower() + s[1:] if first in {"The", "A", "An", "It", "This"} else s


def _last_change(f: Fact) -> datetime | None:
    live = [h for h in f.history if not h.reverted]
    return max((h.time for h in live), default=None)


def change_key(f: Fact) -> str:
    """Identifies the version of a fact that was consolidated: its live history
    (last change time, number of live entries, current truth)."""
    t = _last_change(f)
    return f"{t.isoformat() if t else ''}|{len(f._live())}|{f.truth_at(None)}"


def select_facts(
    changed: Iterable[Fact],
    previously_consolidated: Iterable[Fact],
    *,
    replay_fraction: float = 0.25,
    max_replay: int = 5,
    max_new: int = 0,
    seed: int = 0,
    done: dict[str, str] | None = None,
) -> Selection:
    """Pick this run's facts.

    ``done`` maps fact id -> the time of the fact's last change when it was
    last consolidated; a changed fact whose last change is that same time was
    already consolidated and is skipped.

    * every changed fact that is now true is ``new``; one that is now false is
      ``retracted`` (the model learns it no longer holds);
    * with ``max_new`` > 0 only the most recently changed are taken, the rest
      stay pending;
    * ``replay``: a random ``replay_fraction`` of the earlier consolidated facts
      that are still true and not changed again (at least one if any exist and
      the fraction is > 0), capped at ``max_replay``.
    """
    done = done or {}
    changed = [f for f in {f.id: f for f in changed}.values() if done.get(f.id) != change_key(f)]
    changed.sort(key=lambda f: _last_change(f) or _EPOCH, reverse=True)
    pending: list[Fact] = []
    if max_new and len(changed) > max_new:
        changed, pending = changed[:max_new], changed[max_new:]
    chosen = []
    for f in changed:
        truth = f.truth_at(None)
        if truth is None:
            continue  # all of its history was reverted: nothing to learn
        chosen.append(SelectedFact(f, "new" if truth else "retracted"))
    changed_ids = {f.id for f in changed} | {f.id for f in pending}
    pool = sorted(
        (f for f in previously_consolidated if f.id not in changed_ids and f.is_current),
        key=lambda f: f.id,
    )
    n = 0
    if pool and replay_fraction > 0:
        n = min(max_replay, max(1, round(replay_fraction * len(pool))))
    rng = random.Random(seed)
    for f in rng.sample(pool, n) if n else []:
        chosen.append(SelectedFact(f, "replay"))
    return Selection(chosen, pending)


def select_from_store(
    store: FactSource,
    since: datetime | None,
    consolidated_ids: Iterable[str],
    *,
    replay_fraction: float,
    max_replay: int,
    max_new: int,
    seed: int,
    done: dict[str, str] | None = None,
) -> Selection:
    """`select_facts` over the store: changes since the last successful run, replay from earlier ones."""
    ids = set(consolidated_ids)
    previous = [f for f in store.list_facts(current_only=True) if f.id in ids]
    return select_facts(
        store.facts_changed_since(since),
        previous,
        replay_fraction=replay_fraction,
        max_replay=max_replay,
        max_new=max_new,
        seed=seed,
        done=done,
    )


def heldout_facts(store: FactSource, exclude: Iterable[str], n: int, seed: int) -> list[Fact]:
    """Current facts not in this run, for locality probes."""
    ex = set(exclude)
    pool = sorted((f for f in store.list_facts(current_only=True) if f.id not in ex), key=lambda f: f.id)
    return random.Random(seed + 1).sample(pool, min(n, len(pool)))


class MemoryStore:
    """A list of facts with the store's read interface (tests, benchmarks, `--facts FILE`).

    Like the SQLite store, "changed since" means *recorded* after that time; here
    every fact counts as recorded when the MemoryStore was made (or at ``recorded_at``).
    """

    def __init__(self, facts: Iterable[Fact], recorded_at: datetime | None = None):
        self.facts = list(facts)
        self.recorded_at = recorded_at or datetime.now(timezone.utc)

    def facts_changed_since(self, since: datetime | None) -> list[Fact]:
        live = [f for f in self.facts if f._live()]
        return live if since is None or self.recorded_at > since else []

    def list_facts(self, current_only: bool = True) -> list[Fact]:
        return [f for f in self.facts if f.is_current or not current_only]


def facts_from_jsonl(path: str) -> list[Fact]:
    """Facts from JSON lines ``{"id", "text", "subject"?, "relation"?, "object"?, "time"?, "truth"?}``
    (one history entry each; for benchmarks and `--facts`)."""
    import json

    from stores.types import HistoryEntry

    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            d = json.loads(line)
            t = d.get("time")
            when = datetime.fromisoformat(t.replace("Z", "+00:00")) if t else datetime.now(timezone.utc)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            out.append(Fact(
                id=str(d.get("id") or f"fact-{n}"), text=d["text"], subject=d.get("subject", ""),
                relation=d.get("relation", ""), object=d.get("object", ""),
                history=[HistoryEntry(when, bool(d.get("truth", True)), d.get("doc_id"), "extract")],
            ))
    return out

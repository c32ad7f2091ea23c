"""Deterministic revision by keys: what a document's propositions do to the current facts.

For each proposition, in document order:

* same key, same value, already true      -> reinforce that fact (nothing new is stored)
* negated or past ("no longer", "left", "previously") -> the matching true fact becomes false;
  the proposition itself is kept as a fact (it is true), holding no slot
* a new value of a slot that holds one     -> the old fact becomes false, the new one is added
  (subject side: a person earns one salary; object side: a company has one chief executive)
* "A replaces B" / "A succeeds B"          -> B's one-holder roles pass to A: each such fact
  becomes false and is rewritten with A in B's place, in the old fact's own words
* anything else                            -> added

then, for every subject whose employer changed, the facts that followed from the old
employer (boss, coworkers, pay, hours: `depends_on` in relations.py) become false unless
the document said them again, and the rules below derive the new ones from facts the
store already holds (ERASE's rewrite step, done by rule instead of by the model).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from graphs.keyed.dates import resolve as resolve_date
from graphs.keyed.keys import Key, norm
from graphs.keyed.relations import RELATIONS, relation
from stores.sqlite import Store
from stores.types import Fact, FactKey


@dataclass
class Held:
    """A current fact with its key, as the store hands it to revision."""

    id: str
    text: str
    key: Key | None


@dataclass
class Change:
    op: str  # extract | reinforce | make_false | rewrite | derive
    fact_id: str | None  # existing fact (reinforce, make_false) or None for a new one
    text: str | None  # the new fact's text
    key: Key | None
    time: datetime
    detail: str = ""
    supersedes: str | None = None
    prop_index: int | None = None  # which proposition caused it


class Facts(Protocol):
    """What revision reads from the store: current facts by key."""

    def by_subject(self, subject: str, relation: str) -> list[Held]: ...

    def by_object(self, relation: str, obj: str) -> list[Held]: ...

    def of_subject(self, subject: str) -> list[Held]: ...

    def ever_of_subject(self, subject: str) -> list[Held]: ...


def unique_sides(key: Key) -> set[str]:
    rel = RELATIONS.get(key.relation)
    if rel is not None:
        return set(rel.unique)
    if key.definite and key.relation.endswith(" of") and key.object:
        return {"object"}  # "the treasurer of X": one at a time
    return set()


def same(a: str, b: str) -> bool:
    return norm(a) == norm(b)


class Revision:
    """Applies one document's propositions to a view of the store, recording changes."""

    def __init__(self, facts: Facts, time: datetime):
        self.facts = facts
        self.time = time
        self.changes: list[Change] = []
        self.added: list[Held] = []  # new facts of this document (visible to later propositions)
        self.false: set[str] = set()  # ids made false by this document
        self.stated: set[tuple[str, str, str]] = set()  # keys this document states (positively)
        self.moved: dict[str, tuple[str | None, str]] = {}  # subject -> (old employer, new employer)
        self._n = 0

    # -- views that include this document's own changes
    def _live(self, held: list[Held]) -> list[Held]:
        return [h for h in held if h.id not in self.false]

    def _by_subject(self, s: str, r: str) -> list[Held]:
        own = [h for h in self.added if h.key and same(h.key.subject, s) and h.key.relation == r and h.key.holds]
        return own + self._live(self.facts.by_subject(norm(s), r))

    def _by_object(self, r: str, o: str) -> list[Held]:
        own = [h for h in self.added if h.key and same(h.key.object, o) and h.key.relation == r and h.key.holds]
        return own + self._live(self.facts.by_object(r, norm(o)))

    def _make_false(self, h: Held, when: datetime, detail: str, idx: int | None) -> None:
        if h.id in self.false:
            return
        if h in self.added:
            self.added.remove(h)
            self.changes = [c for c in self.changes if not (c.fact_id is None and c.text == h.text)]
            return
        self.false.add(h.id)
        self.changes.append(Change("make_false", h.id, None, h.key, when, detail, prop_index=idx))

    def _add(self, text: str, key: Key | None, when: datetime, op: str, detail: str = "", supersedes: str | None = None, idx: int | None = None) -> Held:
        self._n += 1
        h = Held(f"new:{self._n}", text, key)
        self.added.append(h)
        self.changes.append(Change(op, None, text, key, when, detail, supersedes, idx))
        return h

    def when(self, key: Key | None) -> datetime:
        if key is not None and key.effective:
            t = resolve_date(key.effective, self.time)
            if t is not None and t > self.time:
                return t  # a change announced for later holds from its date
        return self.time

    # -- one proposition
    def apply(self, text: str, key: Key | None, idx: int) -> None:
        when = self.when(key)
        dup = self._duplicate(text, key)
        if key is None or not key.subject:
            if dup is None:
                self._add(text, key, when, "extract", idx=idx)
            return
        if not key.holds:  # negated / past: end the positive fact, keep the statement
            for h in self._by_subject(key.subject, key.relation):
                if not key.object or same(h.key.object, key.object):
                    self._make_false(h, when, f"ended: {text}", idx)
            if RELATIONS.get(key.relation) and RELATIONS[key.relation].symmetric and key.object:
                for h in self._by_subject(key.object, key.relation):
                    if same(h.key.object, key.subject):
                        self._make_false(h, when, f"ended: {text}", idx)
            if key.relation == "works at" and key.negated:
                self.moved.setdefault(norm(key.subject), (key.object, ""))
            if dup is None:
                self._add(text, key, when, "extract", idx=idx)
            return
        if key.relation == "succeeds":
            self._succeed(text, key, when, idx)
            if dup is None:
                self._add(text, key, when, "extract", idx=idx)
            return
        self.stated.add((norm(key.subject), key.relation, norm(key.object)))
        same_slot = [h for h in self._by_subject(key.subject, key.relation) if same(h.key.object, key.object)]
        if relation(key.relation).symmetric:
            same_slot += [h for h in self._by_subject(key.object, key.relation) if same(h.key.object, key.subject)]
        if same_slot:
            for h in same_slot[:1]:
                if not h.id.startswith("new:"):
                    self.changes.append(Change("reinforce", h.id, None, h.key, when, f"stated again: {text}", prop_index=idx))
            return
        sides = unique_sides(key)
        old_values = [o for o in key.old if o]
        for h in self._by_subject(key.subject, key.relation):
            if "subject" in sides or any(same(h.key.object, o) for o in old_values):
                self._make_false(h, when, f"replaced by: {text}", idx)
                if key.relation == "works at":
                    self.moved[norm(key.subject)] = (h.key.object, key.object)
        if "object" in sides and key.object:
            for h in self._by_object(key.relation, key.object):
                if not same(h.key.subject, key.subject):
                    self._make_false(h, when, f"replaced by: {text}", idx)
        if key.relation == "works at" and norm(key.subject) in self.moved:
            self.moved[norm(key.subject)] = (self.moved[norm(key.subject)][0], key.object)
        if dup is None:
            self._add(text, key, when, "extract", idx=idx)

    def _duplicate(self, text: str, key: Key | None) -> Held | None:
        n = norm(text)
        for h in self.added:
            if norm(h.text) == n:
                return h
        return None

    def _succeed(self, text: str, key: Key, when: datetime, idx: int) -> None:
        """'Tidewater Transit replaces BlueWake Lines': BlueWake's one-holder roles pass over."""
        new, old = key.subject, key.object
        for h in self._live(self.facts.of_subject(norm(old))):
            if h.key is None or "object" not in unique_sides(h.key) or not h.key.holds:
                continue
            self._make_false(h, when, f"replaced: {text}", idx)
            rewritten = _substitute(h.text, old, new)
            if rewritten != h.text:
                k = Key(new, h.key.relation, h.key.object, definite=h.key.definite)
                self._add(rewritten, k, when, "rewrite", f"{old} replaced by {new}", supersedes=h.id, idx=idx)

    # -- after the document: what depended on a changed employer
    def finish(self) -> None:
        self._everyone()
        for subj, (old, new) in list(self.moved.items()):
            for h in self._live(self.facts.of_subject(subj)) + [x for x in self.added if x.key and norm(x.key.subject) == subj]:
                k = h.key
                if k is None or not k.holds or h.id.startswith("new:"):
                    continue
                dep = RELATIONS.get(k.relation)
                if dep is None or dep.depends_on != "works at":
                    continue
                if (norm(k.subject), k.relation, norm(k.object)) in self.stated:
                    continue
                self._make_false(h, self.time, f"depended on {subj}'s old employer {old}", None)
            # the other side of symmetric relations: coworkers at the old company
            for h in self._live(self.facts.by_object("works with", subj)):
                if (norm(h.key.subject), "works with", subj) not in self.stated:
                    self._make_false(h, self.time, f"depended on {subj}'s old employer {old}", None)
            if new:
                self._derive(subj, new)

    def _derive(self, subj: str, company: str) -> None:  # noqa: C901
        """New facts that follow from working at `company`, from facts the store holds."""
        name = _display(subj, self)
        have = {h.key.relation for h in self.added if h.key and norm(h.key.subject) == subj and h.key.holds}
        have |= {h.key.relation for h in self._live(self.facts.of_subject(subj)) if h.key and h.key.holds}
        heads = [h for h in self._live(self.facts.by_object("head of", norm(company)))]
        if "has boss" not in have:
            for h in heads[:1]:
                if not same(h.key.subject, subj):
                    self._add(f"{name}'s boss is {h.key.subject}.", Key(name, "has boss", h.key.subject), self.time, "derive",
                              f"{h.key.subject} runs {company}", supersedes=None)
        if not any(h.key and h.key.relation == "works with" and (same(h.key.subject, subj) or same(h.key.object, subj)) for h in self.added):
            staff = self._live(self.facts.by_object("works at", norm(company)))
            people = {h.key.subject for h in staff if not same(h.key.subject, subj)} | {h.key.subject for h in heads if not same(h.key.subject, subj)}
            for p in sorted(people):
                self._add(f"{name} works with {p}.", Key(name, "works with", p), self.time, "derive", f"{p} works at {company}")
        if "works hours" not in have:
            for h in self._live(self.facts.by_subject(norm(f"everyone at {company}"), "works hours")):
                self._add(f"{name} works from {h.key.object}.", Key(name, "works hours", h.key.object), self.time, "derive", h.text)
                break
        if "earns" not in have:
            role = self._role(subj)
            if role:
                for h in self._live(self.facts.by_subject(norm(company), f"pay {role}")):
                    self._add(f"{name} earns {h.key.object}.", Key(name, "earns", h.key.object), self.time, "derive", h.text)
                    break

    def _everyone(self) -> None:
        """'Everyone at Hooli works from 6 to 14': so does each person there who has not
        said otherwise (the boss included)."""
        for h in list(self.added):
            k = h.key
            m = re.match(r"(everyone|everybody|all staff|all employees) at (.+)$", k.subject.lower() if k else "")
            if not k or not m or k.relation != "works hours":
                continue
            company = k.subject.split(" at ", 1)[1]
            people = self._live(self.facts.by_object("works at", norm(company))) + self._live(self.facts.by_object("head of", norm(company)))
            people += [x for x in self.added if x.key and x.key.relation in ("works at", "head of") and same(x.key.object, company)]
            for p in people:
                name = p.key.subject
                if self._by_subject(name, "works hours"):
                    continue
                self._add(f"{name} works from {k.object}.", Key(name, "works hours", k.object), self.time, "derive", h.text)

    def _role(self, subj: str) -> str | None:
        """The person's role: it outlives the employment fact that stated it ("as an engineer")."""
        for h in [x for x in self.added if x.key and norm(x.key.subject) == subj] + self.facts.ever_of_subject(subj):
            for k in [h.key, *h.key.also] if h.key else []:
                if k.relation == "role" and k.object:
                    return norm(k.object)
        return None


def _display(subj: str, rev: Revision) -> str:
    for h in rev.added:
        if h.key and norm(h.key.subject) == subj:
            return h.key.subject
    for h in rev.facts.of_subject(subj):
        if h.key:
            return h.key.subject
    return subj.title()


def _substitute(text: str, old: str, new: str) -> str:
    return re.sub(re.escape(old), new, text, flags=re.I)


# ----------------------------------------------------------------------------- the store's view
def _as_key(k: FactKey) -> Key:
    return Key(k.subject, k.relation, k.object, k.negated, k.past, definite=k.definite)


class StoreFacts:
    """`Facts` over the SQLite store: facts held at the document's time (true then, or
    announced for later), one `Held` per key of each fact."""

    def __init__(self, store: Store, time: datetime):
        self.store = store
        self.time = time

    def _held(self, facts: list[Fact], want) -> list[Held]:  # noqa: ANN001
        out = []
        for f in facts:
            if not f.held_at(self.time):
                continue
            for k in f.keys:
                if want(k):
                    out.append(Held(f.id, f.text, _as_key(k)))
        return out

    def by_subject(self, subject: str, relation: str) -> list[Held]:
        return self._held(self.store.facts_by_key(relation=relation, subject=subject),
                          lambda k: k.holds and k.relation == relation and norm(k.subject) == subject)

    def by_object(self, relation: str, obj: str) -> list[Held]:
        return self._held(self.store.facts_by_key(relation=relation, obj=obj),
                          lambda k: k.holds and k.relation == relation and norm(k.object) == obj)

    def of_subject(self, subject: str) -> list[Held]:
        return self._held(self.store.facts_by_key(subject=subject), lambda k: norm(k.subject) == subject)

    def ever_of_subject(self, subject: str) -> list[Held]:
        return [Held(f.id, f.text, _as_key(k)) for f in self.store.facts_by_key(subject=subject) for k in f.keys
                if norm(k.subject) == subject]

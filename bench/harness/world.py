"""Seeded synthetic worlds: people, companies, jobs and hobbies that change over time.

The ERASE paper's conversation set is unpublished, so we generate our own. A
world has people working at companies (each company has one manager, fixed
office hours and a pay scale by role) and hobbies. Transitions:

* **job change** (a non-manager moves to another company): changes the mover's
  company, boss, coworkers, salary and hours, and the coworkers of everyone at
  the old and the new company (`JOB_DOWNSTREAM` plus others' `coworkers`);
* **hobby change**: takes up or gives up one hobby.

Documents are conversation chunks between two people. First one introduction per
person (job, boss, coworkers, pay, hours, hobbies; managers state their company's
hours and pay scale), then one chunk per transition. In the *single-hop* world a
job-change chunk states every downstream change; in the *multi-hop* world it
states only the immediate one ("I left X and started at Y"), and the rest must be
inferred from earlier chunks (who runs Y, who works there, Y's hours and pay).
Both kinds share the same world and timeline for a seed; only the wording differs.

Questions come from templates (single answers and list answers, with choices) and
are asked after the introductions and after every transition, with the true
answer at that time, `updates` (changes so far) and `changed` (since last asked).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from bench.harness.stream import Question, Stream
from stores.errors import InputError
from stores.types import Document

WorldKind = Literal["single-hop", "multi-hop"]
KINDS = ("single-hop", "multi-hop")

JOB_DOWNSTREAM = ("company", "boss", "coworkers", "salary", "hours")  # the mover's relations a job change updates
RELATIONS = ("company", "role", "boss", "coworkers", "salary", "hours", "hobbies")

_FIRST = [
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Keiko", "Luca",
    "Maya", "Nils", "Olivia", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Yara",
]
_LAST = [
    "Abbott", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "Gallo", "Hughes", "Ivanova", "Jensen",
    "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quintero", "Rossi", "Sato", "Tanaka",
]
_COMPANIES = [
    "Globex", "Initech", "Hooli", "Vandelay Industries", "Acme Corp", "Umbrella Labs", "Stark Tools",
    "Wonka Sweets", "Tyrell Motors", "Cyberdyne",
]
_HOURS = ["6 to 14", "7 to 15", "8 to 16", "9 to 17", "10 to 18", "11 to 19", "12 to 20"]
_ROLE_PAY = {"engineer": 90, "designer": 70, "analyst": 80, "accountant": 60}  # thousands, before the company offset
_MANAGER_PAY = 130
_HOBBIES = ["chess", "climbing", "painting", "running", "gardening", "the piano", "photography", "sailing", "cooking", "yoga"]


@dataclass(frozen=True)
class WorldState:
    """Who works where and likes what; everything else follows from it."""

    company: dict[str, str]  # person -> company
    role: dict[str, str]  # person -> role ("manager" for managers)
    hobbies: dict[str, frozenset[str]]
    managers: dict[str, str]  # company -> its manager
    hours_of: dict[str, str]  # company -> office hours (fixed)
    pay: dict[tuple[str, str], int]  # (company, role) -> yearly salary (fixed)

    @property
    def people(self) -> list[str]:
        return list(self.company)

    def boss(self, p: str) -> str | None:
        m = self.managers[self.company[p]]
        return None if m == p else m

    def coworkers(self, p: str) -> frozenset[str]:
        c = self.company[p]
        return frozenset(o for o, oc in self.company.items() if oc == c and o != p)

    def salary(self, p: str) -> int:
        return self.pay[(self.company[p], self.role[p])]

    def hours(self, p: str) -> str:
        return self.hours_of[self.company[p]]

    def relation(self, p: str, rel: str) -> Any:
        if rel == "company":
            return self.company[p]
        if rel == "role":
            return self.role[p]
        if rel == "boss":
            return self.boss(p)
        if rel == "coworkers":
            return self.coworkers(p)
        if rel == "salary":
            return self.salary(p)
        if rel == "hours":
            return self.hours(p)
        if rel == "hobbies":
            return self.hobbies[p]
        raise KeyError(rel)

    def relations(self, p: str) -> dict[str, Any]:
        return {r: self.relation(p, r) for r in RELATIONS}


@dataclass
class Transition:
    kind: Literal["job", "hobby"]
    time: datetime
    person: str
    detail: dict[str, str]  # job: from/to; hobby: start or stop
    changes: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)  # (person, relation) -> (old, new)


@dataclass
class GeneratedWorld:
    kind: str
    seed: int
    stream: Stream
    states: list[tuple[datetime, WorldState]]  # each state holds from its time on
    transitions: list[Transition]

    def state_at(self, t: datetime) -> WorldState:
        cur = self.states[0][1]
        for when, st in self.states:
            if when <= t:
                cur = st
        return cur


def money(n: int) -> str:
    return f"{n:,} dollars"


def names(xs: list[str] | frozenset[str] | set[str]) -> str:
    xs = sorted(xs)
    if not xs:
        return "nobody"
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def diff(a: WorldState, b: WorldState) -> dict[tuple[str, str], tuple[Any, Any]]:
    """Every (person, relation) whose value differs between two states."""
    out = {}
    for p in a.people:
        ra, rb = a.relations(p), b.relations(p)
        for rel in RELATIONS:
            if ra[rel] != rb[rel]:
                out[(p, rel)] = (ra[rel], rb[rel])
    return out


# ----------------------------------------------------------------------------- the world
def _initial(rng: random.Random, n_people: int, n_companies: int) -> WorldState:
    first = rng.sample(_FIRST, n_people)
    last = rng.sample(_LAST, n_people)
    people = [f"{f} {s}" for f, s in zip(first, last)]
    comps = rng.sample(_COMPANIES, n_companies)
    hours = dict(zip(comps, rng.sample(_HOURS, n_companies)))
    offsets = dict(zip(comps, rng.sample(range(1, 20), n_companies)))  # distinct: a move always changes pay
    pay = {(c, r): (base + offsets[c]) * 1000 for c in comps for r, base in {**_ROLE_PAY, "manager": _MANAGER_PAY}.items()}
    company: dict[str, str] = {}
    role: dict[str, str] = {}
    managers = {}
    for p, c in zip(people, comps):  # the first n_companies people run the companies
        managers[c] = p
        company[p], role[p] = c, "manager"
    workers = people[n_companies:]
    order = comps[:]
    rng.shuffle(order)
    for i, p in enumerate(workers):  # round robin: every company gets staff
        company[p] = order[i % n_companies]
        role[p] = rng.choice(sorted(_ROLE_PAY))
    hobbies = {p: frozenset(rng.sample(_HOBBIES, rng.choice([1, 2]))) for p in people}
    return WorldState(company, role, hobbies, managers, hours, pay)


def _job_change(rng: random.Random, st: WorldState) -> tuple[WorldState, dict[str, str]] | None:
    """A non-manager from a company that keeps another non-manager moves elsewhere."""
    staff: dict[str, list[str]] = {}
    for p, c in st.company.items():
        if st.role[p] != "manager":
            staff.setdefault(c, []).append(p)
    movers = sorted(p for c, ps in staff.items() if len(ps) >= 2 for p in ps)
    if not movers:
        return None
    p = rng.choice(movers)
    old = st.company[p]
    new = rng.choice(sorted(c for c in st.managers if c != old))
    return replace(st, company={**st.company, p: new}), {"person": p, "from": old, "to": new}


def _hobby_change(rng: random.Random, st: WorldState) -> tuple[WorldState, dict[str, str]]:
    p = rng.choice(sorted(st.people))
    have = st.hobbies[p]
    if len(have) >= 2 and rng.random() < 0.5:
        h = rng.choice(sorted(have))
        new, detail = have - {h}, {"person": p, "stop": h}
    else:
        h = rng.choice(sorted(set(_HOBBIES) - have))
        new, detail = have | {h}, {"person": p, "start": h}
    return replace(st, hobbies={**st.hobbies, p: frozenset(new)}), detail


# ----------------------------------------------------------------------------- text
def _intro(p: str, listener: str, st: WorldState) -> str:
    c = st.company[p]
    lines = [f"{listener}: Hi {p.split()[0]}, how is work these days?"]
    if st.role[p] == "manager":
        scale = ", ".join(f"{r}s {money(st.pay[(c, r)])}" for r in sorted(_ROLE_PAY))
        lines += [
            f"{p}: I run {c}, so I am the boss of everyone there: {names(st.coworkers(p))}.",
            f"{p}: Everyone at {c} works from {st.hours_of[c]}. We pay {scale} a year, and I earn {money(st.salary(p))} a year.",
        ]
    else:
        article = "an" if st.role[p][0] in "aeiou" else "a"
        lines += [
            f"{p}: I work at {c} as {article} {st.role[p]}.",
            f"{p}: My boss is {st.boss(p)}, and my coworkers are {names(st.coworkers(p))}.",
            f"{p}: I earn {money(st.salary(p))} a year and I work from {st.hours(p)}.",
        ]
    lines.append(f"{p}: In my free time I enjoy {names(st.hobbies[p])}.")
    return "\n".join(lines)


def _job_text(kind: str, p: str, listener: str, before: WorldState, after: WorldState, old: str, new: str) -> str:
    lines = [
        f"{p}: Big news, {listener.split()[0]}! I left {old} and started at {new} this week.",
        f"{listener}: Congratulations! How is it going?",
    ]
    if kind == "single-hop":  # every downstream change, for the mover and for the others
        gone = before.coworkers(p)
        lines += [
            f"{p}: My new boss is {after.boss(p)}, and my coworkers are now {names(after.coworkers(p))}.",
            f"{p}: I now earn {money(after.salary(p))} a year and I work from {after.hours(p)}.",
            f"{p}: {names(gone)} no longer {'works' if len(gone) == 1 else 'work'} with me, "
            f"and {before.boss(p)} is not my boss anymore.",
        ]
    else:
        lines.append(f"{p}: It is going well so far.")
    return "\n".join(lines)


def _hobby_text(p: str, listener: str, detail: dict[str, str]) -> str:
    if "start" in detail:
        said = f"{p}: I took up {detail['start']} last month."
    else:
        said = f"{p}: I gave up {detail['stop']}; I have no time for it anymore."
    return f"{listener}: Anything new, {p.split()[0]}?\n{said}"


# ----------------------------------------------------------------------------- questions
@dataclass
class _Series:
    template: str
    question: str
    person: str
    other: str | None
    choices: list[str]

    def answer(self, st: WorldState) -> str | list[str]:
        p = self.person
        if self.template == "company":
            return st.company[p]
        if self.template == "boss":
            return st.boss(p) or ""
        if self.template == "salary":
            return money(st.salary(p))
        if self.template == "hours":
            return st.hours(p)
        if self.template == "coworkers":
            return sorted(st.coworkers(p))
        if self.template == "hobbies":
            return sorted(st.hobbies[p])
        if self.template == "works_with":
            return "yes" if self.other in st.coworkers(p) else "no"
        raise KeyError(self.template)


def _series(rng: random.Random, states: list[WorldState], transitions: list[Transition]) -> list[_Series]:
    """Question series with choices fixed over time: every answer ever true, plus distractors."""
    st0 = states[0]
    people = sorted(st0.people)
    out: list[_Series] = []

    def ever(fn: Any) -> list[Any]:
        vals: list[Any] = []
        for s in states:
            v = fn(s)
            for x in v if isinstance(v, (list, frozenset, set)) else [v]:
                if x not in vals:
                    vals.append(x)
        return vals

    def padded(true_vals: list[str], pool: list[str], n: int) -> list[str]:
        extra = [x for x in sorted(pool) if x not in true_vals]
        rng.shuffle(extra)
        ch = true_vals + extra[: max(0, n - len(true_vals))]
        rng.shuffle(ch)
        return ch

    comps = sorted(st0.managers)
    for p in people:
        manager = st0.role[p] == "manager"
        out.append(_Series("company", f"Where does {p} work?", p, None, padded(ever(lambda s: s.company[p]), comps, 4)))
        if not manager:
            out.append(_Series("boss", f"Who is {p}'s boss?", p, None, padded(ever(lambda s: s.boss(p)), sorted(st0.managers.values()), 4)))
        salaries = [money(st0.pay[(c, st0.role[p])]) for c in comps]
        out.append(_Series("salary", f"How much does {p} earn a year?", p, None, padded([money(v) for v in ever(lambda s: s.salary(p))], salaries, 4)))
        out.append(_Series("hours", f"What hours does {p} work?", p, None, padded(ever(lambda s: s.hours(p)), [st0.hours_of[c] for c in comps], 4)))
        out.append(_Series("coworkers", f"Who are {p}'s coworkers?", p, None, padded(ever(lambda s: s.coworkers(p)), [o for o in people if o != p], 5)))
        out.append(_Series("hobbies", f"What are {p}'s hobbies?", p, None, padded(ever(lambda s: s.hobbies[p]), _HOBBIES, 4)))
    pairs: list[tuple[str, str]] = []
    for t in transitions:  # yes/no questions about pairs a move tore apart or brought together
        if t.kind != "job":
            continue
        before = t.changes.get((t.person, "coworkers"), (frozenset(), frozenset()))
        for group in (sorted(before[0] - before[1]), sorted(before[1] - before[0])):
            if group:
                pair = (t.person, rng.choice(group))
                if pair not in pairs:
                    pairs.append(pair)
    for p, q in pairs:
        out.append(_Series("works_with", f"Does {p} work with {q}?", p, q, ["no", "yes"]))
    return out


# ----------------------------------------------------------------------------- generator
def generate_world(
    kind: str = "multi-hop", seed: int = 1, *, people: int = 7, companies: int = 3, changes: int = 4,
    start: datetime | None = None,
) -> GeneratedWorld:
    """A reproducible world and its stream: same seed, same world (for both kinds), same bytes."""
    if kind not in KINDS:
        raise InputError(f"unknown world {kind!r} (single-hop or multi-hop)")
    if companies < 3 or companies > len(_COMPANIES):
        raise InputError(f"companies must be 3..{len(_COMPANIES)} (a listener from a third company hears each move)")
    # a manager and a worker per company, and one more worker so somebody can always move
    if people < 2 * companies + 1 or people > min(len(_FIRST), len(_LAST)):
        raise InputError(f"people must be {2 * companies + 1}..{min(len(_FIRST), len(_LAST))} for {companies} companies")
    if changes < 1:
        raise InputError("changes must be at least 1")
    rng = random.Random(f"knowd-world-{seed}")  # str seeds are stable across Python versions
    t0 = start or datetime(2023, 1, 2, tzinfo=timezone.utc)
    st = _initial(rng, people, companies)
    everyone = sorted(st.people)
    docs: list[Document] = []
    texts: list[tuple[datetime, str, str]] = []  # (time, title, text)

    def doc_time(i: int) -> datetime:
        return t0 + timedelta(days=i)

    for i, p in enumerate(everyone):
        listener = rng.choice([o for o in everyone if o != p])
        texts.append((doc_time(i), f"{p} and {listener}", _intro(p, listener, st)))
    states: list[tuple[datetime, WorldState]] = [(t0, st)]
    checkpoints = [doc_time(len(everyone) - 1) + timedelta(hours=12)]
    transitions: list[Transition] = []
    n_jobs = changes - changes // 3  # two thirds job changes: they are what the benchmark is about
    kinds = ["job"] * n_jobs + ["hobby"] * (changes - n_jobs)
    rng.shuffle(kinds)
    day = len(everyone) - 1
    for k in kinds:
        day += 7
        when = doc_time(day)
        moved = _job_change(rng, st) if k == "job" else None
        if moved is not None:
            new_st, detail = moved
            old_c, new_c = detail["from"], detail["to"]
            p = detail["person"]
            # the listener works at neither company, so the chunk names nobody it should not
            outsiders = sorted(o for o in everyone if st.company[o] not in (old_c, new_c))
            listener = rng.choice(outsiders)
            text = {kd: _job_text(kd, p, listener, st, new_st, old_c, new_c) for kd in KINDS}
            tr = Transition("job", when, p, {"from": old_c, "to": new_c})
        else:
            new_st, detail = _hobby_change(rng, st)
            p = detail["person"]
            listener = rng.choice([o for o in everyone if o != p])
            same = _hobby_text(p, listener, detail)
            text = {kd: same for kd in KINDS}
            tr = Transition("hobby", when, p, {k2: v for k2, v in detail.items() if k2 != "person"})
        tr.changes = diff(st, new_st)
        transitions.append(tr)
        texts.append((when, f"{p} and {listener}", text[kind]))
        st = new_st
        states.append((when, st))
        checkpoints.append(when + timedelta(hours=12))

    for n, (when, who, text) in enumerate(texts):
        docs.append(Document(
            id=f"{kind}-s{seed}-d{n}", text=text, source=f"world-{kind}", url=None, published_at=when,
            title=f"Conversation between {who}",
        ))
    series = _series(rng, [s for _, s in states], transitions)
    questions: list[Question] = []
    prev: dict[int, Any] = {}
    updates: dict[int, int] = {}
    for ci, cp in enumerate(checkpoints):
        state = states[ci][1]  # checkpoint ci follows state ci
        for si, s in enumerate(series):
            ans = s.answer(state)
            changed = si in prev and prev[si] != ans
            updates[si] = updates.get(si, 0) + int(changed)
            prev[si] = ans
            questions.append(Question(
                id=f"{kind}-s{seed}-q{len(questions)}", time=cp, question=s.question, choices=s.choices,
                answer=ans, updates=updates[si], changed=changed,
                meta={"template": s.template, "person": s.person, **({"other": s.other} if s.other else {})},
            ))
    return GeneratedWorld(kind, seed, Stream(docs, questions), states, transitions)

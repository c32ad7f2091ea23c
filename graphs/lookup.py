"""Answers decided by the store's structure: which choice the facts true at the time support.

A choice is supported by a fact true at the question's time that names the question's
subject and the choice. Support is strong when the fact's key has the relation the
question asks about (its cue words: "boss", "where ... work", "chief executive"), weak
otherwise. Yes/no questions ("Does X work with Y?", "Is X a member of Y?") are yes when
a true fact supports the value, no when the value's fact is no longer true or the
subject holds another value of a one-value relation. Anything else is left to the model.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from datetime import datetime

from graphs.keyed.keys import norm
from graphs.keyed.relations import RELATIONS
from stores.sqlite import Store
from stores.types import Fact

_YESNO = ("yes", "no")


@dataclass
class Known:
    """A fact as lookup sees it: its text, key, and truth at the question's time."""

    id: str
    text: str
    subject: str
    relation: str
    object: str
    negated: bool
    true_then: bool  # true at the question's time
    was_true: bool  # true at some time before it
    since: float = 0.0  # when it last became true (timestamp), for recency


@dataclass
class Decision:
    answer: str | list[str] | None  # None: the store does not decide
    support: list[str] = field(default_factory=list)  # fact ids
    reason: str = ""


def question_relations(question: str) -> list[str]:
    """Relations whose cue words the question uses, most specific (longest cue) first."""
    q = " " + re.sub(r"[^\w\s']", " ", question.lower()) + " "
    hits: list[tuple[int, str]] = []
    for rel in RELATIONS.values():
        for cue in rel.question:
            pat = r"\b" + r"\b.*\b".join(re.escape(w) for w in cue.split(" * ")) + r"\b"
            if re.search(pat, q):
                hits.append((len(cue), rel.name))
    hits.sort(key=lambda h: -h[0])
    return list(dict.fromkeys(r for _, r in hits))


def mentions(text: str, value: str) -> bool:
    """Whether `text` names `value` (whole words, case-insensitive; '8 to 16' as written)."""
    v = value.strip().lower()
    if not v:
        return False
    return re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", text.lower()) is not None


_STOP = frozenset("the a an of for to and in on at 's".split())
# designators that name no one in particular: "Cheltenham Town F.C." is "Cheltenham Town"
_DESIGNATORS = frozenset("fc afc cf sc ac inc ltd llc plc corp co club team".split())


def _words(s: str) -> set[str]:
    words = {w for w in re.findall(r"[\w-]+", s.lower().replace(".", "")) if w not in _STOP}
    return words - _DESIGNATORS if len(words - _DESIGNATORS) >= 1 else words


def similar(a: str, b: str) -> bool:
    """Two wordings of one value: 'Minister of Public Services' ~ 'Minister of Public
    Services and Procurement' (most words shared)."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return False
    shared = len(wa & wb)
    return shared / min(len(wa), len(wb)) >= 0.75 and shared / max(len(wa), len(wb)) >= 0.5


def names_value(text: str, value: str) -> bool:
    """The text names the value exactly, or most of its words ('the U.S. ambassador to
    Russia' does not name 'United States Ambassador to the Russian Federation'; 'LSU
    Tigers women's basketball team' names 'LSU Tigers women's basketball')."""
    if mentions(text, value):
        return True
    wv = _words(value)
    return len(wv) >= 2 and len(wv & _words(text)) / len(wv) >= 0.75


def names(question: str) -> list[str]:
    """Capitalised word runs of the question that are not its first word ("Elena Fischer")."""
    words = re.findall(r"[A-Z][\w.&-]*(?:'[A-Za-z]+)?(?:\s+(?:of|de|van|von|the)?\s*[A-Z][\w.&-]*(?:'[A-Za-z]+)?)*", question)
    parts = [p for w in words for p in re.split(r"(?:'s|’s)\s+", w)]  # "Northwind's Lyon warehouse": two names
    out = []
    for w in parts:
        w = re.sub(r"('s|’s|')$", "", w.strip())
        w = re.sub(r"^(Does|Do|Did|Is|Are|Was|Were|Has|Have|Who|What|Where|Which|When|How|Why|Whom|Whose)\s+", "", w)
        if question.startswith(w) and len(w.split()) == 1:
            continue
        out.append(w)
    return out


def known(facts: list[Fact], when: datetime | None) -> list[Known]:
    """The facts as lookup reads them at `when` (None = now): one Known per key (a fact
    without keys is still known by its text)."""
    out: list[Known] = []
    for f in facts:
        truth = f.truth_at(when)
        if truth is None:
            continue
        live = [h for h in f.history if not h.reverted and (when is None or h.time <= when)]
        since = max((h.time.timestamp() for h in live if h.truth), default=0.0)
        was = any(h.truth for h in live)
        for k in f.keys or [None]:
            out.append(Known(
                f.id, f.text, k.subject if k else "", k.relation if k else "", k.object if k else "",
                bool(k and not k.holds), truth is True, was, since,
            ))
    return out


def decide(question: str, choices: list[str], facts: list[Known], *, subjects: list[str] | None = None,
           closed_world: bool = False) -> Decision:
    """The store's answer among `choices`, or Decision(None) to leave it to the model.
    With `closed_world`, a yes/no question about a subject the store has never heard of
    (at the question's time) is answered no: nothing known makes it true."""
    subjects = subjects if subjects is not None else names(question)
    rels = question_relations(question)
    yes_no = sorted(c.lower() for c in choices) == sorted(_YESNO)
    if yes_no and closed_world and len(subjects) >= 2 and not any(mentions(f.text, subjects[0]) for f in facts):
        return Decision("no", [], f"nothing is known about {subjects[0]} (closed world)")
    about = [f for f in facts if any(mentions(f.text, s) for s in subjects)] if subjects else []
    if not about:
        return Decision(None, reason="nothing known about the question's subject")
    if yes_no:
        return _yes_no(question, subjects, rels, about)
    scored: dict[str, tuple[int, float, list[str]]] = {}
    for c in choices:
        if any(norm(c) == norm(s) for s in subjects):
            continue  # "Who are Elena Fischer's coworkers?" never answers Elena Fischer
        sup = [f for f in about if f.true_then and not f.negated and names_value(f.text, c)]
        if not sup:
            continue
        strong = [f for f in sup if f.relation in rels]
        best = strong or sup
        scored[c] = (2 if strong else 1, max(f.since for f in best), [f.id for f in best])
    if not scored:
        return Decision(None, reason="no choice is named by a fact true then")
    if _is_list(question):
        top = max(s for s, _, _ in scored.values())
        picked = [c for c in choices if c in scored and scored[c][0] == top]
        return Decision(picked, [i for c in picked for i in scored[c][2]], "every choice a true fact supports")
    best = max(scored, key=lambda c: (scored[c][0], scored[c][1]))
    return Decision(best, scored[best][2], "supported by a fact true then")


def _is_list(question: str) -> bool:
    return bool(re.search(r"\b(who are|what are|which are|coworkers|hobbies|colleagues|members)\b", question.lower()))


def _yes_no(question: str, subjects: list[str], rels: list[str], about: list[Known]) -> Decision:
    if len(subjects) < 2:
        return Decision(None, reason="a yes/no question needs a subject and a value")
    subj, val = subjects[0], subjects[-1]
    pair = [f for f in about if mentions(f.text, subj) and names_value(f.text, val)]
    now = [f for f in pair if f.true_then and not f.negated]
    if now:
        newest = max(f.since for f in now)
        later = [f for f in about if f.true_then and not f.negated and f.since > newest and f.relation in rels
                 and mentions(f.subject, subj) and f.object and not similar(f.object, val) and not names_value(f.text, val)]
        if later and any("subject" in RELATIONS[r].unique for r in rels if r in RELATIONS):
            return Decision("no", [f.id for f in later], f"a later fact gives {subj} another {later[0].relation}")
        return Decision("yes", [f.id for f in now], "a fact true then names both")
    ended = [f for f in pair if f.was_true and not f.true_then and not f.negated] + [f for f in pair if f.true_then and f.negated]
    if ended:
        return Decision("no", [f.id for f in ended], "the fact naming both is no longer true")
    for r in rels:
        rel = RELATIONS.get(r)
        if rel is None:
            continue
        held = [f for f in about if f.true_then and not f.negated and f.relation == r and mentions(f.text, subj) and f.object]
        same_value = [f for f in held if similar(f.object, val)]
        if same_value:  # "Wonka Sweets" asked as "Wonka Sweets Ltd"
            return Decision("yes", [f.id for f in same_value], f"{subj}'s {r} is {val}, in other words")
        other = [f for f in held if not similar(f.object, val)]
        if other and ("subject" in rel.unique or rel.symmetric is False and r == "works with"):
            return Decision("no", [f.id for f in other], f"{subj} holds another {r}")
        if other and r == "works with":
            return Decision("no", [f.id for f in other], f"{subj}'s coworkers do not include {val}")
    return Decision(None, reason="nothing true then says yes or no")


@dataclass
class Best:
    """The fact a free-text question is answered from, and the value it names."""

    fact_id: str
    text: str
    value: str
    strong: bool


def best_fact(question: str, facts: list[Known], *, subjects: list[str] | None = None) -> Best | None:
    """The fact true then that answers a factoid question, or None to leave it to the model.

    It must name the question's subject; it wins by having a key of the relation the
    question asks about (strong), else by sharing the most of the question's other words
    (at least two), newest first among equals."""
    subjects = subjects if subjects is not None else names(question)
    if not subjects:
        return None
    rels = set(question_relations(question))
    rels |= {r.name for r in RELATIONS.values() if r.implies in rels}
    qwords = {_stem(w) for w in _words(question)} - {_stem(w) for s in subjects for w in _words(s)} - _QUESTION_WORDS
    best: tuple[tuple[int, float], Known, bool] | None = None
    for f in facts:
        if not f.true_then or f.negated:
            continue
        named = any(mentions(f.text, s) for s in subjects)
        overlap = len(qwords & {_stem(w) for w in _words(f.text)})
        strong = named and f.relation in rels and any(
            mentions(f.object, s) or mentions(f.subject, s) or similar(s, f.subject) or similar(s, f.object) for s in subjects)
        # a fact that does not name the subject must share three of the question's other words
        if not (strong or (named and overlap >= 2) or overlap >= 3):
            continue
        score = (2 * overlap + 2 * int(strong) + int(named), f.since)
        if best is None or score > best[0]:
            best = (score, f, strong)
    if best is None:
        return None
    f, strong = best[1], best[2]
    other = f.subject if any(similar(s, f.object) or mentions(f.object, s) for s in subjects) else f.object
    return Best(f.id, f.text, other or f.text, strong)


def _stem(w: str) -> str:
    """A crude stem, enough to match 'leads' with 'lead' and 'runs' with 'run'."""
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


_QUESTION_WORDS = frozenset(
    "who what where which when how why whom whose is are was were does do did has have had now currently "
    "current today still company person".split()
)


def gather(store: Store, question: str, extra: list[Fact] | None = None) -> tuple[list[str], dict[str, Fact]]:
    """The question's subjects, and the facts that name them (plus `extra`, e.g. retrieved ones)."""
    subjects = names(question)
    found: dict[str, Fact] = {f.id: f for f in extra or []}
    for s in subjects:
        for f in store.facts_mentioning(s):
            found.setdefault(f.id, f)
    return subjects, found


def decide_from_store(store: Store, question: str, choices: list[str], when: datetime | None,
                      closed_world: bool = False) -> tuple[Decision, dict[str, Fact]]:
    """`decide` over the facts the store holds about the question's subjects at `when`.
    The chat agent's lookup node and the benchmark's knowd system both answer this way."""
    subjects, found = gather(store, question)
    return decide(question, choices, known(list(found.values()), when), subjects=subjects, closed_world=closed_world), found

"""Keys: which question a proposition answers, read from its clause's parse.

"Northwind Logistics has appointed Maria Lopez as its chief executive." ->
Key("Maria Lopez", "chief executive of", "Northwind Logistics"). The slot logic
(graphs/keyed/slots.py) uses keys, never the wording, to decide what a new fact replaces,
and the relation lexicon (graphs/keyed/relations.py) says which side of each relation holds
one value. A relation outside the lexicon keeps its lemmatised wording ("win",
"operate warehouse in") and replaces nothing.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphs.keyed.names import is_person
from graphs.keyed.relations import OFFICE_NOUNS, RELATIONS, ROLE_QUALIFIERS, ROLE_SYNONYMS, VERBS
from stores.types import FactKey, key_norm

if TYPE_CHECKING:
    from spacy.tokens import Token

Render = Callable[[list["Token"]], str]

_COPULAS = frozenset({"be", "become", "remain", "stay"})
# "X's boss is Y", "Globex's head office is in Rotterdam": the owner is the key's subject
_OWNER_SUBJECT = frozenset({"has boss", "works with", "based in", "earns", "enjoys", "works hours"})
_PAST_WORDS = frozenset({"previously", "formerly", "former", "ex", "once", "earlier"})
_NEG_WORDS = frozenset({"not", "n't", "never", "longer", "anymore", "no"})
_TIME_PREPS = frozenset({"from", "since", "until", "till", "by", "on", "starting", "effective", "as"})
_TIME_WORDS = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|week|month|year|spring|summer|autumn|fall|winter|today|tomorrow|"
    r"yesterday|\d{4})\b", re.I)
_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
_VALUE_LABELS = frozenset({"TIME", "DATE", "CARDINAL", "MONEY", "PERCENT", "QUANTITY"})
_NAME_TAGS = ("NNP", "NNPS")
_MOVE_VERBS = frozenset({"move", "leave", "relocate", "go", "come", "return"})

norm = key_norm


@dataclass
class Key:
    """A proposition's key as read from the parse, with what revision needs beyond what
    is stored (stores.types.FactKey): when it takes effect and which values it replaces."""

    subject: str
    relation: str
    object: str = ""
    negated: bool = False
    past: bool = False
    effective: str | None = None  # a time phrase: "from 1 May"
    old: list[str] = field(default_factory=list)  # values it replaces ("from Rotterdam", "instead of 7:00")
    definite: bool = False  # "the R of O": one holder at a time
    also: list[Key] = field(default_factory=list)  # further keys of the proposition ("as an engineer")

    @property
    def holds(self) -> bool:
        return not (self.negated or self.past)

    def stored(self) -> list[FactKey]:
        """The keys the store keeps for the fact: this one and `also`."""
        return [FactKey(k.subject, k.relation, k.object, k.negated, k.past, k.definite) for k in (self, *self.also)]


def role_phrase(noun: Token) -> tuple[str, bool, bool]:
    """The role a noun names ('chief executive', 'head librarian'), whether it is
    definite ('the', a possessive) and whether it is marked past ('former')."""
    words: list[str] = []
    past = False
    for m in sorted((c for c in noun.children if c.dep_ in ("compound", "amod", "nmod") and c.i < noun.i), key=lambda t: t.i):
        for t in sorted(m.subtree, key=lambda t: t.i):
            w = t.lower_
            if w in _PAST_WORDS:
                past = True
            elif not (w in ROLE_QUALIFIERS or t.pos_ in ("DET", "PUNCT", "NUM", "PROPN") or t.dep_ == "poss"):
                words.append(t.lemma_.lower() if t.pos_ == "NOUN" else w)
    words.append(noun.lemma_.lower())
    definite = any(c.dep_ == "poss" or (c.dep_ == "det" and c.lower_ == "the") for c in noun.children)
    past = past or any(c.lower_ in _PAST_WORDS for c in noun.children)
    return " ".join(words), definite, past


def canonical_role(role: str) -> str:
    """The lexicon's relation for a role phrase ('ceo' -> 'chief executive of'), else 'R of'."""
    if role in ROLE_SYNONYMS:
        return ROLE_SYNONYMS[role]
    if role.endswith("s") and role[:-1] in ROLE_SYNONYMS:
        return ROLE_SYNONYMS[role[:-1]]
    last = role.split()[-1] if role else role
    if last in ("ceo", "chairman", "chairwoman", "chairperson", "president", "mayor"):
        return ROLE_SYNONYMS[last]
    return f"{role} of"


def _owner(noun: Token) -> Token | None:
    """Whose role: a possessive ('Globex's CFO') or an 'of/for/at' object ('CEO of Globex')."""
    for c in noun.children:
        if c.dep_ == "poss":
            return c
    for c in noun.children:
        if c.dep_ == "prep" and c.lower_ in ("of", "for", "at", "with"):
            for p in c.children:
                if p.dep_ == "pobj":
                    return p
    return None


def _kind(t: Token | None) -> str:
    if t is None:
        return ""
    if t.ent_type_ in _PLACE_LABELS:
        return "place"
    if t.ent_type_ in _VALUE_LABELS or t.like_num or t.pos_ == "NUM":
        return "value"
    return ""


def _strip_possessive(text: str) -> str:
    return re.sub(r"('s|'|’s)$", "", text.strip())


class Reader:
    """Reads keys from clauses. `render` turns tokens into text with references resolved;
    `allowed` is the set of tokens of one distributed variant of a coordinated clause
    ('operates warehouses in Rotterdam, Hamburg and Gdansk' read three times)."""

    def __init__(self, render: Render, allowed: set[int] | None = None, kind_of: Callable[[str], str] | None = None):
        self.render = render
        self.allowed = allowed
        self.kind_of = kind_of or (lambda name: "")

    # -- values
    def value(self, t: Token) -> str:
        """The text of an argument: a name alone ('its rival Globex Shipping' -> 'Globex
        Shipping'), else the noun phrase without clauses, conjuncts and 'instead of' parts."""
        if self.allowed is not None and t.i not in self.allowed:
            for c in t.conjuncts:  # this variant keeps another conjunct
                if c.i in self.allowed:
                    t = c
                    break
        if t.pos_ == "NOUN":  # "the insurer Harbor Mutual" -> "Harbor Mutual"
            name = next((c for c in t.children if c.dep_ == "appos" and c.tag_ in _NAME_TAGS and c.left_edge.i == t.i + 1), None)
            if name is not None:
                t = name
        ok = (lambda x: True) if self.allowed is None else (lambda x: x.i in self.allowed or x.i == t.i)
        if t.tag_ in _NAME_TAGS:
            toks = [x for x in t.subtree if ok(x) and (x.i == t.i or x.dep_ in ("compound", "flat") and x.tag_ in _NAME_TAGS
                    or x.tag_ in _NAME_TAGS and x.head.dep_ == "compound")]
            of = [x for x in t.children if x.dep_ == "prep" and x.lower_ == "of"]
            toks += [y for x in of for y in x.subtree]
            return _strip_possessive(self.render(sorted(set(toks), key=lambda x: x.i)))
        cut = {y.i for x in t.subtree if x.i != t.i and (x.dep_ == "conj" or x.dep_ in ("advmod", "cc") and x.lower_ in ("instead", "of", "rather", "than"))
               for y in x.subtree}
        toks = [x for x in t.subtree if ok(x) and x.i not in cut and (x.i == t.i or x.dep_ not in ("relcl", "appos", "acl", "advcl", "conj", "cc"))]
        if t.dep_ == "poss" or any(c.dep_ == "case" for c in t.children):
            toks = [x for x in toks if x.dep_ != "case"]
        return _strip_possessive(self.render(sorted(toks, key=lambda x: x.i)))

    def effective(self, toks: list[Token]) -> str | None:
        """'from 1 May', 'since July', 'from next Monday' in the clause, if any."""
        for t in toks:
            if t.dep_ == "prep" and t.lower_ in _TIME_PREPS:
                sub = sorted(t.subtree, key=lambda x: x.i)
                if any(x.ent_type_ in ("DATE", "TIME") for x in sub) or _TIME_WORDS.search(" ".join(x.text for x in sub)):
                    return self.render(sub)
        return None

    def office_title(self, noun: Token) -> str:
        """'the new Chancellor of the Exchequer' -> 'Chancellor of the Exchequer'; a
        possessive owner goes after: "Scotland's health minister" -> 'health minister of Scotland'."""
        poss = [c for c in noun.children if c.dep_ == "poss"]
        drop = {x.i for p in poss for x in p.subtree}
        toks = [t for t in noun.subtree if t.dep_ not in ("relcl", "appos", "acl", "advcl", "punct") and t.i not in drop
                and not (t.dep_ == "det" and t.head.i == noun.i)
                and not (t.head.i == noun.i and t.lower_ in ROLE_QUALIFIERS | _PAST_WORDS)]
        title = self.render(sorted(toks, key=lambda t: t.i))
        if poss:
            title += " of " + _strip_possessive(self.render(sorted(poss[0].subtree, key=lambda t: t.i)))
        return title

    # -- clauses
    def clause(self, v: Token, subject: str, subj_toks: list[Token], body: list[Token]) -> Key | None:
        """The key of the clause headed by `v` with the (resolved) `subject`."""
        kids = list(v.children)
        negated = any(t.lower_ in _NEG_WORDS and t.dep_ in ("neg", "advmod", "det") for t in body if t.head.i == v.i or t.head.head.i == v.i)
        past = any(t.lower_ in _PAST_WORDS for t in body if t.head.i == v.i)
        lemma = v.lemma_.lower()
        prt = next((c.lower_ for c in kids if c.dep_ == "prt"), "")
        verb = f"{lemma} {prt}".strip()
        passive = any(c.dep_ in ("auxpass", "nsubjpass") for c in kids)
        if v.dep_ == "acl":  # "Northwind's board named X as ...": the parser hung the arguments on the noun
            kids += [c for c in v.head.children if c.i > v.i and c.dep_ == "prep"]
        preps = [(c.lower_, p) for c in kids if c.dep_ in ("prep", "agent") for p in c.children if p.dep_ == "pobj"]
        dobj = next((c for c in kids if c.dep_ == "dobj"), None) or next((c for c in kids if c.dep_ == "oprd" and c.tag_ in _NAME_TAGS), None)
        attr = next((c for c in kids if c.dep_ in ("attr", "acomp", "oprd")), None)
        subj_head = next((t for t in subj_toks if t.dep_ in ("nsubj", "nsubjpass")), None)
        old = [self.value(p) for pr, p in preps if pr == "from" and any(q == "to" for q, _ in preps)]
        old += [self.value(c) for t in body for c in t.children if c.dep_ == "conj" and any(x.lower_ in ("instead", "of") for x in t.children)]

        key: Key | None = None
        if lemma in _COPULAS and (attr is not None or preps):
            key = self._copular(lemma, subject, subj_head, attr, preps)
        if key is None and passive:
            key = self._passive(lemma, verb, subject, subj_head, attr, preps)
        if key is None:
            key = self._verbal(v, verb, subject, dobj, attr, preps)
        if key is None:
            return None
        if key.relation == "works at":
            key = self._affiliation(key, lemma, verb, subject, dobj, preps)
            as_ = next((p for pr, p in preps if pr == "as"), None)
            if as_ is not None and as_.pos_ == "NOUN":  # "works at Initech as an engineer"
                key.also.append(Key(subject, "role", as_.lemma_.lower()))
        key.negated = key.negated or negated
        key.past = key.past or past
        key.effective = key.effective or self.effective(body)
        key.old = key.old or [o for o in old if o]
        return key

    def _affiliation(self, key: Key, lemma: str, verb: str, subject: str, dobj: Token | None, preps) -> Key:  # noqa: ANN001
        """'works at' read more closely: moving an office, or moving to a place, is where
        an organisation is based; a time or a plain noun is no employer."""
        obj_tok = dobj if dobj is not None else next((p for pr, p in preps if pr in ("to", "at", "for", "with")), None)
        if dobj is not None and dobj.lemma_ in ("office", "headquarters", "hq", "base", "operation", "head"):
            to = next((p for pr, p in preps if pr == "to"), None)
            if to is not None:
                return Key(subject, "based in", self.value(to), negated=key.negated, old=key.old)
        elif _kind(obj_tok) == "place" and lemma in _MOVE_VERBS and self.kind_of(key.object) != "org":
            key.relation = "lives in" if is_person(subject) else "based in"  # "Northwind moved to Hamburg"
        elif _kind(obj_tok) == "value" or (obj_tok is not None and obj_tok.pos_ == "NOUN" and obj_tok.tag_ not in _NAME_TAGS and lemma not in ("join", "leave", "quit")):
            key.relation = f"{verb} {next((pr for pr, p in preps if p.i == obj_tok.i), '')}".strip()
        return key

    def _passive(self, lemma: str, verb: str, subject: str, subj_head: Token | None, attr: Token | None, preps) -> Key | None:  # noqa: ANN001
        agent = next((p for pr, p in preps if pr == "by"), None)
        if agent is not None and subj_head is not None:  # "The ferry is operated by BlueWake Lines"
            rel, how = VERBS.get((verb, ""), VERBS.get((verb, "by"), (verb, "obj")))
            if how == "obj":
                return Key(self.value(agent), rel, subject)
            if how == "inv":  # "Bramah was drafted by Indios": Bramah is with Indios
                return Key(subject, rel, self.value(agent))
        if lemma in ("swear", "name", "appoint", "elect", "confirm", "install", "hire"):
            as_ = next((p for pr, p in preps if pr == "as"), None) or attr
            if as_ is not None:  # "Elena Varga was sworn in as mayor of Harbor City"
                return self.role(subject, as_, None)
        if (verb, "by") in VERBS and preps:
            return Key(subject, VERBS[(verb, "by")][0], self.value(preps[0][1]))
        return None

    def _copular(self, lemma: str, subject: str, subj_head: Token | None, attr: Token | None, preps) -> Key | None:  # noqa: ANN001
        if attr is not None and attr.dep_ == "acomp":
            return Key(subject, lemma, attr.lower_)  # "The Rotterdam warehouse stays open"
        if subj_head is not None and subj_head.pos_ == "NOUN":
            # "X's boss is Y", "Globex's head office is in Rotterdam", "The new head librarian is Sunil Mehta"
            role, definite, past = role_phrase(subj_head)
            rel = canonical_role(role)
            owner = _owner(subj_head)
            val_tok = attr if attr is not None else (preps[0][1] if preps else None)
            if val_tok is None:
                return None
            value = self.value(val_tok)
            if owner is None:
                return Key(value, rel, "", definite=definite, past=past)
            o = self.value(owner)
            if rel in _OWNER_SUBJECT:
                return Key(o, rel, value, definite=definite, past=past)
            return Key(value, rel, o, definite=definite, past=past)
        if attr is not None and attr.pos_ in ("NOUN", "PROPN"):
            return self.role(subject, attr, None)
        if preps and lemma == "be":
            pr, p = preps[0]
            return Key(subject, f"be {pr}", self.value(p))
        return None

    def role(self, holder: str, noun: Token, default_owner: str | None, negated: bool = False) -> Key | None:
        """'X is the chief executive of O', 'appointed X as its chief executive',
        'X is a former engineer', 'X is Minister of State for Transport'."""
        if noun.pos_ == "PROPN" and noun.lower_ not in OFFICE_NOUNS and not any(c.dep_ == "poss" for c in noun.children):
            return Key(holder, "is", self.value(noun))  # "X is Y": a second name for X
        role, definite, past = role_phrase(noun)
        owner = _owner(noun)
        rel = canonical_role(role)
        if set(role.split()) & OFFICE_NOUNS and rel not in RELATIONS:
            return Key(holder, "holds office", self.office_title(noun), past=past, negated=negated, definite=True)
        based = [noun.doc[t.i - 2] for t in noun.subtree if t.lower_ == "based" and t.i >= 2 and noun.doc[t.i - 1].text == "-"]
        if based and based[0].tag_ in _NAME_TAGS:  # "the Rotterdam-based freight company"
            return Key(holder, "based in", self.value(based[0]), also=[Key(holder, "is a", role.replace("based ", ""))])
        if owner is None and default_owner is None:
            if rel in RELATIONS and rel != "is a":
                return Key(holder, rel, "", definite=definite, past=past, negated=negated)
            det = next((c.lower_ for c in noun.children if c.dep_ == "det"), "")
            return Key(holder, "is a", role, past=past, negated=negated, definite=det == "the")
        o = self.value(owner) if owner is not None else default_owner or ""
        if rel in _OWNER_SUBJECT:  # "Y is the boss of X" -> X has boss Y
            return Key(o, rel, holder, definite=definite, past=past, negated=negated)
        return Key(holder, rel, o, definite=definite, past=past, negated=negated)

    def _range(self, preps) -> str | None:  # noqa: ANN001
        """'from 6 to 14' as one value when both ends are numbers or times."""
        fr = next((p for pr, p in preps if pr == "from"), None)
        to = next((p for pr, p in preps if pr == "to"), None)
        if fr is not None and to is not None and _kind(fr) == "value" and _kind(to) == "value":
            return f"{self.value(fr)} to {self.value(to)}"
        if fr is not None and _kind(fr) == "value":
            m = re.match(r"from\s+(.+)$", " ".join(x.text for x in sorted(fr.head.subtree, key=lambda x: x.i)))
            if m and " to " in m.group(1):
                return m.group(1)
        return None

    def _verbal(self, v: Token, verb: str, subject: str, dobj: Token | None, attr: Token | None, preps) -> Key | None:  # noqa: ANN001, C901
        rng = self._range(preps)
        if rng is not None and (verb, "from") in VERBS:
            return Key(subject, VERBS[(verb, "from")][0], rng)  # "works from 8 to 16"
        dative = next((c for c in v.children if c.dep_ == "dative"), None)
        if dative is not None and dobj is not None:  # "Hooli pays engineers 108,000 dollars a year"
            return Key(subject, f"{verb} {dative.lemma_}", self.value(dobj))
        if dobj is None:
            dobj = next((c for c in v.children if c.dep_ == "xcomp" and c.tag_ == "VBG"), None)  # "enjoys climbing"
        definite = dobj is not None and any(c.dep_ == "poss" or c.dep_ == "det" and c.lower_ in ("the", "this", "that") for c in dobj.children)
        if dobj is not None and dobj.pos_ == "NOUN" and dobj.tag_ not in _NAME_TAGS and not definite and not any(pr == "as" for pr, _ in preps):
            for c in list(dobj.children) + [c for c in v.children if c.dep_ == "prep"]:
                # "operates warehouses in Rotterdam": the place is the value, the noun part of the relation
                if c.dep_ != "prep" or (c.lower_ in _TIME_PREPS and c.lower_ != "in") or (verb, c.lower_) in VERBS:
                    continue
                p = next((x for x in c.children if x.dep_ == "pobj" and x.tag_ in _NAME_TAGS and x.ent_type_ not in ("DATE", "TIME")), None)
                if p is not None:
                    return Key(subject, f"{verb} {dobj.lemma_} {c.lower_}", self.value(p))
        for pr, p in preps:  # the lexicon: the verb with one of its prepositions ...
            hit = VERBS.get((verb, pr))
            if hit is None:
                continue
            rel, how = hit
            if how in ("obj", "neg"):
                return Key(subject, rel, self.value(p), negated=how == "neg")
            if how in ("role", "role_self", "role_neg"):
                holder = self.value(dobj) if how == "role" and dobj is not None else subject
                owner_default = subject if how == "role" else None
                if how == "role" and re.search(r"'s? (board|council|shareholders|owners|members|management)$", subject):
                    owner_default = re.sub(r"'s? \w+$", "", subject)  # "Northwind's board named X" -> Northwind
                return self.role(holder, p, owner_default, negated=how == "role_neg")
        hit = VERBS.get((verb, ""))  # ... or with its direct object
        if hit is not None:
            rel, how = hit
            if how in ("obj", "neg") and dobj is not None:
                return Key(subject, rel, self.value(dobj), negated=how == "neg")
            if how == "inv" and dobj is not None and is_person(self.value(dobj)):
                return Key(self.value(dobj), rel, subject)  # "Chelsea has signed X": X is with Chelsea
            if how == "succeed" and dobj is not None:
                return Key(subject, "succeeds", self.value(dobj))
            if how == "role_self" and attr is not None:
                return self.role(subject, attr, None)
            if how == "role" and dobj is not None:
                oprd = next((c for c in v.children if c.dep_ in ("oprd", "attr", "ccomp")), None)
                if oprd is not None and oprd.pos_ == "NOUN":
                    return self.role(self.value(dobj), oprd, subject)
            if how == "role":  # "made Quinn Park its permanent chief executive", parsed as a clause
                cc = next((c for c in v.children if c.dep_ == "ccomp" and c.pos_ == "NOUN"), None)
                holder = next((c for c in cc.children if c.dep_ == "nsubj"), None) if cc is not None else None
                if cc is not None and holder is not None:
                    return self.role(self.value(holder), cc, subject)
        every = next((c for c in v.children if c.dep_ == "npadvmod" and any(d.lower_ == "every" for d in c.children)), None)
        if every is not None:  # "runs every 20 minutes"
            rel = VERBS.get((verb, "every"), (f"{verb} every", "obj"))[0]
            return Key(subject, rel, self.value(every).replace("every ", ""))
        if dobj is not None:  # an open relation: the lemma, and its first argument
            return Key(subject, verb, self.value(dobj))
        for pr, p in preps:
            if p.ent_type_ in ("DATE", "TIME") and pr in _TIME_PREPS:
                continue
            return Key(subject, f"{verb} {pr}", self.value(p))
        if attr is not None:
            return Key(subject, verb, self.value(attr))
        return Key(subject, verb, "")

"""The relation lexicon: canonical relations, which side of each has one value, and what
depends on what.

A key (graphs/keyed/keys.py) is (subject, relation) -> object. `unique` says which side holds one value at a
time: "subject" (a person earns one salary: a new salary replaces the old one),
"object" (a company has one chief executive: a new one replaces the old one), both, or
neither (hobbies, coworkers: a new value is added). Relations not listed here keep their
lemmatised wording as the relation name and are unique on neither side, except roles
written with a definite article ("the treasurer of X"), which are unique on the object
side: English marks a role that one holder fills at a time with "the".

`depends` lists relations of the same subject that were true because of this one: when
a person's employer changes, their boss, coworkers, pay and hours are re-examined.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    name: str
    unique: frozenset[str] = frozenset()  # {"subject"}, {"object"}, both or neither
    symmetric: bool = False
    depends_on: str | None = None  # the relation of the same subject this one follows from
    question: tuple[str, ...] = ()  # words that ask for it ("where ... work", "boss")
    implies: str | None = None  # a relation it entails: the chief executive of X works at X


def _r(name: str, unique: str = "", symmetric: bool = False, depends_on: str | None = None, question: str = "",
       implies: str | None = None) -> Relation:
    return Relation(name, frozenset(unique.split()), symmetric, depends_on, tuple(question.split("|")) if question else (), implies)


RELATIONS: dict[str, Relation] = {r.name: r for r in [
    _r("works at", "subject", question="where * work|employer|employee of|work for|works for|company|member of|play for|plays for|sports team|team|club|signed"),
    _r("chief executive of", "subject object", question="chief executive|ceo|chief executive officer", implies="works at"),
    _r("chief financial officer of", "subject object", question="chief financial officer|cfo", implies="works at"),
    _r("chief operating officer of", "subject object", question="chief operating officer|coo", implies="works at"),
    _r("chair of", "object", question="chair|chairman|chairwoman|chairperson"),
    _r("president of", "object", question="president"),
    _r("head of", "object", question="run|runs|ran|head|heads|headed|lead|leads|led|manage|manages|managed|in charge"),
    _r("mayor of", "subject object", question="mayor"),
    _r("has boss", "subject", depends_on="works at", question="boss|manager|report to"),
    _r("works with", "", symmetric=True, depends_on="works at", question="coworker|coworkers|colleague|colleagues|work with"),
    _r("earns", "subject", depends_on="works at", question="earn|salary|paid|pay|make a year"),
    _r("works hours", "subject", depends_on="works at", question="hours|work from|what time * work"),
    _r("based in", "subject", question="head office|headquarters|headquartered|based|hq"),
    _r("operates", "object", question="operate|operates|operator|runs the"),
    _r("opens at", "subject", question="open|opens|opening"),
    _r("runs every", "subject", question="how often|frequency|every"),
    _r("employs", "subject", question="how many people|employ|employees|staff"),
    _r("enjoys", "", question="hobby|hobbies|enjoy|free time|like"),
    _r("lives in", "subject", question="live|lives|reside|resides|home"),
    _r("holds office", "subject object", question="government position|position|office|hold|minister|secretary|senator|governor|ambassador|representative"),
    _r("married to", "subject object", symmetric=True, question="married|spouse|wife|husband|partner"),
    _r("pays", "", question="pay|pays|salary"),
    _r("is a", "", question="who is|what is"),
    _r("role", "subject", question="role|job|position|what does * do"),
]}

# Role nouns (lemmatised, lower case) -> canonical relation. A role noun not listed keeps
# its own words: "treasurer of".
ROLE_SYNONYMS: dict[str, str] = {
    "chief executive": "chief executive of", "chief executive officer": "chief executive of", "ceo": "chief executive of",
    "managing director": "chief executive of", "chief financial officer": "chief financial officer of",
    "cfo": "chief financial officer of", "finance chief": "chief financial officer of",
    "chief operating officer": "chief operating officer of", "coo": "chief operating officer of",
    "chair": "chair of", "chairman": "chair of", "chairwoman": "chair of", "chairperson": "chair of",
    "president": "president of", "head": "head of", "leader": "head of", "boss": "has boss", "manager": "head of",
    "mayor": "mayor of", "coworker": "works with", "co-worker": "works with", "colleague": "works with",
    "head office": "based in", "headquarters": "based in", "hq": "based in", "head-office": "based in",
    "salary": "earns", "hobby": "enjoys",
}
# Offices: a person holds one at a time, and each has one holder ("Chancellor of the
# Exchequer", "mayor of Harbor City", "Minister of State for Transport"). The key's object
# is the office's full title.
OFFICE_NOUNS = frozenset(
    "minister secretary chancellor senator representative congressman congresswoman congressperson governor mayor "
    "premier president vice-president ambassador judge justice speaker leader chancellor commissioner attorney "
    "solicitor treasurer comptroller councillor councilor lieutenant-governor prime deputy bishop archbishop "
    "envoy consul general admiral".split()
)

# words dropped from role phrases: they qualify the holder, not the role
ROLE_QUALIFIERS = frozenset(
    "new current interim acting permanent former previous outgoing incoming longtime long-time then "
    "first second third next sole joint deputy-to".split()
)

# (verb lemma, particle/preposition) -> (canonical relation, how to read it)
#   "obj"  : subject -relation-> object (the argument after the verb or preposition)
#   "neg"  : the same, negated (it has ended)
#   "role" : subject -role-> object, the role given by an "as" phrase ("appoint X as CEO")
#   "succeed": subject takes over the object's roles ("X succeeds Y", "X replaces Y")
VERBS: dict[tuple[str, str], tuple[str, str]] = {
    ("work", "at"): ("works at", "obj"), ("work", "for"): ("works at", "obj"), ("join", ""): ("works at", "obj"),
    ("start", "at"): ("works at", "obj"), ("start", "with"): ("works at", "obj"), ("employ", "by"): ("works at", "obj"),
    ("sign", "with"): ("works at", "obj"), ("sign", "for"): ("works at", "obj"), ("move", "to"): ("works at", "obj"),
    ("transfer", "to"): ("works at", "obj"), ("play", "for"): ("works at", "obj"), ("hire", "by"): ("works at", "obj"),
    ("leave", ""): ("works at", "neg"), ("quit", ""): ("works at", "neg"), ("depart", ""): ("works at", "neg"),
    ("run", ""): ("head of", "obj"), ("lead", ""): ("head of", "obj"), ("head", ""): ("head of", "obj"),
    ("manage", ""): ("head of", "obj"), ("run", "by"): ("head of", "obj"),
    ("operate", ""): ("operates", "obj"),
    ("base", "in"): ("based in", "obj"), ("headquarter", "in"): ("based in", "obj"),
    ("earn", ""): ("earns", "obj"), ("make", ""): ("", "role"),
    ("work", "from"): ("works hours", "obj"),
    ("open", "at"): ("opens at", "obj"),
    ("run", "every"): ("runs every", "obj"), ("leave", "every"): ("runs every", "obj"),
    ("employ", ""): ("employs", "obj"),
    ("enjoy", ""): ("enjoys", "obj"), ("like", ""): ("enjoys", "obj"), ("love", ""): ("enjoys", "obj"),
    ("take up", ""): ("enjoys", "obj"), ("give up", ""): ("enjoys", "neg"), ("quit", "hobby"): ("enjoys", "neg"),
    ("live", "in"): ("lives in", "obj"), ("reside", "in"): ("lives in", "obj"), ("move", "to place"): ("lives in", "obj"),
    ("marry", ""): ("married to", "obj"), ("marry", "to"): ("married to", "obj"),
    ("work", "with"): ("works with", "obj"),
    ("appoint", "as"): ("", "role"), ("name", "as"): ("", "role"), ("elect", "as"): ("", "role"),
    ("hire", "as"): ("", "role"), ("make", "as"): ("", "role"), ("name", ""): ("", "role"),
    ("swear", "as"): ("", "role_self"), ("take over", "as"): ("", "role_self"), ("become", ""): ("", "role_self"),
    ("serve", "as"): ("", "role_self"), ("confirm", "as"): ("", "role"), ("install", "as"): ("", "role"),
    ("step down", "as"): ("", "role_neg"), ("resign", "as"): ("", "role_neg"), ("retire", "as"): ("", "role_neg"),
    ("step", "as"): ("", "role_neg"),
    ("succeed", ""): ("", "succeed"), ("replace", ""): ("", "succeed"),
    ("pay", ""): ("pays", "obj"),
    # "Chelsea has signed Carney Chukwuemeka", "Bramah was drafted by Indios": the object joins the subject
    ("sign", ""): ("works at", "inv"), ("draft", ""): ("works at", "inv"), ("recruit", ""): ("works at", "inv"),
    ("hire", ""): ("works at", "inv"), ("acquire", "player"): ("works at", "inv"),
}


def relation(name: str) -> Relation:
    """The lexicon's entry, or an open relation (unique on neither side)."""
    return RELATIONS.get(name) or Relation(name)

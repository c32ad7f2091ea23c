"""What time a question is about: now, a point or period in the past, or the history.

"Who was CEO of X in March 2022?" is about the facts true at some time in March
2022; "as of 2021-05-01" about the facts true at the end of that day; "what
changed about X?" about every version of the facts. A small regex parser over
`datetime` (no third-party date library: dateparser is neither installed nor
pure Python), deliberately conservative: a bare year counts only after a time
preposition ("in 2022", not "the 2022 World Cup"), and a month only with a year
or a day ("May 2022", not "who may lead").
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

Mode = Literal["now", "as_of", "history"]

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_EPS = timedelta(microseconds=1)
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}
_NUM_ALT = "|".join(_NUMBERS)

# Qualifiers that turn a period into a point or an open window. Longest first.
_POINT_END = r"as of|as at|by|until|till|up to|at the end of|by the end of|end of"
_POINT_START = r"at the start of|at the beginning of|start of|beginning of"
_BEFORE = r"before|prior to"
_SINCE = r"since|after|from"
_WINDOW = r"in the year|back in|in|on|during|around|throughout|circa"
_QUALIFIER = rf"\b(?P<qual>{_POINT_END}|{_POINT_START}|{_BEFORE}|{_SINCE}|{_WINDOW})\s+(?:the\s+)?"

_HISTORY = re.compile(
    r"\b(chang\w*|evolv\w*|history|historically|over time|used to|former(ly)?|previous(ly)?|"
    r"predecessors?|originally|in the past|timeline|ever been|have been|has been)\b",
    re.I,
)
_BEFORE_SOMEONE = re.compile(r"\b(before|prior to)\b", re.I)  # "who was CEO before Bob?" (no date)
_NOW = re.compile(r"\b(now|currently|current|today|at present|these days|right now|presently|still)\b", re.I)


@dataclass(frozen=True)
class TimeIntent:
    """The time a question asks about.

    mode "now": facts true now. "as_of": facts true at some time in [start, end]
    (start == end for a point in time). "history": every version of the facts,
    optionally only those with a change in [start, end].
    `explicit` says whether the question itself named the time (follow-ups
    without one inherit the previous question's).
    """

    mode: Mode = "now"
    start: datetime | None = None
    end: datetime | None = None
    label: str = ""
    explicit: bool = False

    @property
    def as_of(self) -> datetime | None:
        return self.end

    def describe(self) -> str:
        """Human wording for prompts and messages: 'now', 'in March 2022', 'as of 2021-05-01'."""
        if self.mode == "history":
            return f"history ({self.label})" if self.label else "history"
        if self.mode == "now" or self.end is None:
            return "now"
        return self.label


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # inclusive: the last microsecond of the period
    label: str


def _utc(y: int, m: int = 1, d: int = 1) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


def _month_period(y: int, m: int) -> Period:
    last = calendar.monthrange(y, m)[1]
    return Period(_utc(y, m), _utc(y, m, last) + timedelta(days=1) - _EPS, f"{calendar.month_name[m]} {y}")


def _day_period(y: int, m: int, d: int) -> Period | None:
    try:
        s = _utc(y, m, d)
    except ValueError:
        return None
    return Period(s, s + timedelta(days=1) - _EPS, s.date().isoformat())


def _year_period(y: int) -> Period:
    return Period(_utc(y), _utc(y + 1) - _EPS, str(y))


def _shift_months(t: datetime, months: int) -> datetime:
    idx = t.year * 12 + (t.month - 1) + months
    y, m = divmod(idx, 12)
    return t.replace(year=y, month=m + 1, day=min(t.day, calendar.monthrange(y, m + 1)[1]))


# (pattern, builder) in priority order: the most specific forms first.
def _periods(now: datetime) -> list[tuple[re.Pattern[str], object]]:
    def iso_dt(m: re.Match[str]) -> Period | None:
        try:
            t = datetime.fromisoformat(m.group(0).replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            return None
        t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        return Period(t, t, t.isoformat())

    def ymd(m: re.Match[str]) -> Period | None:
        return _day_period(int(m["year"]), int(m["mon"]), int(m["day"]))

    def ym(m: re.Match[str]) -> Period | None:
        mon = int(m["mon"])
        return _month_period(int(m["year"]), mon) if 1 <= mon <= 12 else None

    def dmy(m: re.Match[str]) -> Period | None:
        return _day_period(int(m["year"]), _MONTHS[m["month"].lower()], int(m["day"]))

    def my(m: re.Match[str]) -> Period:
        return _month_period(int(m["year"]), _MONTHS[m["month"].lower()])

    def quarter(m: re.Match[str]) -> Period:
        q = {"1": 1, "2": 2, "3": 3, "4": 4, "first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}[m["q"].lower()]
        y = int(m["year"])
        s = _utc(y, 3 * q - 2)
        return Period(s, _shift_months(s, 3) - _EPS, f"Q{q} {y}")

    def part(m: re.Match[str]) -> Period:
        y = int(m["year"])
        a, b = {"early": (1, 5), "mid": (5, 9), "late": (9, 13)}[m["part"].lower()]
        end = _utc(y + 1) if b == 13 else _utc(y, b)
        return Period(_utc(y, a), end - _EPS, f"{m['part'].lower()} {y}")

    def year(m: re.Match[str]) -> Period:
        return _year_period(int(m["year"]))

    def yesterday(m: re.Match[str]) -> Period | None:
        d = (now - timedelta(days=1)).date()
        return _day_period(d.year, d.month, d.day)

    def today(m: re.Match[str]) -> Period | None:
        return Period(now, now, "now")

    def last_unit(m: re.Match[str]) -> Period | None:
        unit, which = m["unit"].lower(), m["which"].lower()
        off = -1 if which == "last" else 0
        if unit == "year":
            return _year_period(now.year + off)
        if unit == "month":
            t = _shift_months(now, off)
            return _month_period(t.year, t.month)
        start = (now - timedelta(days=now.weekday() + (7 if off else 0))).replace(hour=0, minute=0, second=0, microsecond=0)
        return Period(start, start + timedelta(days=7) - _EPS, f"the week of {start.date().isoformat()}")

    def ago(m: re.Match[str]) -> Period | None:
        n = int(m["n"]) if m["n"].isdigit() else _NUMBERS[m["n"].lower()]
        unit = m["unit"].lower().rstrip("s")
        if unit == "year":
            t = _shift_months(now, -12 * n)
        elif unit == "month":
            t = _shift_months(now, -n)
        else:
            t = now - timedelta(days=n * (7 if unit == "week" else 1))
        return _day_period(t.year, t.month, t.day)

    q = _QUALIFIER
    return [
        (re.compile(rf"(?:{q})?\b\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+-]\d{{2}}:?\d{{2}})?", re.I), iso_dt),
        (re.compile(rf"(?:{q})?\b(?P<year>\d{{4}})[-/](?P<mon>\d{{1,2}})[-/](?P<day>\d{{1,2}})\b", re.I), ymd),
        (re.compile(rf"(?:{q})?\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I), dmy),
        (re.compile(rf"(?:{q})?\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I), dmy),
        (re.compile(rf"(?:{q})?\b(?P<year>\d{{4}})-(?P<mon>\d{{2}})\b(?!-)", re.I), ym),
        (re.compile(rf"(?:{q})?\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.I), my),
        (re.compile(rf"(?:{q})?\b(?:q(?P<q>[1-4])|(?P<q2>first|second|third|fourth|last)\s+quarter\s+of)\s+{_YEAR}\b", re.I),
         lambda m: quarter(_QMatch(m))),
        (re.compile(rf"(?:{q})?\b(?P<part>early|mid|late)[-\s]+{_YEAR}\b", re.I), part),
        (re.compile(rf"{q}{_YEAR}\b", re.I), year),  # a bare year needs a preposition
        (re.compile(rf"(?:{q})?\byesterday\b", re.I), yesterday),
        (re.compile(rf"(?:{q})?\b(?P<which>last|this)\s+(?P<unit>year|month|week)\b", re.I), last_unit),
        (re.compile(rf"(?:{q})?\b(?P<n>\d+|{_NUM_ALT})\s+(?P<unit>days?|weeks?|months?|years?)\s+ago\b", re.I), ago),
        (re.compile(r"\b(?P<qual>as of|as at)\s+(?:now|today)\b", re.I), today),
    ]


class _QMatch:
    """Lets `quarter` read q from either alternative of its pattern."""

    def __init__(self, m: re.Match[str]):
        self._m = m

    def __getitem__(self, k: str) -> str:
        if k == "q":
            return self._m["q"] or self._m["q2"]
        return self._m[k]


def _apply_qualifier(qual: str | None, p: Period, now: datetime) -> tuple[datetime, datetime, str]:
    """(start, end, label) of the time asked about, given 'as of', 'before', 'since'..."""
    qual = " ".join((qual or "").lower().split())
    if re.fullmatch(_POINT_END, qual):
        return p.end, p.end, f"as of {p.label}"
    if re.fullmatch(_POINT_START, qual):
        return p.start, p.start, f"at the start of {p.label}"
    if re.fullmatch(_BEFORE, qual):
        t = p.start - _EPS
        return t, t, f"before {p.label}"
    if re.fullmatch(_SINCE, qual):
        return p.start, max(now, p.start), f"since {p.label}"
    if p.start == p.end:
        return p.start, p.end, f"at {p.label}"
    return p.start, p.end, f"in {p.label}" if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.label) else f"on {p.label}"


def find_period(text: str, now: datetime) -> tuple[datetime, datetime, str, tuple[int, int]] | None:
    """The first time expression in `text`: (start, end, label, span), or None."""
    best: tuple[int, int, re.Match[str], object] | None = None
    for rank, (pat, build) in enumerate(_periods(now)):
        m = pat.search(text)
        if m and (best is None or m.start() < best[0] or (m.start() == best[0] and rank < best[1])):
            best = (m.start(), rank, m, build)
    if best is None:
        return None
    m, build = best[2], best[3]
    p = build(m)  # type: ignore[operator]
    if p is None:
        return None
    qual = m.groupdict().get("qual")
    start, end, label = _apply_qualifier(qual, p, now)
    return start, end, label, m.span()


def parse_time_intent(question: str, now: datetime) -> TimeIntent:
    """Read the time a question is about (see TimeIntent)."""
    found = find_period(question, now)
    rest = question if found is None else question[: found[3][0]] + " " + question[found[3][1] :]
    history = bool(_HISTORY.search(rest)) or (found is None and bool(_BEFORE_SOMEONE.search(rest)))
    if found is not None:
        start, end, label, _ = found
        if history:
            return TimeIntent("history", start, end, label, True)
        if end >= now and start >= now:  # "as of today"
            return TimeIntent("now", None, None, "now", True)
        return TimeIntent("as_of", start, min(end, now), label, True)
    if history:
        return TimeIntent("history", None, None, "", True)
    return TimeIntent("now", None, None, "", bool(_NOW.search(question)))


def parse_as_of(text: str | None, now: datetime) -> TimeIntent | None:
    """An "as of" field (the API's, the console's, an MCP tool's): None for blank or
    "now", else `parse_when`'s intent. Raises ValueError if the text is not a time."""
    if text is None or not text.strip():
        return None
    t = parse_when(text, now)
    return None if t.mode == "now" else t


def parse_when(text: str, now: datetime) -> TimeIntent:
    """A time given on its own (REPL /asof, the API's as_of): a date, date-time or
    period ("2021-05-01", "March 2022", "2022"); a period means its end.
    Raises ValueError if the text is not a time."""
    s = text.strip()
    if not s:
        raise ValueError("empty time")
    if s.lower() in ("now", "today", "off", "none"):
        return TimeIntent("now", None, None, "now", True)
    if re.fullmatch(r"(?:19|20)\d\d", s):
        s = f"as of {s}"
    elif not re.match(rf"(?:{_QUALIFIER})", s, re.I):
        s = f"as of {s}"
    found = find_period(s, now)
    if found is None or found[3] != (0, len(s)):
        raise ValueError(f"not a date or time: {text!r} (try 2021-05-01, 'March 2022' or 2022)")
    start, end, label, _ = found
    if start >= now:
        return TimeIntent("now", None, None, "now", True)
    return TimeIntent("as_of", start, min(end, now), label, True)

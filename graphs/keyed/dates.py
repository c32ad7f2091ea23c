"""Effective dates of announced changes: "from 1 May" in a text dated 2024-04-10 is 2024-05-01."""
from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m} | {"sept": 9}
_DAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}


def resolve(phrase: str, ref: datetime) -> datetime | None:
    """The time a phrase names, relative to the document's time; None if it names none.
    Month and day without a year mean the next such date (an announcement looks ahead)."""
    p = phrase.lower()
    if re.match(r"^\s*by\b", p):
        return None  # "by the end of the year": no later than, not from
    tz = ref.tzinfo or timezone.utc
    m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(" + "|".join(_MONTHS) + r")\.?(?:\s+(\d{4}))?\b", p) or re.search(
        r"\b(" + "|".join(_MONTHS) + r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b", p)
    if m:
        a, b, y = m.groups()
        day, mon = (int(a), _MONTHS[b]) if a.isdigit() else (int(b), _MONTHS[a])
        year = int(y) if y else ref.year
        try:
            t = datetime(year, mon, day, tzinfo=tz)
        except ValueError:
            return None
        if not y and t < ref - timedelta(days=31) and re.search(r"\b(from|starting|by|on|as of|effective)\b", p):
            t = t.replace(year=year + 1)
        return t
    m = re.search(r"\b(" + "|".join(k for k in _MONTHS if len(k) > 3 or k == "may") + r")\b(?:\s+(\d{4}))?", p)
    if m:
        mon = _MONTHS[m.group(1)]
        year = int(m.group(2)) if m.group(2) else ref.year
        t = datetime(year, mon, 1, tzinfo=tz)
        if not m.group(2) and re.search(r"\b(from|starting|by|in|as of)\b", p) and t < ref.replace(day=1) :
            t = t.replace(year=year + 1)
        if re.search(r"\b(since|until|till)\b", p) and not m.group(2) and t > ref:
            t = t.replace(year=year - 1)
        return t
    m = re.search(r"\bnext\s+(" + "|".join(_DAYS) + r")\b", p)
    if m:
        d = (_DAYS[m.group(1)] - ref.weekday()) % 7 or 7
        return (ref + timedelta(days=d)).replace(hour=0, minute=0, second=0, microsecond=0)
    if re.search(r"\b(end of (the|this) year|year's end|year end)\b", p):
        return datetime(ref.year, 12, 31, tzinfo=tz)
    if re.search(r"\bnext (week)\b", p):
        return ref + timedelta(days=7)
    if re.search(r"\bnext (month)\b", p):
        return (ref.replace(day=1) + timedelta(days=32)).replace(day=1)
    if re.search(r"\bnext year\b", p):
        return datetime(ref.year + 1, 1, 1, tzinfo=tz)
    m = re.search(r"\b(19|20)\d\d\b", p)
    if m:
        return datetime(int(m.group(0)), 1, 1, tzinfo=tz)
    return None

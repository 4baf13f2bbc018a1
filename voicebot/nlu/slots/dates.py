"""Dates as callers say them, resolved against ``today`` to ISO ``YYYY-MM-DD``.

Decisions (a caller can always be asked to confirm):
- "am Dienstag", "Dienstag", "nächsten/kommenden Dienstag": the first Tuesday
  after today (never today itself). "übernächsten Dienstag": a week later.
  "Dienstag nächste Woche"/"nächste Woche Dienstag": the Tuesday of the next
  calendar week. "letzten/vergangenen Dienstag": the latest before today.
- A day and month without a year ("am dritten März", "14.02.") take the year
  that puts the date nearest to today, so a claim "am dritten März" heard on
  10 March is last week and an appointment "am zehnten Januar" heard in
  December is next month.
- "morgen" is tomorrow except in "guten Morgen", "am Morgen", "heute Morgen".
- A day alone, written as the noun it is ("am Dritten", "bis zum Zwanzigsten", "ab dem Ersten um zehn"),
  is that day of the month nearest to today (this month's, the last or the next), when nothing after it
  says what it counts ("am dritten Tag" is not a date); lower case "am ersten" stays no date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .tokens import SlotMatch, Token, tokenize, word_value

MONTHS: dict[str, int] = {
    "januar": 1,
    "jänner": 1,
    "jan": 1,
    "februar": 2,
    "feber": 2,
    "feb": 2,
    "märz": 3,
    "maerz": 3,
    "merz": 3,
    "mär": 3,
    "april": 4,
    "apr": 4,
    "mai": 5,
    "juni": 6,
    "jun": 6,
    "juli": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "oktober": 10,
    "okt": 10,
    "november": 11,
    "nov": 11,
    "dezember": 12,
    "dez": 12,
}

WEEKDAYS: dict[str, int] = {
    "montag": 0,
    "dienstag": 1,
    "mittwoch": 2,
    "donnerstag": 3,
    "freitag": 4,
    "samstag": 5,
    "sonnabend": 5,
    "sonntag": 6,
}

# Ordinal stems 1..31; the endings -e/-en/-er/-em/-es are added below.
_ORDINAL_STEMS: dict[str, int] = {
    "erst": 1,
    "zweit": 2,
    "zwot": 2,
    "dritt": 3,
    "viert": 4,
    "fünft": 5,
    "sechst": 6,
    "siebt": 7,
    "siebent": 7,
    "acht": 8,
    "neunt": 9,
    "zehnt": 10,
    "elft": 11,
    "zwölft": 12,
    "dreizehnt": 13,
    "vierzehnt": 14,
    "fünfzehnt": 15,
    "sechzehnt": 16,
    "siebzehnt": 17,
    "achtzehnt": 18,
    "neunzehnt": 19,
    "zwanzigst": 20,
    "einundzwanzigst": 21,
    "zweiundzwanzigst": 22,
    "dreiundzwanzigst": 23,
    "vierundzwanzigst": 24,
    "fünfundzwanzigst": 25,
    "sechsundzwanzigst": 26,
    "siebenundzwanzigst": 27,
    "achtundzwanzigst": 28,
    "neunundzwanzigst": 29,
    "dreißigst": 30,
    "dreissigst": 30,
    "einunddreißigst": 31,
    "einunddreissigst": 31,
}
ORDINALS: dict[str, int] = {
    stem + ending: value for stem, value in _ORDINAL_STEMS.items() for ending in ("e", "en", "er", "em", "es")
}

_RELATIVE_DAYS: dict[str, int] = {"heute": 0, "morgen": 1, "übermorgen": 2, "gestern": -1, "vorgestern": -2}
# Words before "morgen" that make it "morning", not "tomorrow".
_MORNING_BEFORE = frozenset(
    {
        "guten",
        "am",
        "heute",
        "jeden",
        "jedem",
        "ganzen",
        "den",
        "diesen",
        "diesem",
        "gestern",
        "dem",
        "einem",
        "vor",
    }
)
_NEXT = frozenset({"nächsten", "nächster", "nächste", "kommenden", "kommender", "kommende"})
_AFTER_NEXT = frozenset({"übernächsten", "übernächster", "übernächste"})
_LAST = frozenset({"letzten", "letzter", "letzte", "vergangenen", "vergangener", "vergangene", "vorigen", "voriger"})
# "seit Montag", "die Zahlung vom Freitag": these point back, not forward.
_SINCE = frozenset({"seit", "vom", "seid"})
_WEEK = frozenset({"woche", "wochen"})
_UNIT_DAYS: dict[str, int] = {"tag": 1, "tagen": 1, "tage": 1, "woche": 7, "wochen": 7}
# Before an ordinal that is a day of the month ("am Dritten", "zum Ersten", "ab dem Fünften").
_DAY_BEFORE = frozenset({"am", "zum", "dem"})
# After it, only words that leave it a date: a time, a conjunction, a part of the day ("am Dritten um zehn").
_DAY_AFTER = frozenset({"um", "gegen", "ab", "bis", "oder", "und", "vormittags", "nachmittags", "morgens",
                        "abends", "mittags", "früh", "passt", "wäre", "geht", "bitte", "also"})


def _nearest(candidates: Sequence[tuple[int, int, int]], today: dt.date) -> dt.date | None:
    """Of the (year, month, day) that are real dates, the nearest to today (a tie goes to the future one)."""
    dates = [d for y, m, day in candidates if (d := _safe_date(y, m, day)) is not None]
    return min(dates, key=lambda d: (abs((d - today).days), d < today)) if dates else None


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _nearest_year(day: int, month: int, today: dt.date) -> dt.date | None:
    return _nearest([(year, month, day) for year in (today.year - 1, today.year, today.year + 1)], today)


def _make(day: int, month: int, year: int | None, today: dt.date) -> dt.date | None:
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    if year is None:
        return _nearest_year(day, month, today)
    if year < 100:
        year += 2000
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _day_at(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
    """A day of month at ``i``: "dritten", "3.", "3" -> (day, next index)."""
    tok = tokens[i]
    if tok.text in ORDINALS:
        return ORDINALS[tok.text], i + 1
    if tok.is_digits and len(tok.text) <= 2:
        nxt = i + 1
        if nxt < len(tokens) and tokens[nxt].text == ".":
            nxt += 1
        return int(tok.text), nxt
    return None


def _month_at(tokens: Sequence[Token], i: int, *, numeric: bool) -> tuple[int, int] | None:
    """A month at ``i``: a name, or (``numeric``) an ordinal/"02." -> (month, next index)."""
    if i >= len(tokens):
        return None
    tok = tokens[i]
    if tok.text in MONTHS:
        nxt = i + 1
        if nxt < len(tokens) and tokens[nxt].text == "." and len(tok.text) <= 4:
            nxt += 1
        return MONTHS[tok.text], nxt
    if numeric and tok.text in ORDINALS and ORDINALS[tok.text] <= 12:
        return ORDINALS[tok.text], i + 1
    if numeric and tok.is_digits and len(tok.text) <= 2 and i + 1 < len(tokens) and tokens[i + 1].text == ".":
        return int(tok.text), i + 2
    return None


def _year_at(tokens: Sequence[Token], i: int, *, after_dot: bool) -> tuple[int, int] | None:
    """A year at ``i``: "2026", "zweitausendsechsundzwanzig", or "26" right after "14.02."."""
    if i >= len(tokens):
        return None
    tok = tokens[i]
    if tok.is_digits:
        if len(tok.text) == 4 and 1900 <= int(tok.text) <= 2100:
            return int(tok.text), i + 1
        if len(tok.text) == 2 and after_dot:
            return 2000 + int(tok.text), i + 1
        return None
    value = word_value(tok.text)
    if value is not None and 1900 <= value <= 2100:
        return value, i + 1
    return None


def _absolute(tokens: Sequence[Token], i: int, today: dt.date) -> tuple[dt.date, int] | None:
    day = _day_at(tokens, i)
    if day is None:
        return None
    day_value, j = day
    written_dot = tokens[i].is_digits and j == i + 2
    # A bare cardinal ("3 März") needs a month name; "dritter dritter" and
    # "14.02." may use a numeric month.
    month = _month_at(tokens, j, numeric=tokens[i].text in ORDINALS or written_dot)
    if month is None:
        return None
    month_value, k = month
    year = _year_at(tokens, k, after_dot=tokens[k - 1].text == ".")
    date = _make(day_value, month_value, year[0] if year else None, today)
    if date is None:
        return None
    return date, (year[1] if year else k)


def _day_only(tokens: Sequence[Token], i: int, today: dt.date) -> dt.date | None:
    """A day of the month said alone ("am Dritten") at ``i``: the date with that day nearest to today."""
    if i == 0 or tokens[i - 1].text not in _DAY_BEFORE:
        return None
    after = i + 1
    if tokens[i].text in ORDINALS and tokens[i].raw[:1].isupper():
        day = ORDINALS[tokens[i].text]
    elif _written_ordinal(tokens, i):
        # whisper writes "am Zwanzigsten um halb drei" as "Am 20. um halb drei.": the same day alone, in digits
        day, after = int(tokens[i].text), i + 2
    else:
        return None
    nxt = tokens[after].text if after < len(tokens) else ""
    if nxt and (nxt[0].isalpha() and nxt not in _DAY_AFTER):
        return None
    months = [(today.year + (today.month - 1 + step) // 12, (today.month - 1 + step) % 12 + 1) for step in (-1, 0, 1)]
    return _nearest([(y, m, day) for y, m in months], today)


def _written_ordinal(tokens: Sequence[Token], i: int) -> bool:
    """ "20." at ``i``: one or two digits of a day 1-31 and a dot (not "20.5", a decimal or a date)."""
    tok = tokens[i]
    return (tok.is_digits and len(tok.text) <= 2 and 1 <= int(tok.text) <= 31 and i + 1 < len(tokens)
            and tokens[i + 1].text == "." and (i + 2 >= len(tokens) or not tokens[i + 2].is_digits))


def _weekday_date(weekday: int, today: dt.date, *, mode: str) -> dt.date:
    ahead = (weekday - today.weekday()) % 7 or 7
    if mode == "next":
        return today + dt.timedelta(days=ahead)
    if mode == "after_next":
        return today + dt.timedelta(days=ahead + 7)
    if mode == "next_week":
        monday = today + dt.timedelta(days=7 - today.weekday())
        return monday + dt.timedelta(days=weekday)
    back = (today.weekday() - weekday) % 7 or 7
    return today - dt.timedelta(days=back)


def _weekday(tokens: Sequence[Token], i: int, today: dt.date) -> tuple[dt.date, int, int] | None:
    """A weekday phrase ending or starting at ``i``: (date, start, end)."""
    tok = tokens[i]
    if tok.text not in WEEKDAYS:
        return None
    weekday = WEEKDAYS[tok.text]
    start, end, mode = i, i + 1, "next"
    prev = tokens[i - 1].text if i > 0 else ""
    if prev in _NEXT:
        start = i - 1
    elif prev in _AFTER_NEXT:
        start, mode = i - 1, "after_next"
    elif prev in _LAST:
        start, mode = i - 1, "last"
    elif prev in _SINCE:
        mode = "last"
    elif prev in _WEEK and i >= 2 and tokens[i - 2].text in _NEXT:
        start, mode = i - 2, "next_week"  # "nächste Woche Dienstag"
    if end + 1 < len(tokens) and tokens[end].text in _NEXT and tokens[end + 1].text in _WEEK:
        end, mode = end + 2, "next_week"  # "Dienstag nächste Woche"
    return _weekday_date(weekday, today, mode=mode), start, end


def find_date(tokens: Sequence[Token], taken: set[int], today: dt.date) -> SlotMatch | None:
    """The first date in the token list."""
    for i, tok in enumerate(tokens):
        if i in taken:
            continue
        absolute = _absolute(tokens, i, today)
        if absolute is not None and not any(j in taken for j in range(i, absolute[1])):
            return SlotMatch("date", absolute[0].isoformat(), i, absolute[1])
        day_only = _day_only(tokens, i, today)
        if day_only is not None:
            return SlotMatch("date", day_only.isoformat(), i, i + 1)
        weekday = _weekday(tokens, i, today)
        if weekday is not None:
            return SlotMatch("date", weekday[0].isoformat(), weekday[1], weekday[2])
        if tok.text in _RELATIVE_DAYS:
            prev = tokens[i - 1].text if i > 0 else ""
            # "Morgen" written with a capital inside a sentence is the noun (morning).
            if tok.text == "morgen" and (
                prev in _MORNING_BEFORE or (i > 0 and tok.raw == "Morgen" and tokens[i - 1].text not in ".!?")
            ):
                continue
            return SlotMatch("date", (today + dt.timedelta(days=_RELATIVE_DAYS[tok.text])).isoformat(), i, i + 1)
        # "in zwei Wochen", "in drei Tagen"
        if tok.text == "in" and i + 2 < len(tokens) and tokens[i + 2].text in _UNIT_DAYS:
            count = word_value(tokens[i + 1].text)
            if count is None and tokens[i + 1].text in ("einer", "einem"):
                count = 1
            if count is not None and 0 < count <= 60:
                days = count * _UNIT_DAYS[tokens[i + 2].text]
                return SlotMatch("date", (today + dt.timedelta(days=days)).isoformat(), i, i + 3)
    return None


def parse_date(text: str, today: dt.date | None = None) -> str | None:
    """The date in ``text`` as ISO ``YYYY-MM-DD`` ("nächsten Dienstag", "am 14.02."), else None."""
    match = find_date(tokenize(text), set(), today or dt.date.today())
    return match.value if match else None

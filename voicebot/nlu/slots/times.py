"""Clock times as callers say them, normalised to ``HH:MM``.

The afternoon heuristic: call centres work roughly 08:00-18:00, and nobody
books a technician for 02:30. A twelve-hour reading (no "Uhr" with an hour
above 12) whose hour is 1 to 6 is taken as afternoon ("halb drei" -> 14:30,
"um vier" -> 16:00, "halb sieben" -> 18:30), unless "morgens", "früh",
"vormittags" or "nachts" is said nearby. 7 to 12 stay as they are
("um sieben" -> 07:00, "halb acht" -> 07:30), unless "abends" or
"nachmittags" is said. "viertel neun" is the eastern/southern form of 08:15,
"dreiviertel neun" 08:45.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .tokens import SlotMatch, Token, tokenize, word_value

_AM_MARKERS = frozenset({"morgens", "früh", "vormittags", "vormittag", "nachts", "frühmorgens"})
_PM_MARKERS = frozenset({"nachmittags", "nachmittag", "abends", "abend", "mittags"})
# After "um drei" these make it a quantity, not a time ("um zwei Tage verschieben").
_NOT_TIME_AFTER = frozenset(
    {
        "tage",
        "tagen",
        "wochen",
        "woche",
        "monate",
        "monaten",
        "jahre",
        "jahren",
        "euro",
        "prozent",
        "minuten",
        "stunden",
        "stück",
        "mal",
        "cent",
        "grad",
        "kilo",
        "meter",
    }
)
_TIME_PREPOSITIONS = frozenset({"um", "gegen", "ab"})
_RANGE_START = frozenset({"zwischen", "von", "ab"})


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    twelve_hour: bool  # said in the colloquial 12-hour way
    start: int
    end: int


def _hour(tokens: Sequence[Token], i: int) -> int | None:
    if i >= len(tokens):
        return None
    if tokens[i].text == "ein" and i + 1 < len(tokens) and tokens[i + 1].text == "uhr":
        return 1  # "um ein Uhr": the article form only before "Uhr"
    value = word_value(tokens[i].text)
    return value if value is not None and 0 <= value <= 24 else None


def _minute(tokens: Sequence[Token], i: int) -> int | None:
    if i >= len(tokens):
        return None
    value = word_value(tokens[i].text)
    return value if value is not None and 0 <= value <= 59 else None


def _colloquial(tokens: Sequence[Token], i: int) -> _Clock | None:
    """ "halb drei", "viertel nach zehn", "dreiviertel neun", "fünf vor halb drei", "zehn nach drei"."""
    t = [tok.text for tok in tokens]
    n = len(t)
    # "fünf vor/nach halb drei"
    if i + 3 < n and t[i + 2] == "halb" and t[i + 1] in ("vor", "nach"):
        offset, hour = _minute(tokens, i), _hour(tokens, i + 3)
        if offset is not None and 0 < offset < 30 and hour is not None and 1 <= hour <= 12:
            base = (hour - 1) * 60 + 30 + (offset if t[i + 1] == "nach" else -offset)
            return _Clock(base // 60 % 24, base % 60, True, i, i + 4)
    if t[i] == "halb":
        hour = _hour(tokens, i + 1)
        if hour is not None and 1 <= hour <= 12:
            return _Clock((hour - 1) % 24, 30, True, i, i + 2)
    if t[i] == "viertel" and i + 2 < n and t[i + 1] in ("nach", "vor"):
        hour = _hour(tokens, i + 2)
        if hour is not None and 1 <= hour <= 12:
            if t[i + 1] == "nach":
                return _Clock(hour, 15, True, i, i + 3)
            return _Clock((hour - 1) % 24, 45, True, i, i + 3)
    if t[i] in ("dreiviertel", "dreivirtel"):
        hour = _hour(tokens, i + 1)
        if hour is not None and 1 <= hour <= 12:
            return _Clock((hour - 1) % 24, 45, True, i, i + 2)
    if t[i] == "drei" and i + 2 < n and t[i + 1] == "viertel":
        hour = _hour(tokens, i + 2)
        if hour is not None and 1 <= hour <= 12:
            return _Clock((hour - 1) % 24, 45, True, i, i + 3)
    if t[i] == "viertel" and (i == 0 or t[i - 1] != "drei"):
        hour = _hour(tokens, i + 1)
        if hour is not None and 1 <= hour <= 12:
            return _Clock((hour - 1) % 24, 15, True, i, i + 2)
    # "zehn nach drei", "zwanzig vor vier"
    if i + 2 < n and t[i + 1] in ("nach", "vor"):
        offset, hour = _minute(tokens, i), _hour(tokens, i + 2)
        if offset is not None and 0 < offset < 30 and hour is not None and 1 <= hour <= 12:
            if i + 3 < n and t[i + 3] in _NOT_TIME_AFTER:
                return None
            base = hour * 60 + (offset if t[i + 1] == "nach" else -offset)
            return _Clock(base // 60 % 24, base % 60, True, i, i + 3)
    return None


def _clock(tokens: Sequence[Token], i: int) -> _Clock | None:
    """ "15 Uhr 30", "fünfzehn uhr dreißig", "15:30", "15.30 Uhr", "um drei"."""
    t = [tok.text for tok in tokens]
    n = len(t)
    hour = _hour(tokens, i)
    if hour is None:
        return None
    # "15:30", "15.30 Uhr" (the dot form only with "Uhr", else it is a date)
    if tokens[i].is_digits and i + 2 < n and tokens[i + 2].is_digits and len(t[i + 2]) == 2:
        if t[i + 1] == ":" or (t[i + 1] == "." and i + 3 < n and t[i + 3] == "uhr"):
            minute = int(t[i + 2])
            if minute <= 59:
                end = i + 4 if i + 3 < n and t[i + 3] == "uhr" else i + 3
                return _Clock(hour, minute, False, i, end)
    # "zwischen vierzehn und sechzehn Uhr", "von acht bis zehn": the range starts the slot.
    if i > 0 and t[i - 1] in _RANGE_START and i + 3 < n and t[i + 1] in ("und", "bis") and t[i + 3] == "uhr":
        if _hour(tokens, i + 2) is not None:
            return _Clock(hour, 0, hour <= 12, i - 1, i + 4)
    if i + 1 < n and t[i + 1] == "uhr":
        said_minute = _minute(tokens, i + 2) if i + 2 < n else None
        if said_minute is not None and not (i + 3 < n and t[i + 3] in _NOT_TIME_AFTER):
            return _Clock(hour, said_minute, hour <= 12, i, i + 3)
        return _Clock(hour, 0, hour <= 12, i, i + 2)
    if i > 0 and t[i - 1] in _TIME_PREPOSITIONS and 1 <= hour <= 23:
        if i + 1 < n and (
            t[i + 1] in _NOT_TIME_AFTER or t[i + 1] in (".", ",") and i + 2 < n and tokens[i + 2].is_digits
        ):
            return None
        return _Clock(hour, 0, hour <= 12, i - 1, i + 1)
    return None


def _apply_daytime(clock: _Clock, tokens: Sequence[Token]) -> tuple[int, int]:
    # Look a few tokens either side for "morgens", "nachmittags", ...
    lo, hi = max(0, clock.start - 3), min(len(tokens), clock.end + 3)
    window = {tok.text for tok in tokens[lo:hi]}
    hour = clock.hour
    if not clock.twelve_hour or hour > 12:
        return hour % 24, clock.minute
    if window & _PM_MARKERS:
        if hour < 12 and not ("mittags" in window and hour >= 11):
            hour += 12
    elif window & _AM_MARKERS or (clock.start > 0 and tokens[clock.start - 1].text == "morgen" and "früh" in window):
        if hour == 12 and "nachts" in window:
            hour = 0
    elif 1 <= hour <= 6:
        hour += 12
    elif hour == 0:
        hour = 12  # "halb eins" -> 12:30
    return hour % 24, clock.minute


def find_time(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """The first clock time in the token list."""
    for i in range(len(tokens)):
        if i in taken:
            continue
        clock = _colloquial(tokens, i) or _clock(tokens, i)
        if clock is None or any(j in taken for j in range(clock.start, clock.end)):
            continue
        hour, minute = _apply_daytime(clock, tokens)
        return SlotMatch("time", f"{hour:02d}:{minute:02d}", clock.start, clock.end)
    return None


def parse_time(text: str) -> str | None:
    """The clock time in ``text`` as ``HH:MM`` ("halb drei" -> "14:30"), else None."""
    match = find_time(tokenize(text), set())
    return match.value if match else None

"""Personal data found on tokens: birth dates in any order and spoken form, names, spoken e-mail and digits.

Works on the slot parsers' tokens (``voicebot.nlu.slots.tokens``), so "am
vierundzwanzigsten November neunzehnhundertneunundsiebzig", "24.11.1979" and
"vier sieben eins eins" are read the same way the NLU reads them.

Which dates are personal: a date is a birth date when a birth keyword stands
right before it ("geboren am", "Geburtsdatum ist der", "geb.", "Jahrgang") or
shortly after it ("am 24.11.1979 geboren", "... ist mein Geburtstag"), or when
it is a whole date (day, month, year) more than ``OLD_YEARS`` years back: in a
service call that is almost always a birth date, and masking it also covers a
partial transcript cut before the word "geboren". Appointment, invoice and
contract dates of recent years stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from voicebot.assist.pii_patterns import PiiSpan, is_service_number
from voicebot.nlu.slots.dates import MONTHS, ORDINALS
from voicebot.nlu.slots.tokens import FILLERS, Token, read_number_run, tokenize
from voicebot.nlu.slots.tokens import word_value as _word_value

DOB_MASK = "**.**.****"
OLD_YEARS = 10

_BIRTH_WORDS = frozenset({"geboren", "geb", "jahrgang", "geburtsdatum", "geburtstag", "geburtsjahr", "geburtstages"})
# Between a keyword and its date ("Geburtsdatum ist der 24.11.", "geboren bin ich am ...").
_BIRTH_GLUE = frozenset({"am", "den", "der", "ist", "lautet", "wäre", ":", ",", "im", "jahr", "jahre", "bin", "ich",
                         "wurde", "mein", "meine", "das", "war", "es", "is", "in", "des"})
_STOP = frozenset({"und", "oder", "aber", ".", "!", "?", ";", "termin", "seit", "bis", "vom", "ab"})
_DATE_SEPS = frozenset({".", "/", "-"})


# Redaction runs on every partial transcript: the spoken-number parser is the costly part, and
# the same few hundred words come back all the time.
word_value = lru_cache(maxsize=8192)(_word_value)


def _may_start_number(tok: Token) -> bool:
    return tok.is_digits or word_value(tok.text) is not None


def _is_birth_word(tok: Token) -> bool:
    return tok.text in _BIRTH_WORDS or tok.text.startswith("geburt")


# --- dates ------------------------------------------------------------------------------


def _day(toks: Sequence[Token], i: int) -> tuple[int, int, bool] | None:
    """(day, next index, followed by a separator) for "24", "24.", "vierundzwanzigsten"."""
    if i >= len(toks):
        return None
    tok = toks[i]
    if tok.text in ORDINALS:
        return ORDINALS[tok.text], i + 1, True
    if tok.is_digits and len(tok.text) <= 2 and 1 <= int(tok.text) <= 31:
        if i + 1 < len(toks) and toks[i + 1].text in _DATE_SEPS:
            return int(tok.text), i + 2, True
        return int(tok.text), i + 1, False
    return None


def _month(toks: Sequence[Token], i: int, *, numeric: bool) -> tuple[int, int] | None:
    if i < len(toks) and toks[i].text == "des":
        i += 1  # "am vierundzwanzigsten des elften"
    if i >= len(toks):
        return None
    tok = toks[i]
    nxt = i + 1
    if tok.text in MONTHS:
        if nxt < len(toks) and toks[nxt].text == ".":
            nxt += 1
        return MONTHS[tok.text], nxt
    if numeric and tok.text in ORDINALS and ORDINALS[tok.text] <= 12:
        return ORDINALS[tok.text], nxt
    if numeric and tok.is_digits and len(tok.text) <= 2 and 1 <= int(tok.text) <= 12:
        if nxt < len(toks) and toks[nxt].text in _DATE_SEPS:
            nxt += 1
        return int(tok.text), nxt
    return None


def _year(toks: Sequence[Token], i: int, *, short_ok: bool, pivot: int) -> tuple[int, int] | None:
    """A year at ``i``: "1979", "79" (after "24.11."), "neunzehnhundertneunundsiebzig",
    "neunzehnhundert neunundsiebzig", "neunzehn hundert ...", "neunzehn neunundsiebzig"."""
    if i < len(toks) and toks[i].text == ",":
        i += 1
    if i >= len(toks):
        return None
    tok = toks[i]
    if tok.is_digits:
        if len(tok.text) == 4 and 1900 <= int(tok.text) <= 2100:
            return int(tok.text), i + 1
        if len(tok.text) == 2 and short_ok:
            yy = int(tok.text)
            return (2000 + yy if yy <= pivot % 100 else 1900 + yy), i + 1
        return None
    value = word_value(tok.text)
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    nxt_value = word_value(nxt.text) if nxt is not None and not nxt.is_digits else None
    if value is not None and 1900 <= value <= 2100:
        if value % 100 == 0 and nxt_value is not None and 1 <= nxt_value <= 99:
            return value + nxt_value, i + 2
        return value, i + 1
    if value in (18, 19, 20) and nxt is not None:
        if nxt.text == "hundert":
            after = toks[i + 2] if i + 2 < len(toks) else None
            tail = word_value(after.text) if after is not None and not after.is_digits else None
            if tail is not None and 1 <= tail <= 99:
                return value * 100 + tail, i + 3
            return value * 100, i + 2
        if nxt_value is not None and 10 <= nxt_value <= 99:
            return value * 100 + nxt_value, i + 2
    return None


def _date_at(toks: Sequence[Token], i: int, this_year: int) -> tuple[int, int | None, bool] | None:
    """(end index, year, whole date with day and month) of a date starting at ``i``, if there is one."""
    day = _day(toks, i)
    if day is not None:
        _, j, separated = day
        month = _month(toks, j, numeric=separated)
        if month is not None:
            _, k = month
            year = _year(toks, k, short_ok=toks[k - 1].text in _DATE_SEPS, pivot=this_year)
            return (year[1], year[0], True) if year else (k, None, True)
    tok = toks[i]
    if tok.text in MONTHS:  # "November 24, 1979", "November 1979"
        j = i + 2 if i + 1 < len(toks) and toks[i + 1].text == "." else i + 1
        while j < len(toks) and toks[j].text in (",", "der", "den"):
            j += 1
        day = _day(toks, j)
        if day is not None and not (toks[j].is_digits and len(toks[j].text) == 4):
            year = _year(toks, day[1], short_ok=False, pivot=this_year)
            return (year[1], year[0], True) if year else (day[1], None, True)
        year = _year(toks, j, short_ok=False, pivot=this_year)
        if year is not None:
            return year[1], year[0], False
        return None
    if tok.is_digits and len(tok.text) == 4 and i + 4 < len(toks) and toks[i + 1].text in ("-", "/"):
        month = _month(toks, i + 2, numeric=True)  # 1979-11-24
        if month is not None:
            day = _day(toks, month[1])
            if day is not None:
                return day[1], int(tok.text), True
    year = _year(toks, i, short_ok=False, pivot=this_year)
    if year is not None:
        return year[1], year[0], False
    return None


def _birth_context(toks: Sequence[Token], start: int, end: int) -> bool:
    i, steps = start - 1, 0
    while i >= 0 and steps < 6:
        tok = toks[i]
        if _is_birth_word(tok) or (tok.text == "." and i > 0 and toks[i - 1].text == "geb"):
            return True
        if tok.text in _STOP or not (tok.text in _BIRTH_GLUE or tok.text in FILLERS):
            break
        i, steps = i - 1, steps + 1
    for tok in toks[end : end + 5]:
        if _is_birth_word(tok):
            return True
        if tok.text in _STOP:
            break
    return False


def find_birth_dates(text: str, toks: Sequence[Token], this_year: int) -> list[PiiSpan]:
    spans: list[PiiSpan] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        if not (tok.text in ORDINALS or tok.text in MONTHS or _may_start_number(tok)):
            i += 1
            continue
        found = _date_at(toks, i, this_year)
        if found is None:
            i += 1
            continue
        end, year, whole = found
        old = whole and year is not None and year < this_year - OLD_YEARS
        if old or _birth_context(toks, i, end):
            last = end - 1 if toks[end - 1].text in _DATE_SEPS else end
            spans.append(PiiSpan(toks[i].start, toks[last - 1].end, "birth_date", DOB_MASK if whole else "****", 2))
        i = max(end, i + 1)
    return spans


# --- names ------------------------------------------------------------------------------

_NAME_TRIGGERS: tuple[tuple[str, ...], ...] = (
    ("mein", "name", "ist"), ("mein", "name", "lautet"), ("mein", "name", "wäre"), ("name", ":"),
    ("ich", "heiße"), ("ich", "heisse"), ("heiße",), ("vorname", "ist"), ("nachname", "ist"), ("vorname", ":"),
    ("nachname", ":"), ("vorname",), ("nachname",), ("hier", "spricht"), ("spreche", "ich", "mit"),
    ("mit", "wem", "spreche", "ich"), ("herr",), ("herrn",), ("frau",),
)
# Skipped between a trigger and the name: titles, and adverbs ("ich heiße jetzt wieder Krüger").
_TITLES = frozenset({"herr", "herrn", "frau", "dr", "doktor", "prof", "professor", ".", "von", "van", "de",
                     "jetzt", "wieder", "nun", "übrigens", "eigentlich", "seit", "kurzem", "neuerdings"})
_NOT_NAMES = frozenset(
    """und oder aber ich bin habe hab hätte möchte will wollte würde rufe rufen an aus von vom bei mit für wegen zu
    zum zur es geht um die der das den dem des ein eine einen einem mein meine meinen ihr ihre ihren sie wir hier
    da dann also ja nein bitte danke gerne guten tag morgen abend hallo nicht kein keine auch noch schon so wie
    was weil dass ob wenn ist sind war kunde kundin doch mal eigentlich leider gerade eben nur sehr ganz wird
    jetzt wieder anders nun neu immer übrigens falsch richtig bitter bitte""".split()
)
# Triggers after which only a capitalised word is a name ("Frau Berger", not "meine Frau hat").
_CAPITAL_ONLY = frozenset({("herr",), ("herrn",), ("frau",), ("spreche", "ich", "mit"), ("vorname",), ("nachname",)})


_TRIGGERS_BY_FIRST: dict[str, list[tuple[str, ...]]] = {}
for _trigger in _NAME_TRIGGERS:
    _TRIGGERS_BY_FIRST.setdefault(_trigger[0], []).append(_trigger)


def _trigger_at(toks: Sequence[Token], i: int) -> tuple[str, ...] | None:
    for trigger in _TRIGGERS_BY_FIRST.get(toks[i].text, ()):
        if all(i + k < len(toks) and toks[i + k].text == word for k, word in enumerate(trigger)):
            if trigger[0] in ("herr", "herrn", "frau") and not toks[i].raw[0].isupper():
                return None  # "meine frau": a noun, not a title, when not capitalised
            return trigger
    return None


def _name_tokens(toks: Sequence[Token], j: int, *, titled: bool) -> list[int]:
    stop = j + 5  # bounded: "Frau Frau Frau ..." must not make this quadratic
    while j < min(stop, len(toks)) and toks[j].text in _TITLES:
        j += 1
    names: list[int] = []
    while j < len(toks) and len(names) < 4:
        tok = toks[j]
        if tok.text == "-" and names and j + 1 < len(toks) and toks[j + 1].raw[:1].isupper():
            j += 1
            continue
        word = tok.raw.isalpha() and tok.text not in _NOT_NAMES and tok.text not in FILLERS and tok.text not in _TITLES
        if not word or (titled and not tok.raw[0].isupper()) or (len(names) >= 2 and not tok.raw[0].isupper()):
            break
        names.append(j)
        j += 1
    # "Mustermann, Max." - surname first, the given name after a comma at the end of the phrase.
    if (names and j + 1 < len(toks) and toks[j].text == "," and toks[j + 1].raw[:1].isupper()
            and toks[j + 1].text not in _NOT_NAMES
            and (j + 2 >= len(toks) or toks[j + 2].text in (".", "!", "?", ","))):
        names.append(j + 1)
    return names


def find_names(text: str, toks: Sequence[Token]) -> list[PiiSpan]:
    # A transcript in lower case ("hier spricht jansen") has lower-case names; in a capitalised
    # one, a lower-case word after "mein Name ist" is not a name ("... ist falsch geschrieben").
    first = next((ch for ch in text if ch.isalpha()), "")
    all_lower = first.islower()
    spans: list[PiiSpan] = []
    for i in range(len(toks)):
        trigger = _trigger_at(toks, i)
        if trigger is None:
            continue
        titled = trigger in _CAPITAL_ONLY or not all_lower
        for j in _name_tokens(toks, i + len(trigger), titled=titled):
            tok = toks[j]
            spans.append(PiiSpan(tok.start, tok.end, "name", tok.raw[0] + "***", 5))
    return spans


# --- spoken e-mail and digits -------------------------------------------------------------

_AT = frozenset({"@", "at", "ät", "klammeraffe"})
_EMAIL_JOIN = frozenset({"punkt", ".", "minus", "bindestrich", "-", "unterstrich", "_"})
_DOMAIN_JOIN = frozenset({"punkt", ".", "minus", "bindestrich", "-"})
_TLDS = frozenset({"de", "com", "net", "org", "eu", "at", "ch", "info", "biz", "io", "online", "email"})


def find_spoken_emails(text: str, toks: Sequence[Token]) -> list[PiiSpan]:
    spans: list[PiiSpan] = []
    for a, tok in enumerate(toks):
        if tok.text not in _AT or a == 0 or not toks[a - 1].raw.isalnum():
            continue
        start = a - 1
        # Both walks are bounded: an address has a few parts, and hostile text must stay linear.
        while start >= 2 and a - start < 12 and toks[start - 1].text in _EMAIL_JOIN and toks[start - 2].raw.isalnum():
            start -= 2
        j, parts, dotted = a + 1, [], False
        while j < len(toks) and len(parts) < 8 and toks[j].raw.isalnum():
            parts.append(toks[j].text)
            if j + 2 < len(toks) and toks[j + 1].text in _DOMAIN_JOIN and toks[j + 2].raw.isalnum():
                dotted = toks[j + 1].text in ("punkt", ".")
                j += 2
                continue
            break
        if len(parts) >= 2 and dotted and parts[-1] in _TLDS:
            mask = f"{toks[start].raw[0]}***@{parts[0][0]}***.{parts[-1]}"
            spans.append(PiiSpan(toks[start].start, toks[j].end, "email", mask, 1))
    return spans


_NUMBER_KEYWORD_GLUE = frozenset(
    {"ist", "is", "lautet", "wäre", ":", ",", "die", "meine", "war", "nochmal", "jetzt", "neue"}
)


# Numbers that are nobody's: a postcode, a product, a house.
_IMPERSONAL_NUMBERS = frozenset({"plz", "postleitzahl", "artikelnummer", "hausnummer", "modellnummer", "fehlernummer"})


def _number_keyword(toks: Sequence[Token], i: int) -> str | None:
    """The keyword a number at ``i`` follows ("Kundennummer ist ..."), if any."""
    j, steps = i - 1, 0
    while j >= 0 and steps < 4 and (toks[j].text in _NUMBER_KEYWORD_GLUE or toks[j].text in FILLERS):
        j, steps = j - 1, steps + 1
    if j < 0:
        return None
    word = toks[j].text
    if word in _IMPERSONAL_NUMBERS or word.endswith(("nummer", "schein")):
        return word
    if word in ("nr", "iban", "pin", "aktenzeichen"):
        return word
    return None


def find_number_runs(text: str, toks: Sequence[Token]) -> list[PiiSpan]:
    """Numbers read out digit by digit or in groups ("vier sieben eins eins", "4 7 1 1", "null eins sieben ...")."""
    spans: list[PiiSpan] = []
    i = 0
    while i < len(toks):
        startable = toks[i].text not in ("hundert", "tausend") and _may_start_number(toks[i])
        run = read_number_run(toks, i) if startable else None
        if run is None:
            i += 1
            continue
        keyword = _number_keyword(toks, i)
        long_enough = run.parts >= 4 or (len(run.digits) >= 3 and keyword is not None)
        if long_enough and keyword not in _IMPERSONAL_NUMBERS and not is_service_number(run.digits):
            mask = "*" * max(0, len(run.digits) - 2) + run.digits[-2:]
            spans.append(PiiSpan(toks[i].start, toks[run.end - 1].end, "number", mask, 8))
        i = max(run.end, i + 1)
    return spans


def find_spoken_spans(text: str, this_year: int) -> list[PiiSpan]:
    toks = tokenize(text)
    return [
        *find_birth_dates(text, toks, this_year),
        *find_names(text, toks),
        *find_spoken_emails(text, toks),
        *find_number_runs(text, toks),
    ]

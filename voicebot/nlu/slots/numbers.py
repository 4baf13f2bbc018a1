"""Reference numbers (customer, contract, order, ...), postcodes, bare numbers.

Which kind a number is comes from the keyword said before it
("Kundennummer vier sieben eins eins" -> customer_number "4711"). A long
number without a keyword is reported as ``number`` so the dialog can ask
what it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .money import AMOUNT_AFTER_WORDS
from .plates import read_spelled_letter
from .tokens import NumberRun, SlotMatch, Token, free, index_at, joined, read_number_run, skip, tokenize

# The noun part: "nummer", "nr", "-nr.", split by ASR or not; whisper writes "Versicherungs number" too.
_NR = r"(?: ?- ?| )?(?:nummer|nr|number)n?\b"

#: (slot, keyword regex over the space-joined lower-case tokens).
REFERENCE_KEYWORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("customer_number", re.compile(r"\bkunden?" + _NR + r"|\bkd ?- ?nr\b")),
    ("contract_number", re.compile(r"\bvertrags?" + _NR)),
    ("order_number", re.compile(r"\b(?:bestell|auftrags?)" + _NR)),
    (
        "policy_number",
        re.compile(
            r"\bversicherungs(?:schein)?"
            + _NR
            + r"|\bpolicen?"
            + _NR
            + r"|\bpolizzen?"
            + _NR
            + r"|\bversicherungsschein\b|\bscheinnummer\b"
        ),
    ),
    ("invoice_number", re.compile(r"\brechnungs?" + _NR)),
    # whisper splits the word: "Mit Gliedsnummer", "Mit Glieds Nummer"
    ("member_number", re.compile(r"\bmit ?glieds?" + _NR + r"|\bmitglieder" + _NR + r"|\bversicherten" + _NR)),
)

_POSTCODE_KEYWORD = re.compile(r"\bpostleitzahl\b|\bpost leitzahl\b|\bplz\b")

# What callers put between keyword and number ("... ist äh die ...").
_LEAD_IN = frozenset(
    {
        "ist",
        "is",
        "isch",
        "lautet",
        "lauten",
        "wäre",
        "war",
        "lautete",
        "die",
        "das",
        "des",
        "dat",
        "meine",
        "mein",
        "also",
        "ja",
        "genau",
        "hier",
        "steht",
        "da",
        "drauf",
        "nummer",
        "nr",
        "und",
        "zwar",
        "ähm",
        ".",
        ":",
        ",",
        "-",
        "moment",
        "mal",
        "sekunde",
        "warten",
        "sie",
        "neue",
        "alte",
    }
)


# Digits a reference must have at least; "Kundennummer zwei" is no reference.
_MIN_REFERENCE_DIGITS = 3

# "sieben sieben acht, Entschuldigung, sieben sieben acht vier null zwei":
# the caller corrects himself, the number after the correction counts.
_CORRECTIONS = frozenset({"entschuldigung", "nein", "quatsch", "korrektur", "sorry", "pardon", "falsch", "moment"})


def _corrected(tokens: Sequence[Token], run: NumberRun, taken: set[int]) -> NumberRun:
    """The number said after a self-correction following ``run``, else ``run``."""
    i = run.end
    saw_correction = False
    while i < len(tokens) and (
        tokens[i].text in _CORRECTIONS or tokens[i].text in (",", ".", "ich", "meine", "mein", "also")
    ):
        saw_correction = saw_correction or tokens[i].text in _CORRECTIONS
        i += 1
    if not saw_correction:
        return run
    again = read_number_run(tokens, i, taken)
    if again is None or len(again.digits) < _MIN_REFERENCE_DIGITS:
        return run
    return NumberRun(again.digits, run.start, again.end, again.parts)


def _glued_continued(tokens: Sequence[Token], run: NumberRun, taken: set[int]) -> NumberRun:
    """``run`` and the digit groups glued to it by dots or commas: "Kundennummer ist 10.12.51." -> "101251".

    Whisper writes pairs said after a keyword in a date's shape ("zehn null zwei einundfünfzig" -> "10.02.51");
    a reference number is never a date, so after the keyword the dots are the caller's pauses."""
    end, digits, parts = run.end, run.digits, run.parts
    while (end + 1 < len(tokens) and tokens[end].text in (".", ",") and tokens[end + 1].is_digits
           and end not in taken and end + 1 not in taken and tokens[end - 1].is_digits
           and tokens[end].start == tokens[end - 1].end and tokens[end + 1].start == tokens[end].end):
        digits, parts, end = digits + tokens[end + 1].text, parts + 1, end + 2
    if end < len(tokens) and tokens[end].text in AMOUNT_AFTER_WORDS:  # "Kundennummer 12,50 Euro": an amount
        return run
    return NumberRun(digits, run.start, end, parts)


def _comma_continued(tokens: Sequence[Token], run: NumberRun, taken: set[int]) -> NumberRun:
    """``run`` and the written groups after its commas, when the turn ends there: "Kundennummer, 067, 723." ->
    "067723", "Kundennummer, 0.37, 6.46, 25." -> "03764625" (whisper writes digits dictated in groups as a comma
    list, a group sometimes as a decimal). Groups of at most 4 digits and nothing but punctuation after the last,
    so "Bestellnummer 123, 45 Euro" or "12345, 2 Stück" stay as they are."""
    i = run.end
    if not (tokens[i - 1].is_digits and len(tokens[i - 1].text) <= 4):
        return run
    digits, parts = run.digits, run.parts
    while (i + 1 < len(tokens) and tokens[i].text == "," and i not in taken and i + 1 not in taken
           and tokens[i + 1].is_digits and len(tokens[i + 1].text) <= 4):
        group = _glued_continued(tokens, NumberRun(tokens[i + 1].text, i + 1, i + 2, 1), taken)
        digits, parts, i = digits + group.digits, parts + group.parts, group.end
    if i == run.end or any(t.text.isalnum() for t in tokens[i:]):
        return run
    return NumberRun(digits, run.start, i, parts)


def find_reference_numbers(tokens: Sequence[Token], taken: set[int]) -> list[SlotMatch]:
    """All keyword-led numbers: customer, contract, order, policy, invoice, member."""
    text, offsets = joined(tokens)
    found: list[tuple[int, SlotMatch]] = []
    for slot, pattern in REFERENCE_KEYWORDS:
        for m in pattern.finditer(text):
            kw_start = index_at(offsets, m.start())
            i = skip(tokens, index_at(offsets, m.end()), _LEAD_IN)
            prefix = ""
            spelled = read_spelled_letter(tokens, i)
            # Policy and health-insurance numbers often start with a letter
            # ("A wie Anton eins zwei drei ..."); take it if digits follow.
            if spelled is not None:
                letter, after = spelled
                if read_number_run(tokens, after, taken) is not None:
                    prefix, i = letter, after
            elif i < len(tokens) and tokens[i].raw.isalpha() and tokens[i].raw.isupper() and len(tokens[i].raw) <= 3:
                # written "AB-12345": a capitalised letter group, maybe a hyphen, digits
                after = i + 2 if i + 1 < len(tokens) and tokens[i + 1].text == "-" else i + 1
                if read_number_run(tokens, after, taken) is not None:
                    prefix, i = tokens[i].raw, after
            run = read_number_run(tokens, i, taken)
            if run is None or (run.end < len(tokens) and tokens[run.end].text in AMOUNT_AFTER_WORDS):
                continue  # "Rechnungsnummer ... 1.250 Euro": an amount after the keyword is the amount, not the number
            run = _corrected(tokens, run, taken)
            run = _comma_continued(tokens, _glued_continued(tokens, run, taken), taken)
            if len(run.digits) < _MIN_REFERENCE_DIGITS or not free(taken, kw_start, run.end):
                continue
            found.append((m.start(), SlotMatch(slot, prefix + run.digits, kw_start, run.end)))
    found.sort(key=lambda pair: pair[0])
    return [match for _, match in found]


def find_postcode(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """A five-digit postcode after "Postleitzahl"/"PLZ", or written before a city."""
    text, offsets = joined(tokens)
    for m in _POSTCODE_KEYWORD.finditer(text):
        kw_start = index_at(offsets, m.start())
        i = skip(tokens, index_at(offsets, m.end()), _LEAD_IN)
        run = read_number_run(tokens, i, taken)
        if run is not None and len(run.digits) == 5 and free(taken, kw_start, run.end):
            return SlotMatch("postcode", run.digits, kw_start, run.end)
    # "80331 München": written five digits followed by a capitalised word.
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if (
            i not in taken
            and tok.is_digits
            and len(tok.text) == 5
            and nxt.raw[:1].isupper()
            and nxt.raw.isalpha()
            and (i == 0 or not tokens[i - 1].is_digits)
        ):
            return SlotMatch("postcode", tok.text, i, i + 1)
    return None


def find_bare_number(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """A long number nobody claimed: 5+ digits, or 4+ digits read out in 3+ pieces.

    Short numbers are left alone so that "zwei Fragen" or a year like
    "2024" do not turn into a slot.
    """
    i = 0
    while i < len(tokens):
        if i in taken:
            i += 1
            continue
        run = read_number_run(tokens, i, taken)
        if run is None:
            i += 1
            continue
        if len(run.digits) >= 5 or (len(run.digits) >= 4 and run.parts >= 3):
            return SlotMatch("number", run.digits, run.start, run.end)
        i = run.end
    return None


def parse_reference_numbers(text: str) -> dict[str, str]:
    """Keyword-led numbers in ``text``, e.g. {"customer_number": "4711"}."""
    result: dict[str, str] = {}
    for match in find_reference_numbers(tokenize(text), set()):
        result.setdefault(match.name, match.value)
    return result


def parse_postcode(text: str) -> str | None:
    """The postcode in ``text`` ("Postleitzahl acht null drei drei eins" -> "80331")."""
    match = find_postcode(tokenize(text), set())
    return match.value if match else None


def parse_spoken_digits(text: str) -> str | None:
    """The first spoken number in ``text`` as a digit string ("vier sieben eins eins" -> "4711")."""
    tokens = tokenize(text)
    for i in range(len(tokens)):
        run = read_number_run(tokens, i)
        if run is not None:
            return run.digits
    return None

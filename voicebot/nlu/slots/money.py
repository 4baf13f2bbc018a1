"""Euro amounts and IBANs.

Amounts come back as "49.90 EUR". An IBAN is returned only when schwifty
accepts its checksum; a misheard one is reported as ``iban_invalid`` so the
dialog can ask again instead of storing wrong bank details.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from schwifty.registry import get_iban_spec
from text_to_num import text2num

from .plates import read_spelled_letter
from .tokens import FILLERS, SlotMatch, Token, free, index_at, joined, read_number_run, tokenize, word_value

_CURRENCY = frozenset({"euro", "eur", "€", "euros", "öre"})  # "öre": a frequent ASR slip for "Euro"
_CENT = frozenset({"cent", "ct", "cents"})
# Words that, right after a digit chain, make it an amount rather than dictated digits ("12,50 Euro", "3 %"):
# the chain joiners of ``voicebot.nlu.slots`` and the keyword-led numbers leave such a chain as it is.
AMOUNT_AFTER_WORDS = frozenset({"€", "euro", "eur", "cent", "prozent", "%"})
# "ein paar hundert Euro" is no amount.
_VAGUE = frozenset({"paar", "einige", "einigen", "mehrere", "mehreren", "etliche"})

# Written IBANs: country, check digits, then groups; letters in groups only
# in capitals so that a following word ("und") is not swallowed.
_WRITTEN_IBAN = re.compile(r"\b[A-Za-z]{2} ?\d{2}(?: ?(?:\d{4}|[A-Z0-9]{4})){3,}(?: ?\d{1,3})?\b")
_IBAN_KEYWORD = re.compile(r"\biban\b|\bi ban\b|\bbankverbindung\b|\bkontoverbindung\b|\bibahn\b|\beiban\b")
_IBAN_LEAD_IN = frozenset({"ist", "is", "lautet", "die", "meine", "neue", "also", "ja", ":", "nummer", "wäre"})


def _format(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))} EUR"


def _word_number(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
    """A number said in words from ``i`` ("ein hundert zwanzig" -> 120) or digits."""
    if i >= len(tokens):
        return None
    if tokens[i].is_digits:
        return int(tokens[i].text), i + 1
    words: list[str] = []
    j = i
    while j < len(tokens):
        text = tokens[j].text
        is_article_one = text == "ein" and j + 1 < len(tokens) and word_value(tokens[j + 1].text) is not None
        if tokens[j].is_digits or (word_value(text) is None and not is_article_one):
            break
        words.append(text)
        j += 1
    # Shrink from the right until text2num accepts the words as one number.
    while words:
        try:
            return int(text2num(" ".join(words), "de")), i + len(words)
        except ValueError:
            words.pop()
    return None


def _number(tokens: Sequence[Token], i: int) -> tuple[Decimal, int] | None:
    """A decimal number: "49,90", "1.234,56", "zwölf komma fünf", "hundertzwanzig"."""
    n = len(tokens)
    if i >= n:
        return None
    if tokens[i].is_digits:
        whole = tokens[i].text
        j = i + 1
        # thousands groups: "1.234"
        while j + 1 < n and tokens[j].text == "." and tokens[j + 1].is_digits and len(tokens[j + 1].text) == 3:
            whole += tokens[j + 1].text
            j += 2
        if j + 1 < n and tokens[j].text in (",", ".") and tokens[j + 1].is_digits and len(tokens[j + 1].text) <= 2:
            return Decimal(f"{whole}.{tokens[j + 1].text}"), j + 2
        if j + 1 < n and tokens[j].text == "," and tokens[j + 1].text == "-":
            return Decimal(whole), j + 2  # "49,-"
        return Decimal(whole), j
    said = _word_number(tokens, i)
    if said is None:
        return None
    value, j = said
    if j + 1 < n and tokens[j].text == "komma":
        decimals = read_number_run(tokens, j + 1)
        if decimals is not None and len(decimals.digits) <= 2:
            return Decimal(f"{value}.{decimals.digits}"), decimals.end
    return Decimal(value), j


def _cents(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
    """Cents after "Euro": "neunzig", "und neunzig Cent", "90"."""
    while i < len(tokens) and tokens[i].text in FILLERS:
        i += 1
    j = i + 1 if i < len(tokens) and tokens[i].text == "und" else i
    said = _word_number(tokens, j)
    if said is None or not 0 <= said[0] <= 99:
        return None
    end = said[1]
    if end < len(tokens) and tokens[end].text in _CENT:
        return said[0], end + 1
    if j != i:  # "und neunzig" without "Cent" is too vague
        return None
    return said[0], end


def find_amount(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """The first euro amount in the token list."""
    n = len(tokens)
    for i in range(n):
        if i in taken:
            continue
        # "€ 49,90"
        if tokens[i].text in ("€", "eur") and i + 1 < n:
            number = _number(tokens, i + 1)
            if number is not None and free(taken, i, number[1]):
                return SlotMatch("amount", _format(number[0]), i, number[1])
        if i > 0 and tokens[i - 1].text in _VAGUE:
            continue
        number = _number(tokens, i)
        if number is None:
            continue
        value, j = number
        while j < n and tokens[j].text in FILLERS:
            j += 1
        if j < n and tokens[j].text in _CURRENCY:
            end = j + 1
            cents = _cents(tokens, end) if value == value.to_integral_value() else None
            if cents is not None:
                value += Decimal(cents[0]) / 100
                end = cents[1]
            if free(taken, i, end):
                return SlotMatch("amount", _format(value), i, end)
        elif j < n and tokens[j].text in _CENT and value < 100 and free(taken, i, j + 1):
            return SlotMatch("amount", _format(value / 100), i, j + 1)
    return None


def check_iban(candidate: str) -> tuple[bool, str]:
    """(valid, compact form) for an IBAN candidate, by schwifty's checks."""
    compact = re.sub(r"\s+", "", candidate).upper()
    try:
        return True, IBAN(compact).compact
    except SchwiftyException:
        return False, compact


def _expected_length(country: str) -> int | None:
    try:
        return int(get_iban_spec(country).iban_length)
    except SchwiftyException:
        return None


def _iban_from(tokens: Sequence[Token], i: int, taken: set[int], *, keyword: bool) -> tuple[str, int] | None:
    """Country letters then a spoken/grouped digit run: the candidate and end index."""
    first = read_spelled_letter(tokens, i, loose=True)
    if tokens[i].text.isalpha() and len(tokens[i].text) == 2 and (first is None or first[1] == i + 1):
        country, j = tokens[i].text.upper(), i + 1  # "de"
    elif first is not None:
        second = read_spelled_letter(tokens, first[1], loose=True)
        if second is None:
            return None
        country, j = first[0] + second[0], second[1]
    else:
        return None
    length = _expected_length(country)
    if length is None:
        return None
    run = read_number_run(tokens, j, taken)
    # Without a keyword, only a run as long as a whole IBAN is believed.
    if run is None or len(run.digits) < (4 if keyword else length - 2):
        return None
    return country + run.digits[: length - 2], run.end


def find_iban(tokens: Sequence[Token], taken: set[int], raw_text: str) -> SlotMatch | None:
    """An IBAN (``iban``) or a candidate that fails the checksum (``iban_invalid``)."""
    for m in _WRITTEN_IBAN.finditer(raw_text):
        idx = [k for k, tok in enumerate(tokens) if tok.start >= m.start() and tok.end <= m.end()]
        if idx and free(taken, idx[0], idx[-1] + 1):
            valid, compact = check_iban(m.group(0))
            return SlotMatch("iban" if valid else "iban_invalid", compact, idx[0], idx[-1] + 1)
    text, offsets = joined(tokens)
    starts = [index_at(offsets, m.end()) for m in _IBAN_KEYWORD.finditer(text)]
    candidates: list[tuple[int, bool]] = []
    for s in starts:
        k = s
        while k < len(tokens) and (tokens[k].text in _IBAN_LEAD_IN or tokens[k].text in FILLERS):
            k += 1
        candidates.append((k, True))
    candidates += [(k, False) for k in range(len(tokens))]
    for k, keyword in candidates:
        if k >= len(tokens) or k in taken:
            continue
        found = _iban_from(tokens, k, taken, keyword=keyword)
        if found is None or not free(taken, k, found[1]):
            continue
        valid, compact = check_iban(found[0])
        return SlotMatch("iban" if valid else "iban_invalid", compact, k, found[1])
    return None


def parse_amount(text: str) -> str | None:
    """The euro amount in ``text`` as "49.90 EUR" ("neunundvierzig Euro neunzig"), else None."""
    match = find_amount(tokenize(text), set())
    return match.value if match else None


def parse_iban(text: str) -> str | None:
    """A checksum-valid IBAN in ``text`` in compact form, else None."""
    match = find_iban(tokenize(text), set(), text)
    return match.value if match is not None and match.name == "iban" else None

"""Slots from speech: reference numbers, plates, dates, times, amounts, IBANs, phones.

Input is ASR output in German: any casing, numbers as words or digits,
letters spelled with the German spelling alphabet. ``extract_slots`` runs
every parser over one shared token list; a stretch of speech that one
parser has claimed is not read again by the next, so a customer number is
not also reported as a phone number. The order below goes from the most
specific shape (an IBAN, a spelled plate) to the least (a bare number).

Keys: customer_number, contract_number, order_number, policy_number,
invoice_number, member_number, number, licence_plate, postcode, date, time,
amount, iban, iban_invalid, phone, email.
"""

from __future__ import annotations

import datetime as dt
import re

from .contact import find_email, find_phone, parse_email, parse_phone
from .dates import find_date, parse_date
from .money import AMOUNT_AFTER_WORDS, check_iban, find_amount, find_iban, parse_amount, parse_iban
from .numbers import (
    find_bare_number,
    find_postcode,
    find_reference_numbers,
    parse_postcode,
    parse_reference_numbers,
    parse_spoken_digits,
)
from .plates import find_licence_plate, parse_licence_plate
from .times import find_time, parse_time
from .tokens import SlotMatch, tokenize

__all__ = [
    "check_iban",
    "extract_slots",
    "parse_amount",
    "parse_date",
    "parse_email",
    "parse_iban",
    "parse_licence_plate",
    "parse_phone",
    "parse_postcode",
    "parse_reference_numbers",
    "parse_spoken_digits",
    "parse_time",
]


# Whisper writes digit sequences said one by one as if they were thousands ("4.7118", "47.118") or as dotted
# single digits ("4.7.1.1.2.3.", "9.001.25."). A dotted chain is a date ("14.02.", "14.02.26", "3.3.2027") or a
# decimal ("4.50") only in those shapes: any other chain is the digits the caller said, so its dots go.
_DOTTED_CHAIN = re.compile(r"(?<![\d.])\d+(?:\.\d+)+(?!\d)")


def _digit_chain(match: re.Match[str]) -> str:
    groups = match.group(0).split(".")
    if len(groups) == 2:
        kept = len(groups[1]) <= 2  # "14.02", "4.50"; a group of three or more digits is never a date or cents
    else:
        kept = len(groups) == 3 and len(groups[0]) <= 2 and len(groups[1]) <= 2 and len(groups[2]) in (2, 4)
        # "85.28.08" ("fünfundachtzig achtundzwanzig null acht") has the shape of a date but no day 85 or month 28:
        # only a chain that could be a date (day 1-31, month 1-12) stays one.
        kept = kept and 1 <= int(groups[0]) <= 31 and 1 <= int(groups[1]) <= 12
    return match.group(0) if kept else "".join(groups)


# Whisper writes digits said one by one or in pairs as a comma list ("0, 11, 86, 25", "2,0,2,4,1, 1", "1,63,72",
# "Rechnungsnummer, 597, 971, 1."). A written decimal ("49,90") has one comma: a chain of three or more groups is
# the digits the caller said, unless it is a list of decimals ("3,50, 4,20": a 2-digit group glued to its comma,
# then a spaced comma) or an amount follows.
_COMMA_CHAIN = re.compile(r"(?<![\d,.])\d{1,4}(?:, ?\d{1,4}){2,}(?!\d|[.,]\d)")
_DECIMAL_LIST = re.compile(r"\d,\d\d, ")
_AMOUNT_AFTER = re.compile(r"\s*(?:" + "|".join(re.escape(w) + (r"\b" if w.isalpha() else "")
                                                  for w in sorted(AMOUNT_AFTER_WORDS)) + ")", re.IGNORECASE)


def _comma_chain(match: re.Match[str]) -> str:
    chain = match.group(0)
    if _DECIMAL_LIST.search(chain + " ") or _AMOUNT_AFTER.match(match.string, match.end()):
        return chain
    return re.sub(r", ?", "", chain)


def _join_digit_groups(text: str) -> str:
    return _COMMA_CHAIN.sub(_comma_chain, _DOTTED_CHAIN.sub(_digit_chain, text))


def extract_slots(text: str, today: dt.date | None = None) -> dict[str, str]:
    """All slots found in one utterance, e.g. {"customer_number": "4711", "date": "2026-03-03"}.

    ``today`` anchors relative dates ("morgen", "nächsten Dienstag");
    it defaults to the current date. Only the first value of each key is kept.
    """
    today = today or dt.date.today()
    tokens = tokenize(_join_digit_groups(text))
    taken: set[int] = set()
    result: dict[str, str] = {}

    def claim(match: SlotMatch | None) -> None:
        if match is None or match.name in result or any(i in taken for i in match.indices()):
            return
        result[match.name] = match.value
        taken.update(match.indices())

    claim(find_iban(tokens, taken, text))
    claim(find_email(tokens, taken))
    claim(find_licence_plate(tokens, taken))
    for match in find_reference_numbers(tokens, taken):
        claim(match)
    claim(find_phone(tokens, taken))
    claim(find_postcode(tokens, taken))
    claim(find_amount(tokens, taken))
    claim(find_date(tokens, taken, today))
    claim(find_time(tokens, taken))
    claim(find_bare_number(tokens, taken))
    return result

"""Written personal data found by pattern: IBANs (whole or in pieces), e-mail, phone and reference numbers.

Each finder returns ``PiiSpan``s (character ranges with their mask); ``redact``
resolves overlaps and applies them. Spoken forms (dates, names, numbers read
out word by word) are found on tokens in ``pii_spoken``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PiiSpan:
    """``text[start:end]`` is personal data of ``kind``; ``mask`` replaces it. Lower ``rank`` wins overlaps."""

    start: int
    end: int
    kind: str
    mask: str
    rank: int


# --- maskers ----------------------------------------------------------------------------


def mask_iban(iban: str) -> str:
    """``DE89 3704 0044 0532 0130 00`` -> ``DE89 **** **** **** **** 00`` (printed in groups of four)."""
    compact = re.sub(r"\s", "", iban).upper()
    if len(compact) < 8:
        return "*" * len(compact)
    masked = compact[:4] + "*" * (len(compact) - 6) + compact[-2:]
    return " ".join(masked[i : i + 4] for i in range(0, len(masked), 4))


def mask_digits(value: str, keep: int = 2) -> str:
    """Replace every digit but the last ``keep`` with ``*``; separators and letters stay."""
    digits = sum(ch.isdigit() for ch in value)
    if digits <= keep:
        return re.sub(r"\d", "*", value) if digits > 1 else value
    seen = 0
    out = []
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_phone(value: str) -> str:
    """Keep an international prefix (``+49``) and the last two digits."""
    prefix = ""
    for p in ("+49", "0049"):
        if value.startswith(p):
            prefix, value = p, value[len(p) :]
            break
    return prefix + mask_digits(value)


def mask_email(value: str) -> str:
    """``max.muster@example.de`` -> ``m***@e***.de``."""
    local, _, domain = value.partition("@")
    host, _, tld = domain.rpartition(".")
    if not local or not host:
        return "***"
    return f"{local[0]}***@{host[0]}***.{tld}"


def mask_iban_fragment(value: str) -> str:
    """A piece of an IBAN (``DE89 3704 00``): country and check digits stay, every other digit goes."""
    head = re.match(r"[A-Z]{2} ?\d{2}", value)
    cut = head.end() if head else 0
    return value[:cut] + re.sub(r"\d", "*", value[cut:])


# --- patterns ---------------------------------------------------------------------------

# IBAN: country code, two check digits, 11..30 alphanumerics, optionally in groups of 4.
# Upper-case body: a lower-case word after the IBAN ("... 3201 ist") must not become its tail.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")

# An IBAN cut short by a partial transcript ("meine IBAN ist DE89 3704 00"): upper-case country,
# check digits (ASR may put a space in between), at least one more group of digits.
_IBAN_PIECE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2} ?\d{2}(?:,? ?\d{1,6})+(?![A-Za-z0-9])")

# Digit groups as ASR writes a dictated number: "83970, 40, 4453, 21, 30" (>= 3 groups, >= 6 digits).
_COMMA_GROUPS = re.compile(r"(?<![\w,.])\d{1,6}(?:, ?\d{1,6}){2,}(?![\w*])(?!,\d)")

_IBAN_START = re.compile(r"[A-Z]{2} ?\d{2}")

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.([A-Za-z]{2,24})\b")

# German phone numbers: +49 / 0049 / 0 prefix, then 6..13 digits with optional separators ("030 - 12 34").
_PHONE = re.compile(r"(?<![\w+])(?:\+49|0049|0)[ ]?\(?0?\)?[ ]?[1-9](?: ?[/-]? ?\d){5,13}\b")

# Reference numbers announced by a keyword: "Kundennummer 12 34 56", "Kundennummer 4.711.815",
# "Vertragsnr.: KV-88123", "Telefonnummer 2345678", "IBAN ist 3704 0044".
_REF_KEYWORD: Final = (
    r"(?:kunden|vertrags|bestell|auftrags|policen|polizzen|police|versicherungs(?:schein)?|versicherten|mitglieds|"
    r"rechnungs|konto|vorgangs|schadens?|referenz|sendungs|kundenkonto|zähler|steuer|steuer-?id|"
    r"sozialversicherungs|renten(?:versicherungs)?|krankenversicherten|krankenversicherungs|personalausweis|"
    r"ausweis|pass|buchungs|telefon|handy|mobil|ruf|festnetz|fax|versicherungsschein|fall|ticket)"
    r"[- ]?(?:nummer|nr\.?)|kd\.?[- ]?nr\.?|vers\.?[- ]?nr\.?|aktenzeichen|iban|durchwahl|steuer-?id"
)
_REFERENCE = re.compile(
    rf"(?P<kw>\b(?:{_REF_KEYWORD}))(?P<sep>[\s:,]*(?:ist|lautet|wäre|war|:)?[\s:,]*)"
    r"(?P<num>[A-Z]{0,4}[-/ ]?\d(?:(?: ?[-/.] ?| )?[A-Z0-9]){2,30})",
    re.IGNORECASE,
)

# Any other long run of digits (>= 6, possibly space-grouped) is an identifier too; dotted and
# dashed runs are dates and amounts ("12.03.2024", "2024-03-03", "1.250.000") and stay.
_LONG_NUMBER = re.compile(r"(?<![\w*])(?<!\d[.-])\d(?:[ /]?\d){5,}(?![\w*])(?![.-]\d)")

# Toll-free, service and emergency numbers are nobody's personal data, and an agent must see
# them when the bot reads them out (Telefonseelsorge 0800 111 0 111, 116 117, 112).
SERVICE_PREFIXES: Final = ("0800", "0180", "0900", "116", "112", "110", "+49800", "0049800")


def is_service_number(number: str) -> bool:
    return re.sub(r"[\s/()-]", "", number).startswith(SERVICE_PREFIXES)


def _looks_like_iban(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate)
    # 15 is the shortest IBAN (Norway); the body must be mostly digits to not catch words.
    return len(compact) >= 15 and sum(ch.isdigit() for ch in compact) >= len(compact) - 6


def find_pattern_spans(text: str) -> list[PiiSpan]:
    """Every written IBAN, e-mail address, phone and reference number in ``text``."""
    spans: list[PiiSpan] = []

    def add(pattern: re.Pattern[str], kind: str, rank: int, mask: Callable[[re.Match[str]], str | None]) -> None:
        for m in pattern.finditer(text):
            masked = mask(m)
            if masked is not None and masked != m.group(0):
                spans.append(PiiSpan(m.start(), m.end(), kind, masked, rank))

    add(_IBAN, "iban", 0, lambda m: mask_iban(m.group(0)) if _looks_like_iban(m.group(0)) else None)
    add(_EMAIL, "email", 1, lambda m: mask_email(m.group(0)))
    for m in _REFERENCE.finditer(text):
        num = m.group("num")
        if is_service_number(num):
            continue
        if _IBAN_START.match(num):  # "IBAN ist DE89 3704": the IBAN's own mask, whole or in pieces
            masked = mask_iban(num) if _looks_like_iban(num) else mask_iban_fragment(num)
        else:
            masked = mask_digits(num)
        spans.append(PiiSpan(m.start("num"), m.end("num"), "reference", masked, 3))
    add(_PHONE, "phone", 4, lambda m: None if is_service_number(m.group(0)) else mask_phone(m.group(0)))
    add(_IBAN_PIECE, "iban", 6, lambda m: mask_iban_fragment(m.group(0)))
    add(_COMMA_GROUPS, "number", 7,
        lambda m: mask_digits(m.group(0)) if sum(c.isdigit() for c in m.group(0)) >= 6 else None)
    add(_LONG_NUMBER, "number", 7, lambda m: None if is_service_number(m.group(0)) else mask_digits(m.group(0)))
    return spans

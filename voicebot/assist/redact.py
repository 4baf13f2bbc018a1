"""Personal-data masking for the call store and the agents' view.

Masks keep just enough for a human to check a value with the caller ("ends in
00?") and nothing that identifies anyone: an IBAN keeps its country code,
check digits and last two digits (``DE89 **** **** **** **** 00``), numbers
keep their last two digits, e-mail addresses their first letters and the
top-level domain, dates of birth nothing.

Two entry points: ``redact_text`` for free text (transcripts, summaries) and
``redact_event`` for whole event dicts (slots are masked by their key, every
other string by pattern). Both are pure functions: safe from any thread.
"""

from __future__ import annotations

import re
from typing import Any, Final

# --- patterns -------------------------------------------------------------------------

# IBAN: country code, two check digits, 11..30 alphanumerics, optionally in groups of 4.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.IGNORECASE)

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.([A-Za-z]{2,24})\b")

# German phone numbers: +49 / 0049 / 0 prefix, then 6..13 digits with optional separators.
_PHONE = re.compile(r"(?<![\w+])(?:\+49|0049|0)[ ]?\(?0?\)?[ ]?[1-9](?:[ /-]?\d){5,13}\b")

# Reference numbers announced by a keyword: "Kundennummer 12 34 56", "Vertragsnr.: KV-88123".
_REF_KEYWORD = (
    r"(?:kunden|vertrags|bestell|auftrags|policen|polizzen|versicherungs(?:schein)?|mitglieds|rechnungs|"
    r"konto|vorgangs|schadens|referenz|sendungs|kundenkonto)[- ]?(?:nummer|nr\.?)|kd\.?[- ]?nr\.?"
)
_REFERENCE = re.compile(
    rf"(?P<kw>\b(?:{_REF_KEYWORD}))(?P<sep>[\s:,]*(?:ist|lautet|wäre|war)?[\s:,]*)"
    r"(?P<num>[A-Z]{0,4}[-/ ]?\d(?:[-/ ]?[A-Z0-9]){2,24})",
    re.IGNORECASE,
)

# Any other long run of digits (>= 6, possibly space-grouped) is an identifier too; dotted and
# dashed runs are dates and amounts ("12.03.2024", "2024-03-03", "1.250.000") and stay.
_LONG_NUMBER = re.compile(r"(?<![\w*])(?<!\d[.-])\d(?:[ /]?\d){5,}(?![\w*])(?![.-]\d)")

_MONTHS = (
    r"januar|jänner|februar|märz|maerz|april|mai|juni|juli|august|september|oktober|november|dezember"
)
_DOB = re.compile(
    r"(?P<kw>\b(?:geboren(?:\s+am)?|geb\.|geburtsdatum(?:\s+(?:ist|lautet))?|geburtstag(?:\s+(?:ist|am))?)"
    r"[\s:,]*(?:der\s+|am\s+|den\s+)?)"
    r"(?P<date>\d{1,2}\.\s?\d{1,2}\.\s?\d{2,4}"
    rf"|\d{{1,2}}\.?\s+(?:{_MONTHS})(?:\s+\d{{2,4}})?"
    rf"|[a-zäöüß]+(?:ten|ter)\s+(?:{_MONTHS}|[a-zäöüß]+(?:ten|ter))(?:\s+[a-zäöüß]+(?:zig|hundert[a-zäöüß]*)|\s+\d{{4}})?)",
    re.IGNORECASE,
)

DOB_MASK: Final = "**.**.****"

# Toll-free, service and emergency numbers are nobody's personal data, and an agent must see
# them when the bot reads them out (Telefonseelsorge 0800 111 0 111, 116 117, 112).
_SERVICE_PREFIXES: Final = ("0800", "0180", "0900", "116", "112", "110", "+49800", "0049800")

# Slot keys (voicebot.nlu.slots) whose values are personal data, and how to mask them.
_SLOT_MASKS: Final = {
    "iban": "iban",
    "iban_invalid": "iban",
    "phone": "digits",
    "email": "email",
    "customer_number": "digits",
    "contract_number": "digits",
    "order_number": "digits",
    "policy_number": "digits",
    "invoice_number": "digits",
    "member_number": "digits",
    "number": "digits",
    "licence_plate": "plate",
    "date_of_birth": "dob",
    "birth_date": "dob",
}

# Keys whose values are structure, not content: never rewritten.
_STRUCTURAL_KEYS: Final = frozenset(
    {"type", "call_id", "label", "action", "reason", "route", "intent", "ts", "seq", "code", "agent_id",
     "protocol", "encoding", "state", "speaker", "kind", "stream_sid"}
)


# --- maskers --------------------------------------------------------------------------


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


def mask_plate(value: str) -> str:
    """``M-AB 1234`` -> ``M-** **34``: the district stays, the rest does not."""
    match = re.match(r"([A-ZÄÖÜ]{1,3})([- ]+)(.+)", value)
    if match is None:
        return mask_digits(value)
    district, sep, rest = match.groups()
    return district + sep + re.sub(r"[A-Za-zÄÖÜäöü]", "*", mask_digits(rest))


def mask_slot(key: str, value: str) -> str:
    """Mask one slot value by what its key says it is; other slots get the free-text rules."""
    kind = _SLOT_MASKS.get(key)
    if kind == "iban":
        return mask_iban(value)
    if kind == "email":
        return mask_email(value)
    if kind == "plate":
        return mask_plate(value)
    if kind == "dob":
        return DOB_MASK
    if kind == "digits":
        return mask_phone(value) if key == "phone" else mask_digits(value)
    return redact_text(value)


# --- text and events ------------------------------------------------------------------


def redact_text(text: str) -> str:
    """Mask IBANs, e-mail addresses, dates of birth, phone and reference numbers in free text."""
    if not text or not any(ch.isdigit() or ch == "@" for ch in text):
        # Every pattern needs a digit or an "@", except spoken dates of birth.
        return _DOB.sub(lambda m: m.group("kw") + DOB_MASK, text) if text and "geb" in text.lower() else text
    text = _IBAN.sub(lambda m: mask_iban(m.group(0)) if _looks_like_iban(m.group(0)) else m.group(0), text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _DOB.sub(lambda m: m.group("kw") + DOB_MASK, text)
    text = _REFERENCE.sub(lambda m: m.group("kw") + m.group("sep") + mask_digits(m.group("num")), text)
    text = _PHONE.sub(lambda m: _keep_service(m.group(0), mask_phone), text)
    text = _LONG_NUMBER.sub(lambda m: _keep_service(m.group(0), mask_digits), text)
    return text


def _keep_service(number: str, mask: Any) -> str:
    compact = re.sub(r"[\s/()-]", "", number)
    return number if compact.startswith(_SERVICE_PREFIXES) else str(mask(number))


def _looks_like_iban(candidate: str) -> bool:
    compact = re.sub(r"\s", "", candidate)
    # 15 is the shortest IBAN (Norway); the body must be mostly digits to not catch words.
    return len(compact) >= 15 and sum(ch.isdigit() for ch in compact) >= len(compact) - 6


def redact_event(event: dict[str, Any]) -> dict[str, Any]:
    """A redacted deep copy of an event dict; the original is left untouched.

    Word lists of a final transcript are dropped when its text needed masking,
    since a number spoken as separate words would otherwise survive word by word.
    """
    out = _redact_value(event, key=None)
    if isinstance(out, dict) and "words" in out and out.get("text") != event.get("text"):
        out["words"] = []
    return out


def _redact_value(value: Any, key: str | None) -> Any:
    if isinstance(value, str):
        return value if key in _STRUCTURAL_KEYS else redact_text(value)
    if isinstance(value, dict):
        if key == "slots":
            return {k: mask_slot(k, v) if isinstance(v, str) else _redact_value(v, k) for k, v in value.items()}
        return {k: _redact_value(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v, key) for v in value]
    return value

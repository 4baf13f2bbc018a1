"""Personal-data masking for the call store, the agents' view, logs and webhooks.

Masks keep just enough for a human to check a value with the caller ("ends in
00?") and nothing that identifies anyone: an IBAN keeps its country code,
check digits and last two digits (``DE89 **** **** **** **** 00``), numbers
keep their last two digits, e-mail addresses their first letters and the
top-level domain, names their initials (``M*** M***``), dates of birth nothing.

What is personal (the German PII corpus in ``eval/pii/`` holds the cases,
``scripts/eval_pii.py`` measures them): IBANs whole or in pieces, e-mail
addresses written or spoken, phone numbers, customer/contract/policy and other
reference numbers (digits, dotted, spaced or read out word by word), long digit
runs, names after "mein Name ist", "ich heiße", "Herr"/"Frau", and birth dates
in any written or spoken form (see ``pii_spoken`` for which dates count).
Not personal, and left readable: appointment and invoice dates of recent years,
amounts, postcodes, times, toll-free and emergency numbers, intents and words.

Two entry points: ``redact_text`` for free text (transcripts, summaries) and
``redact_event`` for whole events, as dicts or as the typed pydantic messages
(slots and caller metadata are masked by their key, every other string by
pattern). Both are pure functions: safe from any thread.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from voicebot.assist.pii_patterns import (
    PiiSpan,
    find_pattern_spans,
    mask_digits,
    mask_email,
    mask_iban,
    mask_phone,
)
from voicebot.assist.pii_spoken import DOB_MASK, find_spoken_spans

__all__ = [
    "DOB_MASK", "PiiSpan", "find_pii", "mask_digits", "mask_email", "mask_iban", "mask_phone", "mask_plate",
    "mask_slot", "redact_event", "redact_text",
]

E = TypeVar("E", dict[str, Any], BaseModel)

# Slot keys (voicebot.nlu.slots) whose values are personal data, and how to mask them.
_SLOT_MASKS: Final = {
    "iban": "iban",
    "iban_invalid": "iban",
    "phone": "phone",
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

# Caller metadata and other keys whose values are personal whatever they look like, by the key
# with case, "_", "-" and spaces removed ("Date-Of-Birth" -> "dateofbirth").
_KEY_MASKS: Final = {
    **{k: "dob" for k in ("dob", "birthdate", "dateofbirth", "birthday", "born", "geburtsdatum", "geburtstag",
                          "geburtsjahr", "gebdatum", "geboren", "birthyear")},
    **{k: "name" for k in ("name", "firstname", "lastname", "fullname", "givenname", "surname", "familyname",
                           "callername", "customername", "vorname", "nachname", "kundenname", "displayname")},
    **{k: "email" for k in ("email", "mail", "emailaddress", "emailadresse")},
    **{k: "phone" for k in ("phone", "phonenumber", "telefon", "telefonnummer", "mobile", "mobil", "handy",
                            "msisdn", "callerid", "ani", "from", "callernumber", "fromnumber")},
    **{k: "iban" for k in ("iban", "accountnumber", "kontonummer", "bankaccount")},
    **{k: "secret" for k in ("address", "adresse", "street", "strasse", "straße", "streetaddress", "anschrift",
                             "password", "passwort", "pin", "token", "ssn", "taxid", "steuerid", "passport",
                             "ausweisnummer", "creditcard", "cardnumber", "kreditkarte", "cvv")},
    **{k: "digits" for k in ("customernumber", "customerid", "kundennummer", "contractnumber", "vertragsnummer",
                             "policynumber", "policennummer", "versicherungsnummer", "membernumber")},
}

# Keys whose values are structure, not content: never rewritten.
_STRUCTURAL_KEYS: Final = frozenset(
    {"type", "call_id", "label", "action", "reason", "route", "intent", "ts", "seq", "code", "agent_id",
     "protocol", "encoding", "state", "speaker", "kind", "stream_sid"}
)
# Deeper than this, hostile metadata is not walked: it is replaced, never passed through.
_MAX_DEPTH: Final = 48


# --- maskers --------------------------------------------------------------------------


def mask_plate(value: str) -> str:
    """``M-AB 1234`` -> ``M-** **34``: the district stays, the rest does not."""
    match = re.match(r"([A-ZÄÖÜ]{1,3})([- ]+)(.+)", value)
    if match is None:
        return mask_digits(value)
    district, sep, rest = match.groups()
    return district + sep + re.sub(r"[A-Za-zÄÖÜäöü]", "*", mask_digits(rest))


def mask_name(value: str) -> str:
    """``Max Mustermann`` -> ``M*** M***``."""
    return " ".join(w[0] + "***" for w in value.split() if w) or value


def _mask_kind(kind: str, value: str) -> str:
    if kind == "iban":
        return mask_iban(value) if len(re.sub(r"\s", "", value)) >= 8 else mask_digits(value)
    if kind == "email":
        return mask_email(value) if "@" in value else redact_text(value)
    if kind == "plate":
        return mask_plate(value)
    if kind == "dob":
        return DOB_MASK
    if kind == "phone":
        return mask_phone(value) if any(ch.isdigit() for ch in value) else redact_text(value)
    if kind == "name":
        return mask_name(value)
    if kind == "secret":
        return "***"
    if kind == "digits":
        return mask_digits(value)
    return redact_text(value)


def mask_slot(key: str, value: str) -> str:
    """Mask one slot value by what its key says it is; other slots get the free-text rules."""
    return _mask_kind(_SLOT_MASKS.get(key, ""), value)


# --- text -----------------------------------------------------------------------------


def find_pii(text: str, today: dt.date | None = None) -> list[PiiSpan]:
    """The personal data in ``text``, as non-overlapping spans in text order."""
    if not text:
        return []
    year = (today or dt.date.today()).year
    candidates = sorted([*find_pattern_spans(text), *find_spoken_spans(text, year)],
                        key=lambda s: (s.rank, s.start, -(s.end - s.start)))
    # Chosen spans never overlap, so a candidate only needs checking against its two neighbours.
    starts: list[int] = []
    chosen: list[PiiSpan] = []
    for span in candidates:
        at = bisect.bisect_left(starts, span.start)
        if at > 0 and chosen[at - 1].end > span.start:
            continue
        if at < len(chosen) and chosen[at].start < span.end:
            continue
        starts.insert(at, span.start)
        chosen.insert(at, span)
    return chosen


def redact_text(text: str, today: dt.date | None = None) -> str:
    """Mask IBANs, e-mail addresses, birth dates, names, phone and reference numbers in free text."""
    spans = find_pii(text, today)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(span.mask)
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


# --- events and metadata -----------------------------------------------------------------


def redact_event(event: E) -> E:
    """A redacted deep copy of an event (a dict, or a pydantic model of the same type back).

    Word lists of a final transcript are dropped when its text needed masking,
    since a number spoken as separate words would otherwise survive word by word.
    """
    if isinstance(event, BaseModel):
        data = event.model_dump(mode="json", by_alias=True)
        red = _redact_dict(data)
        try:
            return type(event).model_validate(red)
        except ValidationError:
            # A field whose type a mask no longer fits (a pattern-checked number): keep the masked
            # values unvalidated rather than ever hand back the original.
            return type(event).model_construct(**red)
    return _redact_dict(event)


def _redact_dict(event: dict[str, Any]) -> dict[str, Any]:
    out = _redact_value(event, key=None, depth=0)
    if isinstance(out, dict) and "words" in out and out.get("text") != event.get("text"):
        out["words"] = []
    return out


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_\-.]", "", key).lower()


def _redact_value(value: Any, key: str | None, depth: int, *, keyed: bool = True) -> Any:
    """``keyed``: the key may name personal data (metadata); False for an event's own fields,
    which the protocol defines (``playback.mark``'s ``name`` is a mark, not a person)."""
    if depth > _MAX_DEPTH:
        return "***"
    kind = _KEY_MASKS.get(_norm_key(key)) if keyed and key is not None else None
    if isinstance(value, str):
        if key in _STRUCTURAL_KEYS:
            return value
        return _mask_kind(kind, value) if kind else redact_text(value)
    if isinstance(value, dict):
        if key == "slots":
            return {k: mask_slot(k, v) if isinstance(v, str) else _redact_value(v, k, depth + 1)
                    for k, v in value.items()}
        fields_keyed = "type" not in value
        return {k: _redact_value(v, k, depth + 1, keyed=fields_keyed) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v, key, depth + 1, keyed=keyed) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and kind:
        return _mask_kind(kind, str(value))  # {"customer_number": 4711, "birth_year": 1979}
    return value

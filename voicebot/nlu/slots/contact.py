"""Phone numbers and e-mail addresses as callers dictate them.

Phone numbers come back as digits: national ones keep their leading zero
("null eins sieben zwei ..." -> "01721234567"), international ones start
with "+" ("plus vier neun eins sieben zwei ..." -> "+491721234567"; a
"(0)" after the country code is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .tokens import SlotMatch, Token, free, index_at, joined, read_number_run, skip, tokenize

_PHONE_KEYWORD = re.compile(
    r"\b(?:telefon|handy|mobil|mobilfunk|festnetz|rückruf|ruf|fax)(?: ?- ?| )?(?:nummer|nr)\b|\btelefon\b|\bhandy\b"
    r"|\berreichbar (?:unter|auf)\b|\bzurückrufen unter\b|\bunter der nummer\b|\bdurchwahl\b|\bmobil\b"
)
_LEAD_IN = frozenset(
    {
        "ist",
        "is",
        "lautet",
        "die",
        "meine",
        "mein",
        "also",
        "ja",
        ":",
        "nummer",
        "unter",
        "der",
        "wäre",
        "neue",
        "auf",
        "dem",
        "am",
        "besten",
        "mich",
    }
)
_PLUS = frozenset({"+", "plus"})
_MIN_PHONE_DIGITS, _MAX_PHONE_DIGITS = 6, 15

_AT = frozenset({"@", "at", "ät", "klammeraffe"})
_DOT = frozenset({".", "punkt"})
_JOIN = {"punkt": ".", ".": ".", "minus": "-", "bindestrich": "-", "-": "-", "unterstrich": "_", "_": "_"}
# The top-level domains German callers use; the address must end in one.
_TLDS = frozenset(
    {"de", "com", "net", "org", "eu", "at", "ch", "info", "biz", "io", "online", "email", "berlin", "bayern"}
)


def _phone_from(tokens: Sequence[Token], i: int, taken: set[int]) -> tuple[str, int] | None:
    """Digits from ``i``; a leading "+"/"plus" makes it international."""
    international = i < len(tokens) and tokens[i].text in _PLUS
    j = i + 1 if international else i
    run = read_number_run(tokens, j, taken)
    if run is None:
        return None
    digits, end = run.digits, run.end
    # "+49 (0) 172 ...": the bracketed zero is not dialled from abroad.
    if (
        end + 2 < len(tokens)
        and tokens[end].text == "("
        and tokens[end + 1].text == "0"
        and tokens[end + 2].text == ")"
    ):
        rest = read_number_run(tokens, end + 3, taken)
        if rest is not None:
            digits, end = digits + rest.digits, rest.end
    if digits.startswith("00"):
        international, digits = True, digits[2:]
    if not _MIN_PHONE_DIGITS <= len(digits) <= _MAX_PHONE_DIGITS:
        return None
    return ("+" + digits if international else digits), end


def find_phone(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """A phone number after a keyword, or one that looks like one (0.../+49...)."""
    text, offsets = joined(tokens)
    for m in _PHONE_KEYWORD.finditer(text):
        kw_start = index_at(offsets, m.start())
        i = skip(tokens, index_at(offsets, m.end()), _LEAD_IN)
        found = _phone_from(tokens, i, taken)
        if found is not None and free(taken, kw_start, found[1]):
            return SlotMatch("phone", found[0], kw_start, found[1])
    for i, tok in enumerate(tokens):
        if i in taken or (i > 0 and read_number_run(tokens, i - 1, taken) is not None and tok.text not in _PLUS):
            continue  # only at the start of a run
        if tok.text in _PLUS:
            found = _phone_from(tokens, i, taken)
            if found is not None and free(taken, i, found[1]):
                return SlotMatch("phone", found[0], i, found[1])
            continue
        run = read_number_run(tokens, i, taken)
        # Without a keyword: a German number starts with 0 and has 10-12 digits.
        if run is not None and run.digits.startswith("0") and 10 <= len(run.digits) <= 12 and run.parts >= 2:
            found = _phone_from(tokens, i, taken)
            if found is not None:
                return SlotMatch("phone", found[0], i, found[1])
    return None


def find_email(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """An address dictated as "max punkt mustermann at gmx punkt de" or written."""
    n = len(tokens)
    for a, tok in enumerate(tokens):
        if tok.text not in _AT or a == 0 or a in taken:
            continue
        # local part: walk back over "x punkt y" chains
        start = a - 1
        if not tokens[start].text.isalnum():
            continue
        while start >= 2 and tokens[start - 1].text in _JOIN and tokens[start - 2].text.isalnum():
            start -= 2
        local = "".join(_JOIN.get(t.text, t.text) for t in tokens[start:a])
        # domain: "gmx punkt de", "web . de"
        end = a + 1
        parts: list[str] = []
        while end < n and tokens[end].text.isalnum():
            parts.append(tokens[end].text)
            if end + 2 < n and tokens[end + 1].text in _JOIN and tokens[end + 2].text.isalnum():
                parts.append(_JOIN[tokens[end + 1].text])
                end += 2
            else:
                end += 1
                break
        domain = "".join(parts)
        if "." not in domain or domain.rsplit(".", 1)[1] not in _TLDS or not free(taken, start, end):
            continue
        return SlotMatch("email", f"{local}@{domain}", start, end)
    return None


def parse_phone(text: str) -> str | None:
    """The phone number in ``text`` ("null eins sieben zwei ..." -> "01721234567"), else None."""
    match = find_phone(tokenize(text), set())
    return match.value if match else None


def parse_email(text: str) -> str | None:
    """The e-mail address in ``text`` ("max punkt mustermann at gmx punkt de"), else None."""
    match = find_email(tokenize(text), set())
    return match.value if match else None

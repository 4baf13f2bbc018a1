"""Tokens and spoken numbers: the common ground of all slot parsers.

ASR output arrives in any casing, with numbers as digits, as words ("vier
sieben eins eins", "siebenundzwanzig") or as a mix. Every parser works on the
same token list so that one stretch of speech is claimed by one slot only
(the customer number is not also read as a phone number).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from text_to_num import text2num

# Words, runs of digits, and single punctuation marks ("€", "+", "@", ",").
_TOKEN_RE = re.compile(r"\d+|[^\W\d_]+|[^\w\s]")

# Articles look like "one" to text2num ("ein" -> 1) but in speech they are
# almost never a digit; callers read a one as "eins".
_ARTICLES = frozenset({"ein", "eine", "einen", "einem", "einer", "eines"})

# Spoken and regional forms text2num does not know.
_NUMBER_VARIANTS: dict[str, int] = {
    "zwo": 2,
    "zwoa": 2,
    "oans": 1,
    "fuenf": 5,
    "fünfe": 5,
    "sechse": 6,
    "siebene": 7,
    "neune": 9,
    "elfe": 11,
    "zwölfe": 12,
    "fuffzehn": 15,
    "fuffzig": 50,
}

#: Hesitations and discourse particles that may sit inside a spoken number.
FILLERS = frozenset({"äh", "ähm", "öh", "öhm", "hm", "hmm", "ähh", "äähm", "eh", "ehm", "mh"})

# Punctuation that may join groups of one number ("47 11-08", "4711/08").
_RUN_JOINERS = frozenset({"-", "/"})

# "doppel null" = "00": a habit when reading out numbers.
_DOUBLERS = frozenset({"doppel", "doppelt", "doppelte", "doppelnull"})


@dataclass(frozen=True)
class Token:
    """One token of the input: ``text`` is lower case, ``raw`` as heard."""

    text: str
    raw: str
    start: int
    end: int

    @property
    def is_digits(self) -> bool:
        """True for a token of written digits ("4711")."""
        return self.text.isdigit()


@dataclass(frozen=True)
class SlotMatch:
    """A slot value found in the token list, with the tokens it used."""

    name: str
    value: str
    start: int
    end: int  # exclusive token index

    def indices(self) -> range:
        """Token indices this match claims."""
        return range(self.start, self.end)


@dataclass(frozen=True)
class NumberRun:
    """Consecutive spoken/written number tokens read as one digit string."""

    digits: str
    start: int
    end: int  # exclusive token index
    parts: int  # how many number tokens were read


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into word, digit and punctuation tokens."""
    return [Token(m.group(0).lower(), m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def word_value(word: str) -> int | None:
    """The value of one number token ("siebenundzwanzig" -> 27), else None.

    Digits are taken as written; compounds go through text2num.
    """
    if word.isdigit():
        return int(word)
    if word in _ARTICLES or not word.isalpha():
        return None
    if word in _NUMBER_VARIANTS:
        return _NUMBER_VARIANTS[word]
    try:
        return int(text2num(word, "de"))
    except ValueError:
        return None


def token_value(tok: Token) -> int | None:
    """``word_value`` of a token."""
    return word_value(tok.text)


def _digits_of(tok: Token) -> str | None:
    # Written digits keep their leading zeros ("08"); words give their value.
    if tok.is_digits:
        return tok.text
    value = word_value(tok.text)
    return None if value is None else str(value)


def _unit_of(word: str, value: int) -> int:
    # "vierhundert" -> 100, "zweitausend" -> 1000: the place the next word fills.
    if word.isdigit():
        return 1
    if word.endswith("tausend") and value % 1000 == 0:
        return 1000
    if word.endswith("hundert") and value % 100 == 0:
        return 100
    return 1


def read_number_run(tokens: Sequence[Token], start: int, taken: set[int] | None = None) -> NumberRun | None:
    """Read the number said from ``tokens[start]`` on, digit by digit or in groups.

    Groups are concatenated, because that is how callers read out a
    reference: "vier sieben eins eins" -> "4711", "dreiundvierzig zwölf" ->
    "4312", "null acht fünfzehn" -> "0815", "47 11 08" -> "471108". A round
    hundred or thousand followed by a two-digit word is one number
    ("vierhundert zwölf" -> "412"); "doppel null" -> "00". Fillers ("äh") and
    joiners ("-", "/") are skipped only between two numbers, a comma only
    between two single digits ("vier, sieben, eins, eins").
    """
    taken = taken or set()
    groups: list[tuple[str, str, int]] = []  # (digits, word, unit)
    i = start
    n = len(tokens)
    end = start
    double_next = False
    while i < n and i not in taken:
        tok = tokens[i]
        digits = _digits_of(tok)
        if digits is not None:
            value = int(digits)
            if double_next:
                digits = digits * 2
                double_next = False
            if tok.text in ("hundert", "tausend") and groups and not groups[-1][1].isdigit():
                prev_digits, prev_word, _ = groups[-1]
                mult = 100 if tok.text == "hundert" else 1000
                if int(prev_digits) < (10 if mult == 100 else 1000):
                    combined = int(prev_digits) * mult
                    groups[-1] = (str(combined), prev_word + tok.text, mult)
                    i += 1
                    end = i
                    continue
            if groups and groups[-1][2] > 1 and not tok.is_digits and 10 <= value < groups[-1][2]:
                prev_digits, prev_word, _ = groups[-1]
                groups[-1] = (str(int(prev_digits) + value), prev_word + tok.text, 1)
            else:
                groups.append((digits, tok.text, _unit_of(tok.text, value)))
            i += 1
            end = i
            continue
        if tok.text in _DOUBLERS and _next_is_number(tokens, i + 1, taken):
            double_next = True
            if tok.text == "doppelnull":
                groups.append(("00", "doppelnull", 1))
                double_next = False
                end = i + 1
            i += 1
            continue
        if groups and (tok.text in FILLERS or tok.text in _RUN_JOINERS) and _next_is_number(tokens, i + 1, taken):
            i += 1
            continue
        # "vier, sieben, eins": ASR puts commas between dictated digits. Only
        # single digits are joined, so "siebenundzwanzig vierzehn, drei Stück"
        # stays 2714.
        if (
            groups
            and tok.text == ","
            and len(groups[-1][0]) == 1
            and i + 1 < n
            and len(_digits_of(tokens[i + 1]) or "") == 1
        ):
            i += 1
            continue
        break
    if not groups:
        return None
    return NumberRun("".join(g[0] for g in groups), start, end, len(groups))


def _next_is_number(tokens: Sequence[Token], i: int, taken: set[int]) -> bool:
    # Look past further fillers so "vier äh ähm sieben" stays one run.
    while i < len(tokens) and tokens[i].text in FILLERS:
        i += 1
    return i < len(tokens) and i not in taken and _digits_of(tokens[i]) is not None


def joined(tokens: Sequence[Token]) -> tuple[str, list[int]]:
    """Tokens joined by single spaces, and the char offset of each token.

    Keyword regexes run on this string; ``index_at`` maps a match back.
    """
    offsets: list[int] = []
    pos = 0
    parts: list[str] = []
    for tok in tokens:
        offsets.append(pos)
        parts.append(tok.text)
        pos += len(tok.text) + 1
    return " ".join(parts), offsets


def index_at(offsets: Sequence[int], char_pos: int) -> int:
    """Index of the first token starting at or after ``char_pos``."""
    for i, off in enumerate(offsets):
        if off >= char_pos:
            return i
    return len(offsets)


def skip(tokens: Sequence[Token], i: int, words: frozenset[str], limit: int = 6) -> int:
    """Advance past at most ``limit`` tokens from ``words`` (and fillers)."""
    steps = 0
    while i < len(tokens) and steps < limit and (tokens[i].text in words or tokens[i].text in FILLERS):
        i += 1
        steps += 1
    return i


def free(taken: set[int], start: int, end: int) -> bool:
    """True when no token in ``[start, end)`` is claimed yet."""
    return not any(j in taken for j in range(start, end))

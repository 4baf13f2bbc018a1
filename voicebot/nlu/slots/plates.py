"""German licence plates, read as callers spell them.

"M wie Martha, A B, zwölf vierunddreißig" -> "M-AB 1234". Letters may come
as letters ("b", "x y"), as their German names ("be", "ypsilon"), as
spelling words of DIN 5009 (old names, the 2022 city alphabet, a few
common extras and NATO words), or as "X wie Wort".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .tokens import FILLERS, SlotMatch, Token, free, index_at, joined, read_number_run, tokenize

#: Spelling words -> letter. DIN 5009 (1950-2022 names and the 2022 cities),
#: the variants callers still use, and the NATO alphabet.
SPELLING_WORDS: dict[str, str] = {
    # DIN 5009 traditional
    "anton": "A",
    "ärger": "Ä",
    "berta": "B",
    "bertha": "B",
    "cäsar": "C",
    "caesar": "C",
    "charlotte": "C",
    "dora": "D",
    "emil": "E",
    "friedrich": "F",
    "gustav": "G",
    "heinrich": "H",
    "ida": "I",
    "julius": "J",
    "jakob": "J",
    "kaufmann": "K",
    "konrad": "K",
    "ludwig": "L",
    "martha": "M",
    "marta": "M",
    "nordpol": "N",
    "otto": "O",
    "ökonom": "Ö",
    "paula": "P",
    "quelle": "Q",
    "richard": "R",
    "samuel": "S",
    "siegfried": "S",
    "theodor": "T",
    "ulrich": "U",
    "übermut": "Ü",
    "viktor": "V",
    "victor": "V",
    "wilhelm": "W",
    "xanthippe": "X",
    "xaver": "X",
    "ypsilon": "Y",
    "zacharias": "Z",
    "zeppelin": "Z",
    # DIN 5009:2022 city alphabet and the cities callers pick instead
    "aachen": "A",
    "augsburg": "A",
    "berlin": "B",
    "bremen": "B",
    "chemnitz": "C",
    "düsseldorf": "D",
    "dresden": "D",
    "essen": "E",
    "erfurt": "E",
    "frankfurt": "F",
    "goslar": "G",
    "göttingen": "G",
    "hamburg": "H",
    "hannover": "H",
    "ingelheim": "I",
    "jena": "J",
    "köln": "K",
    "kiel": "K",
    "leipzig": "L",
    "münchen": "M",
    "nürnberg": "N",
    "offenbach": "O",
    "oldenburg": "O",
    "potsdam": "P",
    "quickborn": "Q",
    "rostock": "R",
    "salzwedel": "S",
    "stuttgart": "S",
    "tübingen": "T",
    "unna": "U",
    "völklingen": "V",
    "wuppertal": "W",
    "xanten": "X",
    "zwickau": "Z",
    # NATO
    "alpha": "A",
    "alfa": "A",
    "bravo": "B",
    "charlie": "C",
    "delta": "D",
    "echo": "E",
    "foxtrot": "F",
    "golf": "G",
    "hotel": "H",
    "india": "I",
    "juliett": "J",
    "juliet": "J",
    "kilo": "K",
    "lima": "L",
    "mike": "M",
    "november": "N",
    "oscar": "O",
    "papa": "P",
    "quebec": "Q",
    "romeo": "R",
    "sierra": "S",
    "tango": "T",
    "uniform": "U",
    "whiskey": "W",
    "whisky": "W",
    "yankee": "Y",
    "zulu": "Z",
}

#: How ASR writes the German names of letters.
LETTER_NAMES: dict[str, str] = {
    "a": "A",
    "be": "B",
    "bee": "B",
    "ce": "C",
    "tse": "C",
    "ze": "C",
    "de": "D",
    "dee": "D",
    "e": "E",
    "eh": "E",
    "ef": "F",
    "eff": "F",
    "ge": "G",
    "gee": "G",
    "ha": "H",
    "hah": "H",
    "i": "I",
    "ih": "I",
    "jot": "J",
    "jott": "J",
    "ka": "K",
    "kah": "K",
    "el": "L",
    "ell": "L",
    "em": "M",
    "emm": "M",
    "en": "N",
    "enn": "N",
    "o": "O",
    "oh": "O",
    "pe": "P",
    "pee": "P",
    "ku": "Q",
    "kuh": "Q",
    "er": "R",
    "err": "R",
    "es": "S",
    "ess": "S",
    "te": "T",
    "tee": "T",
    "u": "U",
    "uh": "U",
    "vau": "V",
    "fau": "V",
    "we": "W",
    "weh": "W",
    "ix": "X",
    "iks": "X",
    "zett": "Z",
    "zet": "Z",
    "ä": "Ä",
    "ö": "Ö",
    "ü": "Ü",
}

# One-letter district codes (Berlin, München, Köln, ...): used to split an
# unseparated letter string like "MAB" as M-AB rather than MA-B.
_SINGLE_LETTER_DISTRICTS = frozenset("ABCDEFGHKLMNPRSUVWZ")

_PLATE_KEYWORD = re.compile(
    r"\b(?:amtliche[sn]? )?kennzeichen\b|\bnummernschild\b|\bautonummer\b|\bkfz ?- ?kennzeichen\b|\bkfz kennzeichen\b"
)

# Said between letter groups; they mark where the district code ends.
_SEPARATORS = frozenset({"-", "minus", "bindestrich", "strich", ",", "leerzeichen", "leer", "dann", "und"})
_LEAD_IN = frozenset({"ist", "is", "isch", "lautet", "das", "die", "mein", "meins", "also", "ja", ":", "hier"})
_SUFFIXES = frozenset({"E", "H"})


def read_spelled_letter(tokens: Sequence[Token], i: int, *, loose: bool = False) -> tuple[str, int] | None:
    """Read one letter at ``tokens[i]``: "M wie Martha", "Martha", or (``loose``) "m"/"em".

    Returns the letter and the index after it. Without ``loose`` a bare
    single letter counts only when written as a single character, so that
    ordinary words ("es", "er") are not taken for letters outside a plate.
    """
    if i >= len(tokens):
        return None
    tok = tokens[i]
    # "X wie Xanthippe": the spelling word decides, the first token may be misheard.
    if i + 2 < len(tokens) and tokens[i + 1].text == "wie":
        word = tokens[i + 2].text
        if word in SPELLING_WORDS:
            return SPELLING_WORDS[word], i + 3
        if len(tok.text) == 1 and tok.text.isalpha():
            return tok.text.upper(), i + 3
    if tok.text in SPELLING_WORDS:
        return SPELLING_WORDS[tok.text], i + 1
    if len(tok.text) == 1 and tok.text.isalpha():
        return tok.text.upper(), i + 1
    if loose and tok.text in LETTER_NAMES:
        return LETTER_NAMES[tok.text], i + 1
    return None


def _split_letters(groups: list[str]) -> tuple[str, str] | None:
    """District code and recognition letters from the heard letter groups."""
    if len(groups) >= 2:
        district, rest = groups[0], "".join(groups[1:])
    else:
        letters = groups[0]
        n = len(letters)
        if n == 2:
            district, rest = letters[0], letters[1]
        elif n == 3:
            cut = 1 if letters[0] in _SINGLE_LETTER_DISTRICTS else 2
            district, rest = letters[:cut], letters[cut:]
        elif n in (4, 5):
            district, rest = letters[: n - 2], letters[n - 2 :]
        else:
            return None
    if not (1 <= len(district) <= 3 and 1 <= len(rest) <= 2):
        return None
    if any(c in "ÄÖÜ" for c in rest):  # umlauts only occur in district codes
        return None
    return district, rest


def _read_plate(tokens: Sequence[Token], i: int, taken: set[int], *, loose: bool) -> tuple[str, int] | None:
    """Parse letters, separators and digits from ``i``; the plate and end index."""
    groups: list[str] = []
    current = ""
    n = len(tokens)
    while i < n and i not in taken:
        tok = tokens[i]
        if tok.text in FILLERS:
            i += 1
            continue
        if tok.text in _SEPARATORS:
            if current:
                groups.append(current)
                current = ""
            i += 1
            continue
        spelled = read_spelled_letter(tokens, i, loose=loose)
        if spelled is not None:
            current += spelled[0]
            i = spelled[1]
            continue
        # Written groups: "M-AB 1234" -> "ab"; accepted when typed in capitals
        # or right after a hyphen, not for any short word.
        if (
            tok.text.isalpha()
            and 2 <= len(tok.text) <= 3
            and (tok.raw.isupper() or (i > 0 and tokens[i - 1].text in ("-", "minus")))
        ):
            current += tok.text.upper()
            i += 1
            continue
        break
    if current:
        groups.append(current)
    if not groups:
        return None
    run = read_number_run(tokens, i, taken)
    if run is None or not 1 <= len(run.digits) <= 4 or run.digits.startswith("0"):
        return None
    split = _split_letters(groups)
    if split is None:
        return None
    district, rest = split
    end = run.end
    suffix = ""
    if end < n and end not in taken:
        letter = read_spelled_letter(tokens, end, loose=False)
        if letter is not None and letter[0] in _SUFFIXES:
            suffix, end = letter[0], letter[1]
    if len(district) + len(rest) + len(run.digits) > 8:
        return None
    return f"{district}-{rest} {run.digits}{suffix}", end


def find_licence_plate(tokens: Sequence[Token], taken: set[int]) -> SlotMatch | None:
    """A plate after "Kennzeichen"/"Nummernschild", or spelled with "X wie Wort"."""
    text, offsets = joined(tokens)
    for m in _PLATE_KEYWORD.finditer(text):
        kw_start = index_at(offsets, m.start())
        i = index_at(offsets, m.end())
        while i < len(tokens) and (tokens[i].text in _LEAD_IN or tokens[i].text in FILLERS):
            i += 1
        plate = _read_plate(tokens, i, taken, loose=True)
        if plate is not None and free(taken, kw_start, plate[1]):
            return SlotMatch("licence_plate", plate[0], kw_start, plate[1])
    # Without a keyword, only a spelled start ("M wie Martha ...") is trusted.
    for i in range(len(tokens) - 2):
        if i in taken or tokens[i + 1].text != "wie" or tokens[i + 2].text not in SPELLING_WORDS:
            continue
        plate = _read_plate(tokens, i, taken, loose=True)
        if plate is not None and free(taken, i, plate[1]):
            return SlotMatch("licence_plate", plate[0], i, plate[1])
    return None


def parse_licence_plate(text: str) -> str | None:
    """The licence plate in ``text`` normalised as "M-AB 1234", else None."""
    match = find_licence_plate(tokenize(text), set())
    return match.value if match else None

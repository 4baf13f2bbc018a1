"""Simple text cues that a German partial transcript is not finished yet.

A partial that ends in a conjunction ("und", "weil", "dass"), a filler ("also", "äh"), an
article or possessive ("den", "meine"), a preposition that is never a separable verb particle
("für", "mit dem" but not "an": "Ich rufe an." is complete) or in the middle of a number
("neunzehnhundert", "Kundennummer 12 34") is almost never a finished turn. Words that often
end a German sentence are deliberately absent: "oder" (tag question "..., oder?"), "denn",
"das", "so", "dann", and the particles an/auf/aus/ab/mit/nach/vor/zu/um/durch/über.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONJUNCTIONS = frozenset(
    "und aber weil dass daß sondern wenn ob als damit bevor nachdem obwohl sowie sowohl weder noch sodass "
    "falls während bzw beziehungsweise respektive".split()
)
FILLERS = frozenset("also äh ähm öh öhm hm hmm ähh ehm em halt quasi sozusagen nämlich".split())
# Not here, because they also end sentences: "sein" (the verb), "ihr" (you), and pronoun forms
# ("keiner", "einer", "diese", "jeder", "welche": "Das weiß keiner.").
ARTICLES = frozenset(
    "der die den dem des ein eine einen einem kein keine keinen keinem "
    "mein meine meinen meinem meiner dein deine deinen deinem deiner seine seinen seinem seiner "
    "ihre ihren ihrem ihrer unsere unseren unserem unserer eure euren eurem diesen diesem jeden jedem welchen welchem"
    .split()
)
# Prepositions and contractions that are never separable verb particles.
PREPOSITIONS = frozenset(
    "in im am beim vom zum zur von für seit bis ohne gegen wegen trotz zwischen neben hinter "
    "innerhalb außerhalb bezüglich laut gemäß statt anstatt ins ans aufs fürs per pro".split()
)
# Number words after which a number goes on ("neunzehnhundert ...", "drei komma ...").
NUMBER_OPEN = ("hundert", "tausend", "komma", "punkt", "millionen", "million", "milliarden")
# Callers dictate numbers in groups with pauses in between.
NUMBER_CONTEXT = ("nummer", "iban", "plz", "postleitzahl", "kennzeichen", "telefon", "handy", "vorwahl", "pin",
                  "konto", "vertragsnummer", "kundennummer", "rechnungsnummer", "bestellnummer")

_TOKEN = re.compile(r"[0-9]+|[a-zäöüß]+(?:-[a-zäöüß]+)*")
_UNITS = ("ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")


def tokens(text: str) -> list[str]:
    """Lowercase word and digit tokens (punctuation dropped: ASR punctuation is unreliable)."""
    return _TOKEN.findall(text.lower())


def _is_number_token(token: str) -> bool:
    return token.isdigit() or token in {"null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
                                        "neun", "zehn", "elf", "zwölf"}


@dataclass(frozen=True)
class TextCue:
    """Why the text says "not finished" (``kind``: conjunction | filler | article | preposition | number)."""

    kind: str
    word: str


def incomplete_cue(text: str) -> TextCue | None:
    """A cue that the partial ``text`` stops mid-sentence, or None."""
    words = tokens(text)
    if not words:
        return None
    last = words[-1]
    if last in CONJUNCTIONS:
        return TextCue("conjunction", last)
    if last in FILLERS:
        return TextCue("filler", last)
    if last in ARTICLES:
        return TextCue("article", last)
    if last in PREPOSITIONS:
        return TextCue("preposition", last)
    if last.endswith(NUMBER_OPEN) or any(last == u + "und" for u in _UNITS):
        return TextCue("number", last)
    if _is_number_token(last) and any(w.endswith(NUMBER_CONTEXT) for w in words[-6:-1]):
        return TextCue("number", last)
    return None

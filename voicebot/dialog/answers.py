"""Reading a caller's answer: yes/no, "I don't know", and a slot value said in free text."""

from __future__ import annotations

import re

from voicebot.dialog.domain import Domain, SlotQuestion, normalize
from voicebot.nlu.slots import parse_spoken_digits

__all__ = ["is_hold", "is_say_again", "is_skip", "text_answer", "yes_no"]

# "Ich bin in der Hauptstraße 12" -> "in der Hauptstraße 12" for the read-back.
_LEAD_IN = re.compile(r"^(?:also |ja |äh |ähm )*(?:ich bin|ich stehe|wir sind|wir stehen|ich befinde mich|"
                      r"wir befinden uns|das ist|es ist)\s+", re.IGNORECASE)
_YES_NO_WINDOW = 3  # a yes/no phrase must start within the first words of the answer
_NEGATIONS = frozenset({"nicht", "kein", "keine", "keinen"})
# "Können Sie das bitte noch einmal wiederholen?" is seven words; a longer turn says more than "again".
_SAY_AGAIN_MAX_WORDS = 7


def yes_no(domain: Domain, text: str) -> tuple[str | None, str]:
    """``("yes" | "no" | None, the words after the matched phrase)``.

    Negations are checked first ("nicht richtig" is a no), and a phrase
    counts only near the start: in "da stimmt der Betrag nicht" the
    "stimmt" is not an answer to the bot's question.
    """
    words = normalize(text).split()
    clause_end = _clause_ends(text, len(words))
    for answer, phrases in (("no", domain.no_words), ("yes", domain.yes_words)):
        for phrase in sorted(phrases, key=len, reverse=True):
            size = len(phrase.split())
            for start in range(min(_YES_NO_WINDOW, len(words))):
                if words[start : start + size] == phrase.split():
                    if answer == "yes" and start > 0 and words[start - 1] in _NEGATIONS:
                        continue
                    if answer == "yes" and any(w in _NEGATIONS for w in words[start + size : clause_end[start]]):
                        continue  # "da stimmt der Betrag nicht": negated later in the same clause
                    return answer, " ".join(words[start + size :])
    return None, " ".join(words)


def _clause_ends(text: str, n_words: int) -> list[int]:
    """For each normalized word of ``text``, the index after the last word of its clause (split at , . ; ! ?)."""
    ends: list[int] = []
    for clause in re.split(r"[,.;:!?]+", text):
        size = len(normalize(clause).split())
        ends.extend([len(ends) + size] * size)
    return (ends + [n_words] * n_words)[:n_words]  # normalize() of the whole may differ slightly: fall back to the end


def _says_one_of(phrases: tuple[str, ...], norm: str) -> bool:
    """Whether one of ``phrases`` occurs as whole words in ``norm`` (text already through ``normalize``)."""
    padded = f" {norm} "
    return any(f" {p} " in padded for p in phrases)


def is_skip(domain: Domain, text: str) -> bool:
    """Whether the caller declines to answer ("weiß ich nicht"): the agent will ask."""
    return _says_one_of(domain.skip_phrases, normalize(text))


def is_hold(domain: Domain, text: str) -> bool:
    """Whether the caller asks the bot to wait while they look something up ("Moment, ich schaue nach")."""
    return _says_one_of(domain.hold_phrases, normalize(text))


def is_say_again(domain: Domain, text: str, slots: dict[str, str]) -> bool:
    """Whether the caller asks the bot to say its question again ("Wie bitte?", "Noch einmal, bitte."): a short
    turn with such a phrase and no value in it ("Noch einmal: vier sieben eins" is an answer)."""
    norm = normalize(text)
    if slots or not norm or len(norm.split()) > _SAY_AGAIN_MAX_WORDS:
        return False
    return _says_one_of(domain.say_again_phrases, norm)


def text_answer(domain: Domain, question: SlotQuestion, text: str, slots: dict[str, str]) -> dict[str, str]:
    """The value of ``question``'s first slot read from the turn itself, when no extracted slot answered it."""
    first = question.accepts[0]
    kind = domain.slot_kind(first)
    if kind == "digits":
        digits = slots.get("number") or parse_spoken_digits(text)
        if digits and len(digits) >= 3:
            return {first: digits}
    elif (kind == "text" and len(normalize(text).split()) >= 2 and yes_no(domain, text)[0] is None
          and not is_skip(domain, text)):
        return {first: _LEAD_IN.sub("", text.strip()).rstrip(".")}
    return {}

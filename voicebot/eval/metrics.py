"""ASR metrics: word and character error rates after a German normalization.

``normalize_german`` (applied to references and hypotheses alike):

1. ``%`` → " prozent", ``€`` → " euro", ``&`` → " und" (symbols Whisper writes for spoken words);
2. spoken numbers → digits with text2num's ``alpha2digit(text, "de")``
   ("vier sieben eins eins" → "4 7 1 1", "neunzehnhundertachtzig" → "1980",
   "dritten" → "3."), so a number written either way counts the same;
3. case-folded (``casefold``: "ß" becomes "ss", so "Straße" = "Strasse");
4. hyphens inside words vanish ("Willens-Erklärung" = "Willenserklärung", German
   compounds are written either way), apostrophes too ("war's" → "wars"), other
   punctuation becomes a space;
5. every digit becomes its own token ("4711" → "4 7 1 1"): callers read customer
   numbers digit by digit, Whisper writes them either way; grouping must not count;
6. whitespace collapsed.

Error rates are corpus-level (total edits / total reference words), as jiwer and
most papers report them, not a mean of per-utterance rates.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

_SYMBOLS = {"%": " prozent ", "€": " euro ", "&": " und ", "+": " plus "}
_APOSTROPHES = re.compile(r"['’`´]")
_HYPHEN = re.compile(r"(?<=[^\W\d_])[-‐‑–](?=[^\W\d_])")  # a hyphen between two letters
_NON_WORD = re.compile(r"[^\w]+")
_DIGIT = re.compile(r"(\d)")


def normalize_german(text: str) -> str:
    """Normalize German text for WER/CER (see the module docstring for the rules)."""
    from text_to_num import alpha2digit

    text = unicodedata.normalize("NFC", text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = " ".join(text.split())
    if text:
        # alpha2digit needs the original case and punctuation to find number phrases.
        text = alpha2digit(text, "de")
    text = text.casefold()
    text = _APOSTROPHES.sub("", text)
    text = _HYPHEN.sub("", text)
    text = _NON_WORD.sub(" ", text).replace("_", " ")
    text = _DIGIT.sub(r" \1 ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations summed over a corpus; ``rate`` is errors / reference units."""

    substitutions: int
    deletions: int
    insertions: int
    reference_units: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        if self.reference_units == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_units


def _check(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("wer/cer take sequences of strings (one per utterance), not a single string")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")


def word_errors(refs: Sequence[str], hyps: Sequence[str], normalize: bool = True) -> ErrorCounts:
    """Word-level edit counts over a corpus (normalized with ``normalize_german`` unless told not to)."""
    _check(refs, hyps)
    return _counts([_prep(r, normalize) for r in refs], [_prep(h, normalize) for h in hyps], chars=False)


def char_errors(refs: Sequence[str], hyps: Sequence[str], normalize: bool = True) -> ErrorCounts:
    """Character-level edit counts (spaces between words count as characters, as in jiwer)."""
    _check(refs, hyps)
    return _counts([_prep(r, normalize) for r in refs], [_prep(h, normalize) for h in hyps], chars=True)


def wer(refs: Sequence[str], hyps: Sequence[str], normalize: bool = True) -> float:
    """Corpus word error rate."""
    return word_errors(refs, hyps, normalize).rate


def cer(refs: Sequence[str], hyps: Sequence[str], normalize: bool = True) -> float:
    """Corpus character error rate."""
    return char_errors(refs, hyps, normalize).rate


def _prep(text: str, normalize: bool) -> str:
    return normalize_german(text) if normalize else " ".join(text.split())


def _counts(refs: list[str], hyps: list[str], chars: bool) -> ErrorCounts:
    s = d = i = n = 0
    kept_r: list[str] = []
    kept_h: list[str] = []
    for r, h in zip(refs, hyps, strict=True):
        units_r = len(r) if chars else len(r.split())
        units_h = len(h) if chars else len(h.split())
        n += units_r
        if not units_r:
            i += units_h  # jiwer refuses empty references; everything said is an insertion
        elif not units_h:
            d += units_r
        else:
            kept_r.append(r)
            kept_h.append(h)
    if kept_r:
        out = jiwer.process_characters(kept_r, kept_h) if chars else jiwer.process_words(kept_r, kept_h)
        s, d, i = s + out.substitutions, d + out.deletions, i + out.insertions
    return ErrorCounts(s, d, i, n)

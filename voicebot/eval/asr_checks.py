"""Per-clip checks of a streaming transcript against the reference and the raw model.

A corpus WER hides the failures a caller notices most: a turn that lost its first
words (late VAD onset), its last words (a cut), or that says a phrase twice (two
decodes of the same audio stitched together). These checks find them per clip.
Texts are compared after ``normalize_german``.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from voicebot.eval.metrics import normalize_german

EDGE_WORDS = 2  # how many words at each end of the reference are checked
DUPLICATE_NGRAM = 3  # a repeated word n-gram of this length counts as duplicated text


@dataclass(frozen=True)
class EdgeCheck:
    """Which reference words at the start and end of a clip the hypothesis has."""

    first_heard: bool  # at least one of the first EDGE_WORDS reference words is in the hypothesis, in place
    last_heard: bool
    duplicated: tuple[str, ...]  # word n-grams the hypothesis says more often than the reference


def _matched(ref: list[str], hyp: list[str]) -> list[bool]:
    """For each reference word: aligned to an identical hypothesis word."""
    heard = [False] * len(ref)
    for block in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            heard[i] = True
    return heard


def duplicated_ngrams(reference: str, hypothesis: str, n: int = DUPLICATE_NGRAM) -> tuple[str, ...]:
    """Word n-grams that occur more often in the hypothesis than in the reference."""
    def grams(text: str) -> Counter[str]:
        words = normalize_german(text).split()
        return Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))

    ref, hyp = grams(reference), grams(hypothesis)
    return tuple(sorted(g for g, c in hyp.items() if c > max(1, ref.get(g, 0))))


def check_edges(reference: str, hypothesis: str, k: int = EDGE_WORDS) -> EdgeCheck:
    ref = normalize_german(reference).split()
    hyp = normalize_german(hypothesis).split()
    heard = _matched(ref, hyp)
    k = max(1, min(k, len(ref) // 2)) if ref else 0
    return EdgeCheck(
        first_heard=not ref or any(heard[:k]),
        last_heard=not ref or any(heard[len(ref) - k :]),
        duplicated=duplicated_ngrams(reference, hypothesis),
    )


def edge_regressions(reference: str, streaming: str, raw: str) -> list[str]:
    """What the streaming transcript lost or added where the raw model got it right ("first", "last", "duplicated")."""
    s, r = check_edges(reference, streaming), check_edges(reference, raw)
    out = []
    if r.first_heard and not s.first_heard:
        out.append("first")
    if r.last_heard and not s.last_heard:
        out.append("last")
    if set(s.duplicated) - set(r.duplicated):
        out.append("duplicated")
    return out


def end_dropped(reference: str, hypothesis: str) -> bool:
    """The reference's last word(s) have no hypothesis words at all: the turn's end was cut off (a misheard
    last word is not dropped; ``check_edges(...).last_heard`` counts both)."""
    ref, hyp = normalize_german(reference).split(), normalize_german(hypothesis).split()
    ops = difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_opcodes()
    return bool(ref) and ops[-1][0] == "delete"

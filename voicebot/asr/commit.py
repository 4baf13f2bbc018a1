"""LocalAgreement: when a partial transcript's words may be committed.

Each partial decode re-transcribes the turn so far, and Whisper may revise its
last words as more audio arrives. LocalAgreement-n (Macháček et al., 2023,
"Turning Whisper into Real-Time Transcription System", as in whisper_streaming)
commits the longest prefix on which the last ``n`` hypotheses agree. Committed
words never change afterwards; the rest is shown as a tentative tail.

Words are compared by a key (case and punctuation ignored), so "Eisschrank"
and "Eisschrank." agree; the committed surface form is the one first committed.
A hypothesis that contradicts already committed words is aligned to them
(difflib) and only its part after the committed prefix is used.

Pure and synchronous: no model, no clock.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

_PUNCT = re.compile(r"[^\w]+")


def word_key(word: str) -> str:
    """What two spellings of the same word share: lower case, no punctuation."""
    return _PUNCT.sub("", word.casefold())


@dataclass(frozen=True)
class CommitUpdate:
    """The state after one hypothesis: committed words, tentative tail, words committed just now."""

    committed: tuple[str, ...]
    tentative: tuple[str, ...]
    newly_committed: tuple[str, ...]

    @property
    def committed_text(self) -> str:
        return " ".join(self.committed)

    @property
    def text(self) -> str:
        return " ".join(self.committed + self.tentative)


class LocalAgreement:
    """LocalAgreement-n commit policy over word hypotheses of one turn."""

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1, got {n}")
        self.n = n
        self._committed: list[str] = []
        # Tails (the part after the committed prefix) of the last n-1 hypotheses.
        self._history: deque[list[str]] = deque(maxlen=max(1, n - 1))

    @property
    def committed(self) -> tuple[str, ...]:
        return tuple(self._committed)

    def reset(self) -> None:
        """A new turn: forget everything."""
        self._committed = []
        self._history.clear()

    def update(self, words: Sequence[str]) -> CommitUpdate:
        """Feed the newest hypothesis (the whole turn so far, as words)."""
        words = [w for w in words if w.strip()]
        tail = self._tail(words)
        newly: list[str] = []
        if self.n == 1:
            newly = list(tail)
        elif len(self._history) == self._history.maxlen:
            agreed = len(tail)
            for previous in self._history:
                agreed = min(agreed, _common_prefix(previous, tail))
            newly = tail[:agreed]
        if newly:
            self._committed.extend(newly)
            tail = tail[len(newly) :]
            # Every older tail starts with the agreed words (that is what agreement
            # means): re-base them on the new committed prefix.
            for i, previous in enumerate(self._history):
                self._history[i] = previous[len(newly) :]
        self._history.append(list(tail))
        return CommitUpdate(tuple(self._committed), tuple(tail), tuple(newly))

    def _tail(self, words: list[str]) -> list[str]:
        """The part of ``words`` after the committed prefix."""
        c = len(self._committed)
        if c == 0:
            return words
        ckeys = [word_key(w) for w in self._committed]
        wkeys = [word_key(w) for w in words]
        if wkeys[:c] == ckeys:
            return words[c:]
        # The hypothesis revised committed words: find where the committed text ends in it.
        matcher = difflib.SequenceMatcher(a=ckeys, b=wkeys, autojunk=False)
        blocks = [b for b in matcher.get_matching_blocks() if b.size]
        if not blocks:
            return words[c:]
        last = blocks[-1]
        # Words of the committed prefix after the last matching block are assumed
        # to have the same length in the hypothesis.
        end = last.b + last.size + (c - (last.a + last.size))
        return words[min(end, len(words)) :]


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if word_key(x) != word_key(y):
            break
        n += 1
    return n

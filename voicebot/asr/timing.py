"""Word timing repair for turn finals.

A turn's audio starts with up to a second of pre-roll (``MIN_PRE_ROLL_MS`` in
``voicebot.asr.streaming``) so a late VAD onset never clips the first word. Whisper's
cross-attention alignment tends to stretch the first word back over that leading
silence ("Die" from 0.41 s to 1.49 s). The first word's start is pulled in to a
plausible length; the text is untouched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from voicebot.frames import Word

# A first word longer than this many median word lengths (and than MIN_LONG_WORD_S) was stretched.
STRETCH_FACTOR = 2.0
MIN_LONG_WORD_S = 0.6


def clamp_first_word(words: tuple[Word, ...]) -> tuple[Word, ...]:
    """``words`` with an implausibly long first word shortened from the front."""
    if len(words) < 2:
        return words
    durations = np.array([w.end - w.start for w in words[1:]])
    longest = max(MIN_LONG_WORD_S, STRETCH_FACTOR * float(np.median(durations)))
    first = words[0]
    if first.end - first.start <= longest:
        return words
    return (replace(first, start=first.end - longest), *words[1:])

"""Short whole caller turns on the phone line, as the recognizer hands them to a final decode.

A caller's answer ("Ja, bitte.", a number, a date) is a turn of one to three seconds. The
recognizer hands it over with its pre-roll (0.3 s of line hiss before the speech) and post-roll
(0.4 s after), through the telephone channel (8 kHz µ-law and back to 16 kHz). On a phone call its
final decodes in ``asr.final_short_window_s`` (the recognizer asks for it): these turns measure that
choice (``scripts/bench_short_turns.py``) and guard it (``tests/test_short_turns.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicebot.eval import turn_hiss
from voicebot.eval.asr_cases import RATE, line_noise, load_sources, speech_bounds
from voicebot.eval.turn_end import phone

PRE_ROLL_S = 0.3  # vad.pre_roll_ms of line hiss before the speech
POST_ROLL_S = 0.4  # the hiss after the speech that the endpointer hands over with the turn


@dataclass(frozen=True)
class ShortTurn:
    """One short caller turn: what was said and the 16 kHz int16 audio the final decodes."""

    name: str
    text: str
    audio: np.ndarray = field(repr=False)

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


def levelled(pcm: np.ndarray) -> np.ndarray:
    """Only the speech of ``pcm`` (``speech_bounds``), levelled as ``turn_hiss.levelled`` does, as int16."""
    start, end = speech_bounds(pcm)
    return np.clip(np.round(turn_hiss.levelled(pcm)[start:end]), -32768, 32767).astype(np.int16)


def on_the_line(speech: np.ndarray, seed: int, hiss_under: bool = False) -> np.ndarray:
    """``speech`` between the pre- and post-roll's line hiss, through the phone channel.

    ``hiss_under``: the hiss runs under the speech too (a noisy line, as asr_cases' noisy cases)."""
    audio = np.concatenate([line_noise(PRE_ROLL_S, seed=seed), speech, line_noise(POST_ROLL_S, seed=seed + 1)])
    if hiss_under:
        audio = np.clip(audio.astype(np.int32) + line_noise(len(audio) / RATE + 0.01, seed=seed + 7)[: len(audio)],
                        -32768, 32767).astype(np.int16)
    return phone(audio)


def emodb_speech(max_s: float) -> list[tuple[str, str, np.ndarray]]:
    """(name, text, levelled speech) of every EmoDB clip (../shared/data/speech-de) of at most ``max_s`` s."""
    from voicebot.audio.io import load_for_asr

    clips = sorted((c for c in load_sources(sets=("speech-de",)) if c.seconds <= max_s), key=lambda c: c.path)
    return [(c.path.stem, c.text, levelled(load_for_asr(c.path, RATE))) for c in clips]


def emodb_turns(max_s: float, hiss_under: bool = False) -> list[ShortTurn]:
    """The EmoDB clips of at most ``max_s`` s as phone turns, each with its own seeded hiss."""
    return [ShortTurn(name, text, on_the_line(speech, seed=i, hiss_under=hiss_under))
            for i, (name, text, speech) in enumerate(emodb_speech(max_s))]

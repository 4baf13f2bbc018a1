"""End now or wait? One decision from the pause length, Smart Turn, the text model and text cues.

The turn-taker computes the two probabilities once per pause (Smart Turn on the turn's audio
after ``min_silence_ms`` of silence, the text model on the committed partial) and then asks
``decide`` on every frame while the silence grows; the answer only changes with ``silence_ms``.

Rules, in order:
1. ``silence_ms >= max_silence_ms``: end (the fallback; nobody waits forever).
2. ``silence_ms < min_silence_ms``: wait (a gap between words).
3. the text ends in a conjunction, filler, article, preposition or mid-number: wait
   (until the fallback).
4. combined probability ``p = audio_weight * audio_prob + (1 - audio_weight) * text_prob``
   (the one present if the other is None) ``>= fast_threshold``: end.
5. ``silence_ms >= slow_silence_ms`` and ``p >= slow_threshold``: end.
6. no probability at all: end at ``slow_silence_ms`` (silence-only endpointing).
7. otherwise wait.

The defaults are the operating point chosen on the German turn-end set by ``voicebot eval
turn`` (false cut-offs <= 5 % on both channels, smallest mean delay).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from voicebot.turn.cues import TextCue, incomplete_cue


class TurnEndConfigLike(Protocol):
    """Anything with these read-only fields: ``TurnEndConfig`` or a settings section."""

    @property
    def min_silence_ms(self) -> float: ...
    @property
    def slow_silence_ms(self) -> float: ...
    @property
    def max_silence_ms(self) -> float: ...
    @property
    def fast_threshold(self) -> float: ...
    @property
    def slow_threshold(self) -> float: ...
    @property
    def audio_weight(self) -> float: ...
    @property
    def use_cues(self) -> bool: ...


@dataclass(frozen=True)
class TurnEndConfig:
    """Thresholds of the end-of-turn decision (a settings section can carry the same fields)."""

    # Chosen by `voicebot eval turn` (270 real German clips, 1620 pauses): false cut-offs 3.1 %
    # (telephone) / 3.5 % (wideband) at a 1 s mid-sentence pause, <= 5 % on each source set;
    # end-of-turn delay p50 200 ms, p90 1200 ms, mean 604 ms (silence-only needs 1200 ms for that).
    # Asking the models at 100 ms and deciding at 150 ms did well on that set (scripts/bench_turn_early.py:
    # false cut-offs 2.2 % / 2.4 %, delay p50 150 ms, mean 617 ms), but in live phone calls the turns then
    # mostly waited for the fallback: server endpoint span p50 1259 vs 344 ms (bench_load --phone, one call,
    # side by side). So the models are asked at min_silence_ms (model_silence_ms 0).
    min_silence_ms: float = 200.0  # first decision
    model_silence_ms: float = 0.0  # Smart Turn and the text model are asked here (0: at min_silence_ms)
    slow_silence_ms: float = 300.0  # a second bar after this much silence (equal thresholds: unused)
    max_silence_ms: float = 1200.0  # fallback: end whatever the models say; must exceed a long hesitation
    fast_threshold: float = 0.8  # combined P(complete) that ends the turn at min_silence_ms
    slow_threshold: float = 0.8  # combined P(complete) that ends it at slow_silence_ms
    audio_weight: float = 0.6  # share of Smart Turn in the combination (the rest: text model)
    use_cues: bool = True  # hold on "und", "weil", articles, prepositions, mid-number


@dataclass(frozen=True)
class TurnDecision:
    end: bool
    reason: str  # max_silence | short_silence | cue:<kind> | confident | likely | silence | wait
    probability: float | None = None  # the combined P(complete), where there was one


@lru_cache(maxsize=4096)
def _cue(text: str) -> TextCue | None:
    return incomplete_cue(text)


class TurnEndDecider:
    """``TurnEndDecider(config).decide(silence_ms, audio_prob, text_prob, text) -> TurnDecision``."""

    def __init__(self, config: TurnEndConfigLike | None = None) -> None:
        self.config = config or TurnEndConfig()
        c = self.config
        if not 0 <= c.min_silence_ms <= c.slow_silence_ms <= c.max_silence_ms:
            raise ValueError("turn end: need 0 <= min_silence_ms <= slow_silence_ms <= max_silence_ms, got "
                             f"{c.min_silence_ms}, {c.slow_silence_ms}, {c.max_silence_ms}")
        if not 0.0 <= c.audio_weight <= 1.0:
            raise ValueError(f"turn end: audio_weight must be within 0..1, got {c.audio_weight}")

    def combine(self, audio_prob: float | None, text_prob: float | None) -> float | None:
        if audio_prob is None:
            return text_prob
        if text_prob is None:
            return audio_prob
        w = self.config.audio_weight
        return w * audio_prob + (1.0 - w) * text_prob

    def end_silence_ms(self, audio_prob: float | None, text_prob: float | None, text: str) -> tuple[float, str]:
        """The silence (ms) at which the turn ends with these signals, and why."""
        c = self.config
        if c.use_cues and (cue := _cue(text)) is not None:
            return c.max_silence_ms, f"cue:{cue.kind}"
        p = self.combine(audio_prob, text_prob)
        if p is None:
            return c.slow_silence_ms, "silence"
        if p >= c.fast_threshold:
            return c.min_silence_ms, "confident"
        if p >= c.slow_threshold:
            return c.slow_silence_ms, "likely"
        return c.max_silence_ms, "max_silence"

    def decide(self, silence_ms: float, audio_prob: float | None, text_prob: float | None, text: str) -> TurnDecision:
        """End the turn now, or wait for more silence (see the module doc for the rules)."""
        c = self.config
        p = self.combine(audio_prob, text_prob)
        if silence_ms >= c.max_silence_ms:
            return TurnDecision(True, "max_silence", p)
        if silence_ms < c.min_silence_ms:
            return TurnDecision(False, "short_silence", p)
        at, reason = self.end_silence_ms(audio_prob, text_prob, text)
        if silence_ms >= at:
            return TurnDecision(True, reason, p)
        return TurnDecision(False, reason if reason.startswith("cue:") else "wait", p)


def end_silence_batch(config: TurnEndConfigLike, audio_prob: np.ndarray, text_prob: np.ndarray,
                      cue: np.ndarray) -> np.ndarray:
    """``end_silence_ms`` for many pauses at once (the evaluation's threshold search).

    ``audio_prob`` / ``text_prob`` are float arrays (NaN = signal absent), ``cue`` a bool array
    (``incomplete_cue(text) is not None``). Agrees with ``TurnEndDecider.end_silence_ms``
    element by element (tests/test_turn_decision.py checks it).
    """
    w = config.audio_weight
    both = w * audio_prob + (1.0 - w) * text_prob
    p = np.where(np.isnan(audio_prob), text_prob, np.where(np.isnan(text_prob), audio_prob, both))
    end = np.where(p >= config.fast_threshold, config.min_silence_ms,
                   np.where(p >= config.slow_threshold, config.slow_silence_ms, config.max_silence_ms))
    end = np.where(np.isnan(p), config.slow_silence_ms, end)
    if config.use_cues:
        end = np.where(cue, config.max_silence_ms, end)
    return end.astype(float)

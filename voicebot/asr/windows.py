"""Whisper's encoder windows: how long a window a turn gets, and a batch's samples (every ASR backend).

A turn is decoded in one window of ``asr.chunk_length`` seconds where it fits, grown in bucket steps
where it does not, up to Whisper's native 30 s (``voicebot.asr.transcriber`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from voicebot.config import AsrSettings

ASR_SAMPLE_RATE = 16000
NATIVE_WINDOW_S = 30
# Seconds of trailing context after the audio inside a shortened window: Whisper
# wants to "see" the end of speech before it emits the last timestamp.
WINDOW_MARGIN_S = 0.5


def encoder_window_s(duration: float, min_window_s: int, buckets: Sequence[int] = ()) -> int:
    """Encoder window (seconds) for an utterance: ``min_window_s`` for turns that fit, else just
    long enough, capped at Whisper's native 30 s. Shared by every ASR backend.

    ``buckets`` (e.g. 10, 15, 20, 30): a window that must grow past ``min_window_s`` grows to the
    next bucket instead of to the second, so a handful of window shapes serve every turn
    (CTranslate2 batches only equal shapes, and each shape is a warm allocation)."""
    limit = min(NATIVE_WINDOW_S, max(1, min_window_s))
    need = max(limit, math.ceil(duration + WINDOW_MARGIN_S))
    for bucket in sorted(buckets):
        if bucket >= need:
            return min(NATIVE_WINDOW_S, bucket)
    return min(NATIVE_WINDOW_S, need)


def short_final_window_s(asr: AsrSettings, duration: float, narrowband: bool | None) -> int | None:
    """The encoder window (s) of a final-quality decode of a short whole turn, None for a longer one.

    A final shorter than ``asr.final_short_turn_s`` lost its last word in the 10 s final window on the phone
    line, so it decodes in a longer one: ``asr.final_short_window_s`` (20 s) on a phone call (``narrowband``),
    as accurate there as 30 s at 0.55x the CPU; ``asr.final_short_window_wideband_s`` (Whisper's native 30 s)
    on a wideband call or where the line is not known (None). docs/capacity/asr-decoding.md "Short whole turns".
    """
    if duration >= asr.final_short_turn_s:
        return None
    return asr.final_short_window_s if narrowband else asr.final_short_window_wideband_s


def batch_samples(
    audios: Sequence[np.ndarray], offsets: Sequence[float] | None
) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Float32 samples, durations and offsets of a batch; every item must fit one window."""
    samples = [to_float32(a) for a in audios]
    durations = [len(x) / ASR_SAMPLE_RATE for x in samples]
    if max(durations) + WINDOW_MARGIN_S > NATIVE_WINDOW_S:
        raise ValueError("transcribe_batch takes utterances up to 29.5 s; use transcribe() for longer audio")
    return samples, durations, list(offsets) if offsets is not None else [0.0] * len(audios)


def to_float32(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return pcm.astype(np.float32, copy=False)

"""A turn-end sample as a live phone call hears it: levelled speech, then line hiss, never digital silence.

The turn-end set (``voicebot.eval.turn_end``) continues each cut with the clip's own noise floor; through
the phone channel that is close to digital silence, a cue a real line never gives. The phone load
benchmark (``scripts/phone_turns.py``, ``scripts/bench_load.py --phone``) levels each sentence to
``SPEECH_LEVEL_DBFS``, cuts it at its voiced frames and runs ``line_noise`` at -45 dBFS under the turn and
between turns. Here the clip is levelled the same way, cut, followed by nothing but that hiss, which
also runs under the speech; the caller then goes through the telephone channel as before.
"""

from __future__ import annotations

import numpy as np

from voicebot.eval.asr_cases import RATE, SPEECH_LEVEL_DBFS, line_noise, speech_bounds

LINE_HISS_DBFS = -45.0  # bench_load --phone's --noise-dbfs default


def levelled(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` scaled so its speech (``speech_bounds``) has ``SPEECH_LEVEL_DBFS`` RMS, as phone_turns does."""
    start, end = speech_bounds(pcm)
    rms = float(np.sqrt(np.mean(pcm[start:end].astype(np.float64) ** 2))) + 1e-9
    return pcm.astype(np.float64) * (32768 * 10 ** (SPEECH_LEVEL_DBFS / 20) / rms)


def with_line_hiss(pcm: np.ndarray, cut_s: float, silence_ms: float, seed: int,
                   noise_dbfs: float = LINE_HISS_DBFS) -> np.ndarray:
    """The clip levelled, up to ``cut_s``, then ``silence_ms`` of quiet, with line hiss under all of it (16 kHz)."""
    head = levelled(pcm)[: int(cut_s * RATE)]
    audio = np.concatenate([head, np.zeros(int(silence_ms * RATE / 1000))])
    noise = line_noise(len(audio) / RATE + 0.01, dbfs=noise_dbfs, seed=seed)[: len(audio)]
    return np.clip(np.round(audio + noise), -32768, 32767).astype(np.int16)

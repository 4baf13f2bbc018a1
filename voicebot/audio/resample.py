"""Sample-rate conversion with soxr (quality "HQ"), int16 in and out.

``StreamResampler`` is for live audio: chunks go in as they arrive and the
concatenated output equals a one-shot conversion of the whole signal (up to
floating-point rounding). ``resample`` is the one-shot form for files.

soxr works in float32 here and the result is rounded to int16 by us: soxr's
own int16 output adds dither from an internal generator, which would make the
same input give different output after ``clear()`` (and tests flaky).
"""

from __future__ import annotations

import numpy as np
import soxr

from voicebot.audio.errors import AudioFormatError

QUALITY = "HQ"


def _check(pcm: np.ndarray) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AudioFormatError(
            f"resampling needs a 1-D int16 array, got {getattr(pcm, 'dtype', type(pcm))} {getattr(pcm, 'shape', '')}"
        )
    return pcm


def _check_rate(rate: int, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioFormatError(f"{what} must be a positive integer number of Hz, got {rate!r}")
    return int(rate)


def _to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def _to_int16(audio: np.ndarray) -> np.ndarray:
    # Filter overshoot near full scale is clipped, never wrapped around.
    return np.clip(np.round(np.asarray(audio).reshape(-1) * 32768.0), -32768, 32767).astype(np.int16)


class StreamResampler:
    """Streaming int16 resampler from ``src_rate`` to ``dst_rate`` (identity when equal).

    soxr holds back a few milliseconds of filter delay; ``process(..., last=True)``
    returns that tail and readies the resampler for a new, independent stream.
    """

    def __init__(self, src_rate: int, dst_rate: int, quality: str = QUALITY) -> None:
        self.src_rate = _check_rate(src_rate, "source sample rate")
        self.dst_rate = _check_rate(dst_rate, "target sample rate")
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        if self.src_rate != self.dst_rate:
            self._stream = soxr.ResampleStream(self.src_rate, self.dst_rate, 1, dtype="float32", quality=quality)

    def process(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        _check(pcm)
        if self._stream is None:
            return pcm.copy()
        out = self._stream.resample_chunk(_to_float(pcm), last=last)
        if last:
            self._stream.clear()
        return _to_int16(out)

    def reset(self) -> None:
        """Drop buffered input (barge-in, a new utterance)."""
        if self._stream is not None:
            self._stream.clear()


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot int16 resampling; returns a copy when the rates are equal."""
    _check(pcm)
    src = _check_rate(src_rate, "source sample rate")
    dst = _check_rate(dst_rate, "target sample rate")
    if src == dst or len(pcm) == 0:
        return pcm.copy() if src == dst else np.zeros(0, dtype=np.int16)
    return _to_int16(soxr.resample(_to_float(pcm), src, dst, quality=QUALITY))

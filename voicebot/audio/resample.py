"""Sample-rate conversion with soxr (quality "HQ"), int16 in and out.

``StreamResampler`` is for live audio: chunks go in as they arrive and the
concatenated output equals a one-shot conversion of the whole signal (up to
floating-point rounding). ``resample`` is the one-shot form for files.

soxr works in float32 here and the result is rounded to int16 by us: soxr's
own int16 output adds dither from an internal generator, which would make the
same input give different output after ``clear()`` (and tests flaky).

soxr processes in blocks: streaming 8 kHz phone audio at "HQ" it returns 1660 samples every
fifth 20 ms frame and nothing in between, so everything downstream (VAD, the silence clock,
barge-in) saw the caller ~100 ms late and in jumps. ``StreamResampler(..., low_latency=True)``
upsamples by an integer factor (8 -> 16 kHz) with a polyphase windowed-sinc FIR instead: every
chunk comes out at once, delayed by the filter's 3 ms.
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


# The low-latency upsampler's filter: 48 taps per output phase (plus one), Kaiser beta 8 (about 80 dB of stopband),
# cut off at the source's Nyquist frequency. Its group delay is (taps - 1) / 2 output samples.
_FIR_TAPS_PER_PHASE = 48
_FIR_BETA = 8.0


def _lowpass(factor: int) -> np.ndarray:
    taps = _FIR_TAPS_PER_PHASE * factor + 1  # odd: a whole-sample delay (3 ms at 16 kHz)
    n = np.arange(taps) - (taps - 1) / 2.0
    h = np.sinc(n / factor) * np.kaiser(taps, _FIR_BETA)
    return h * (factor / h.sum())  # unit gain for the zero-stuffed input


class IntegerUpsampler:
    """Streaming upsampling by an integer factor: each chunk's output (``factor`` x its length) comes at
    once. The concatenated output of any chunking is identical (a plain FIR with carried history)."""

    def __init__(self, factor: int) -> None:
        if factor < 2:
            raise ValueError(f"upsampling factor must be at least 2, got {factor}")
        self.factor = factor
        self._h = _lowpass(factor)
        self._history = np.zeros(len(self._h) // factor, dtype=np.float64)  # the last input samples

    def process(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        ext = np.concatenate([self._history, x.astype(np.float64)])
        stuffed = np.zeros(len(ext) * self.factor, dtype=np.float64)
        stuffed[:: self.factor] = ext
        out = np.convolve(stuffed, self._h, mode="valid")[-len(x) * self.factor :]
        self._history = ext[-len(self._history) :]
        return out

    def reset(self) -> None:
        self._history[:] = 0.0


class StreamResampler:
    """Streaming int16 resampler from ``src_rate`` to ``dst_rate`` (identity when equal).

    soxr holds back a few milliseconds of filter delay; ``process(..., last=True)``
    returns that tail and readies the resampler for a new, independent stream.
    ``low_latency``: an integer upsampling (8 -> 16 kHz) runs on ``IntegerUpsampler``, which returns
    every chunk at once (soxr returns ~100 ms blocks); its output is delayed 3 ms and has no tail.
    """

    def __init__(self, src_rate: int, dst_rate: int, quality: str = QUALITY, low_latency: bool = False) -> None:
        self.src_rate = _check_rate(src_rate, "source sample rate")
        self.dst_rate = _check_rate(dst_rate, "target sample rate")
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._upsampler: IntegerUpsampler | None = None
        if low_latency and self.dst_rate > self.src_rate and self.dst_rate % self.src_rate == 0:
            self._upsampler = IntegerUpsampler(self.dst_rate // self.src_rate)
        elif self.src_rate != self.dst_rate:
            self._stream = soxr.ResampleStream(self.src_rate, self.dst_rate, 1, dtype="float32", quality=quality)

    def process(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        _check(pcm)
        if self._upsampler is not None:
            out = self._upsampler.process(_to_float(pcm))
            if last:
                self._upsampler.reset()
            return _to_int16(out)
        if self._stream is None:
            return pcm.copy()
        out = self._stream.resample_chunk(_to_float(pcm), last=last)
        if last:
            self._stream.clear()
        return _to_int16(out)

    def reset(self) -> None:
        """Drop buffered input (barge-in, a new utterance)."""
        if self._upsampler is not None:
            self._upsampler.reset()
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

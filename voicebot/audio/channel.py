"""Telephone channel simulation: what a caller's voice sounds like after a phone line.

Used to evaluate the pipeline on telephone-band audio from wideband recordings:
resample to 8 kHz, band-limit to 300–3400 Hz (the classic POTS band), then a
G.711 µ-law round trip. Deterministic: no noise, no randomness.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from voicebot.audio.codecs import mulaw_decode, mulaw_encode
from voicebot.audio.errors import AudioFormatError
from voicebot.audio.resample import resample

TELEPHONE_RATE = 8000
BAND_LOW_HZ = 300.0
BAND_HIGH_HZ = 3400.0
# 257 taps with a Kaiser window (beta 6, about -60 dB stopband) give transition
# bands of roughly 110 Hz at 8 kHz: sharp enough for the 300 Hz lower edge.
_TAPS = 257
_KAISER_BETA = 6.0


@cache
def _bandpass_kernel(rate: int, low_hz: float, high_hz: float, taps: int = _TAPS) -> np.ndarray:
    """Linear-phase windowed-sinc band-pass FIR (difference of two low-passes)."""
    n = np.arange(taps) - (taps - 1) / 2
    window = np.kaiser(taps, _KAISER_BETA)

    def lowpass(cutoff: float) -> np.ndarray:
        fc = cutoff / rate
        h: np.ndarray = 2 * fc * np.sinc(2 * fc * n) * window
        unity: np.ndarray = h / h.sum()  # unity gain at DC
        return unity

    kernel: np.ndarray = lowpass(high_hz) - lowpass(low_hz)
    return kernel


def bandpass(pcm: np.ndarray, rate: int, low_hz: float = BAND_LOW_HZ, high_hz: float = BAND_HIGH_HZ) -> np.ndarray:
    """Band-limit int16 PCM to ``[low_hz, high_hz]`` without shifting it in time.

    The symmetric FIR applied with ``mode="same"`` is zero-phase, so speech
    boundaries stay where they were (VAD timing tests rely on that).
    """
    if high_hz >= rate / 2:
        raise AudioFormatError(f"band edge {high_hz} Hz must be below the Nyquist frequency {rate / 2} Hz")
    kernel = _bandpass_kernel(rate, low_hz, high_hz)
    filtered = np.convolve(pcm.astype(np.float64), kernel, mode="same")
    return np.clip(np.round(filtered), -32768, 32767).astype(np.int16)


def telephone_channel(pcm: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Return ``(pcm, 8000)``: ``pcm`` as heard through a narrowband µ-law phone line."""
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AudioFormatError(
            f"telephone_channel needs a 1-D int16 array, got {getattr(pcm, 'dtype', type(pcm))} "
            f"{getattr(pcm, 'shape', '')}"
        )
    # Resample first: soxr's anti-aliasing filter handles the 4 kHz limit and
    # the band-pass then runs on 8 kHz audio, where a short FIR suffices.
    narrow = resample(pcm, rate, TELEPHONE_RATE)
    if len(narrow) == 0:
        return narrow, TELEPHONE_RATE
    band = bandpass(narrow, TELEPHONE_RATE)
    return mulaw_decode(mulaw_encode(band)), TELEPHONE_RATE

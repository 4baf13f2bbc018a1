"""Whisper log-mel features in numpy, as Smart Turn v3 expects them (80 x 800 for 8 s at 16 kHz).

Follows pipecat's ``_whisper_features.py`` (BSD-2-Clause, Daily), itself derived from
``transformers.WhisperFeatureExtractor`` (Apache-2.0): Slaney mel filterbank, periodic Hann
window, centred reflect-padded 400-point FFT with hop 160, log10, clamp to max - 8, (x + 4) / 4.
The waveform is normalised to zero mean and unit variance first (``do_normalize=True``).
``tests/test_turn_smart.py`` checks it against transformers' extractor.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16000
WINDOW_SECONDS = 8
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    freq = np.atleast_1d(np.asarray(freq, dtype=np.float64))
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


@cache
def mel_filters() -> np.ndarray:
    """Slaney-normalised triangular filters, shape (N_FFT // 2 + 1, N_MELS)."""
    mel_edges = np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], N_MELS + 2)
    edges = _mel_to_hz(mel_edges)
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    diff = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= (2.0 / (edges[2: N_MELS + 2] - edges[:N_MELS]))[None, :]
    filters.setflags(write=False)
    return filters


@cache
def _hann() -> np.ndarray:
    window = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window
    window.setflags(write=False)
    return window


def last_window(audio16k: np.ndarray) -> np.ndarray:
    """The last 8 s as float32 in [-1, 1], zero-padded at the front (int16 or float input)."""
    x = np.asarray(audio16k)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {x.shape}")
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if len(x) >= WINDOW_SAMPLES:
        return x[-WINDOW_SAMPLES:]
    return np.concatenate([np.zeros(WINDOW_SAMPLES - len(x), dtype=np.float32), x])


def log_mel(window: np.ndarray) -> np.ndarray:
    """(80, 800) float32 log-mel of exactly 8 s of 16 kHz float audio."""
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got {window.shape}")
    x = window.astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # (frames, bins)
    mel = np.maximum(1e-10, power @ mel_filters()).T  # (mels, frames)
    spec = np.log10(mel)[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)

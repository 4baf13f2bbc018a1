"""The German default voice: SVOX Pico through py-nanotts (16 kHz)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from pathlib import Path

import numpy as np

from voicebot.config import ModelSettings, TtsSettings
from voicebot.models.registry import resolve_model_dir
from voicebot.tts.base import SynthesizedAudio
from voicebot.tts.lexicon import respell

PICO_FILES = ("de-DE_ta.bin", "de-DE_gl0_sg.bin")


def pin_mmap_threshold() -> None:
    """Make SVOX Pico's output repeatable (glibc only; a no-op elsewhere).

    py-nanotts mallocs Pico's work buffer on every call and Pico reads part of it
    before writing it, so the audio depends on what the heap held before. glibc
    raises its mmap threshold dynamically after large frees, so later buffers come
    from the (dirty) heap; fixing the threshold (mallopt M_MMAP_THRESHOLD = -3)
    keeps every such buffer a fresh, zero-filled mmap: same text, same bytes.
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(name).mallopt(-3, 128 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl has no mallopt): Pico output may then vary slightly between runs


class PicoSynthesizer:
    """SVOX Pico, German. Holds the GIL for a whole call, so callers keep inputs to one sentence."""

    name = "pico-de"
    sample_rate = 16000

    def __init__(self, settings: TtsSettings, models: ModelSettings, reference: str = "pico-de") -> None:
        self.settings = settings
        self.models = models
        self.reference = reference
        self.lingware: Path | None = None
        self._speak = None
        # The Pico engine keeps global state in C; one synthesis at a time.
        self._lock = threading.Lock()

    def load(self) -> PicoSynthesizer:
        from py_nanotts._nanotts import speak

        self.lingware = resolve_model_dir(self.reference, self.models, PICO_FILES)
        self._speak = speak
        pin_mmap_threshold()
        return self

    def synthesize(self, text: str) -> SynthesizedAudio:
        if self._speak is None or self.lingware is None:
            raise RuntimeError("PicoSynthesizer.load() has not been called")
        text = respell(text).strip()
        if not text:
            return SynthesizedAudio(np.zeros(0, dtype=np.int16), self.sample_rate)
        speed = 1.0 / max(0.5, self.settings.length_scale)
        with self._lock:
            raw = self._speak(
                text=text, voice="de-DE", speed=speed, pitch=None, volume=None, lingware_path=str(self.lingware)
            )
        pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        return SynthesizedAudio(trim_trailing_silence(pcm, self.sample_rate), self.sample_rate)


# Pico ends every sentence with ~0.7 s of silence: between sentences that is dead air, and
# after the last one it only delays the caller's turn. Keep a natural gap.
KEEP_SILENCE_S = 0.25
_SILENT = 300  # |sample| below this is silence (about -40 dBFS)


def trim_trailing_silence(pcm: np.ndarray, sample_rate: int, keep_s: float = KEEP_SILENCE_S) -> np.ndarray:
    """``pcm`` with its trailing silence cut to ``keep_s`` seconds."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _SILENT)
    if len(loud) == 0:
        return pcm
    end = min(len(pcm), int(loud[-1]) + 1 + int(keep_s * sample_rate))
    return pcm[:end]

"""The German default voice: SVOX Pico through py-nanotts (16 kHz)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voicebot.config import ModelSettings, TtsSettings
from voicebot.models.registry import resolve_model_dir
from voicebot.tts.base import SynthesizedAudio, trim_trailing_silence
from voicebot.tts.lexicon import respell
from voicebot.tts.pico_worker import PicoProcess, pin_mmap_threshold

__all__ = ["PICO_FILES", "PicoSynthesizer", "pin_mmap_threshold", "trim_trailing_silence"]

PICO_FILES = ("de-DE_ta.bin", "de-DE_gl0_sg.bin")
KEEP_SILENCE_S = 0.25  # silence kept after each sentence


class PicoSynthesizer:
    """SVOX Pico, German. In-process it holds the GIL for a whole call, so with ``tts.pico_process``
    (the default) it runs in a child process (``pico_worker.py``) and the caller only waits on a pipe."""

    name = "pico-de"
    sample_rate = 16000

    def __init__(self, settings: TtsSettings, models: ModelSettings, reference: str = "pico-de") -> None:
        self.settings = settings
        self.models = models
        self.reference = reference
        self.lingware: Path | None = None
        self._speak = None
        self._process: PicoProcess | None = None
        # The Pico engine keeps global state in C (and the worker serves one request at a time).
        self._lock = threading.Lock()

    def load(self) -> PicoSynthesizer:
        self.lingware = resolve_model_dir(self.reference, self.models, PICO_FILES)
        if self.settings.pico_process:
            with self._lock:
                if self._process is None:
                    self._process = PicoProcess(self.lingware).start()
            self._speak = self._speak_in_worker
            return self
        from py_nanotts._nanotts import speak

        self._speak = speak
        pin_mmap_threshold()
        return self

    def _speak_in_worker(self, *, text: str, speed: float, **_: object) -> bytes:
        assert self._process is not None and self.lingware is not None
        try:
            return self._process.speak(text, speed)
        except (EOFError, OSError):  # the worker died (killed, out of memory): start a new one, once
            self._process.close()
            self._process = PicoProcess(self.lingware).start()
            return self._process.speak(text, speed)

    def close(self) -> None:
        """Stop the worker process (it also exits by itself when this process ends)."""
        with self._lock:
            if self._process is not None:
                self._process.close()
                self._process = None

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
        # Pico ends every sentence with ~0.7 s of silence: between sentences that is dead air (the
        # player cuts the last sentence's further: after it, silence only delays the caller's turn).
        return SynthesizedAudio(trim_trailing_silence(pcm, self.sample_rate, KEEP_SILENCE_S), self.sample_rate)

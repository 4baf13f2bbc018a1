"""Fake engines with scripted timings, for orchestration tests of the real call core.

Each fake subclasses the real engine interface (``Transcriber``, ``SileroVadModel``,
``Synthesizer``, ``IntentBackend`` behind a real ``IntentClassifier``), so the real
``CallSession``, ASR scheduler, endpointer, policy, player, hub and transports run
unchanged; only the models are replaced. They make protocol, hub, store and agent
tests run in milliseconds. The real models are tested end to end elsewhere
(``test_server_e2e.py``, ``test_call_cli.py``, ``test_streaming_asr.py``).

Scripts: any loud audio (RMS above ``LOUD_RMS``) is speech; under ``BACKCHANNEL_S`` of
it is transcribed as "Mhm.", more as the first words of ``TEXT`` (one word per
0.15 s of audio, all of it from 0.8 s on); the classifier says ``rechnung`` for anything that mentions a bill.
Settings pick the variants: ``tts.voice = "fake-flood"`` makes each bot sentence
20 MB of audio (the slow-consumer test), ``"fake-long"`` 4 s.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from voicebot.asr.transcriber import Transcriber, TranscriptionResult
from voicebot.config import Settings
from voicebot.engines import Engines
from voicebot.frames import Word
from voicebot.nlu.calibration import Calibration
from voicebot.nlu.intent import IntentClassifier
from voicebot.tts.base import SynthesizedAudio, Synthesizer
from voicebot.vad.silero import SileroVadModel

TEXT = "Ich habe eine Frage zu meiner Rechnung, meine Kundennummer ist 12345678."
LOUD_RMS = 300.0
SECONDS_PER_WORD = 0.15
WHOLE_TEXT_S = 0.8  # from this much loud audio on, the whole of TEXT
BACKCHANNEL_S = 0.45  # loud audio shorter than this is transcribed as "Mhm."
LABELS = ("rechnung", "bestellung", "sonstiges", "mitarbeiter", "notfall", "seelsorge")


class FakeTranscriber(Transcriber):
    """Loud audio → the first words of ``TEXT``; silence → nothing. ``decode_s`` of "compute" per decode."""

    def __init__(self, settings: Settings, decode_s: float = 0.02, text: str = TEXT) -> None:
        super().__init__(settings.asr, settings.models)
        self.decode_s = decode_s
        self.text = text

    def load(self) -> FakeTranscriber:
        return self

    def transcribe(
        self, audio: np.ndarray, beam_size: int | None = None, word_timestamps: bool = True,
        initial_prompt: str | None = None, offset: float = 0.0,
    ) -> TranscriptionResult:
        time.sleep(self.decode_s)
        pcm = audio.astype(np.float64) * (32768.0 if audio.dtype != np.int16 else 1.0)
        frames = pcm[: len(pcm) // 320 * 320].reshape(-1, 320) if len(pcm) >= 320 else np.zeros((0, 320))
        loud = float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > LOUD_RMS)) * 0.02 if len(frames) else 0.0
        duration = len(audio) / 16000
        if loud < 0.1:
            return TranscriptionResult("", (), -10.0, 0.95, duration, self.decode_s)
        if loud < BACKCHANNEL_S:
            return TranscriptionResult("Mhm.", (Word("Mhm.", offset, offset + duration, 0.9),), -0.2, 0.01, duration,
                                       self.decode_s)
        words = self.text.split()
        n = len(words) if loud >= WHOLE_TEXT_S else max(1, int(loud / SECONDS_PER_WORD))
        chosen = words[:n]
        step = duration / max(1, len(chosen))
        timed = tuple(Word(w, offset + i * step, offset + (i + 1) * step, 0.9) for i, w in enumerate(chosen))
        return TranscriptionResult(" ".join(chosen), timed, -0.2, 0.01, duration, self.decode_s)


class FakeVadModel(SileroVadModel):
    """Energy instead of the network: a window is speech when its RMS is above ``LOUD_RMS``."""

    def __init__(self) -> None:
        super().__init__(path=None)

    def load(self) -> FakeVadModel:
        self._session = "energy"
        return self

    def run(self, windows: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        audio = windows[:, -512:] * 32768.0
        rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=1))
        return np.where(rms > LOUD_RMS, 0.95, 0.02).astype(np.float32), h, c


class FakeSynthesizer(Synthesizer):
    """A 400 Hz tone per sentence (``seconds`` long), at 16 kHz like Pico."""

    name = "fake"
    sample_rate = 16000

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def load(self) -> FakeSynthesizer:
        return self

    def synthesize(self, text: str) -> SynthesizedAudio:
        n = int(self.sample_rate * self.seconds)
        t = np.arange(n) / self.sample_rate
        return SynthesizedAudio((3000 * np.sin(2 * np.pi * 400.0 * t)).astype(np.int16), self.sample_rate)


class ScriptedIntentBackend:
    """An ``IntentBackend``: keyword-scripted logits (a bill → ``rechnung``, "Mitarbeiter" → ``mitarbeiter``)."""

    name = "scripted"
    labels = LABELS

    def logits(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(LABELS)))
        for row, text in enumerate(texts):
            lowered = text.lower()
            label = "rechnung" if "rechnung" in lowered else "mitarbeiter" if "mitarbeiter" in lowered else "sonstiges"
            out[row] = [0.0, -2.7, -3.4, -6.0, -8.0, -8.0]
            if label != "rechnung":
                out[row, LABELS.index(label)] = 1.0
        return out


def fake_engines(settings: Settings, decode_s: float = 0.02, text: str = TEXT, text_turn: Any = None) -> Engines:
    """``text_turn``: an end-of-turn text model (the real ``TextTurnModel``) to end turns early."""
    """Every engine faked; the rest of the server is real. ``VOICEBOT_FAKE_LOAD_S`` delays loading."""
    time.sleep(float(os.environ.get("VOICEBOT_FAKE_LOAD_S", "0")))  # lets tests see /readyz say 503
    seconds = {"fake-flood": 650.0, "fake-long": 4.0}.get(settings.tts.voice, 0.3)
    calibration = Calibration(labels=LABELS, temperature=1.0, default_act_threshold=0.8)
    intent = IntentClassifier(ScriptedIntentBackend(), calibration)
    return Engines(settings=settings, transcriber=FakeTranscriber(settings, decode_s, text), vad_model=FakeVadModel().load(),
                   synthesizer=FakeSynthesizer(seconds), intent=intent, encoder=None, load_seconds={"fake": 0.0},
                   text_turn=text_turn)


def load_fake_engines(settings: Settings) -> Any:
    """The ``server.engines_loader`` of the server tests."""
    return fake_engines(settings)


def load_fake_engines_asking_for_a_human(settings: Settings) -> Any:
    """Every caller asks for a person: the policy hands the call over at once."""
    return fake_engines(settings, text="Ich möchte bitte sofort mit einem Mitarbeiter sprechen.")

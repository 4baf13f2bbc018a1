"""Per-frame speech detectors: the ``VoiceActivityDetector`` protocol, ``build_detector`` and ``rms_dbfs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from voicebot.vad.settings import EndpointerSettings

if TYPE_CHECKING:
    from voicebot.vad.silero import SileroVadModel


class VoiceActivityDetector(Protocol):
    """A per-call detector of speech in fixed-size frames (state kept between frames)."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_ms(self) -> float: ...

    @property
    def frame_samples(self) -> int: ...

    def is_speech(self, frame_pcm: np.ndarray) -> float:
        """Probability in [0, 1] that the frame (exactly ``frame_samples`` int16) holds speech."""
        ...

    def reset(self) -> None: ...


def build_detector(settings: EndpointerSettings, silero_model: SileroVadModel | None = None) -> VoiceActivityDetector:
    """A fresh per-call detector for ``settings.detector``.

    Pass the process-wide, loaded ``SileroVadModel`` as ``silero_model`` so all
    calls share one ONNX session; without it one is loaded from the default path.
    """
    if settings.detector == "webrtc":
        from voicebot.vad.webrtc import WebRtcVad

        return WebRtcVad(settings.webrtc_aggressiveness, settings.sample_rate, settings.webrtc_frame_ms)
    from voicebot.vad.silero import SileroVad, SileroVadModel

    if silero_model is None:
        silero_model = SileroVadModel().load()
    if not isinstance(silero_model, SileroVadModel):
        raise TypeError(f"silero_model must be a SileroVadModel, got {type(silero_model).__name__}")
    return SileroVad(silero_model)


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 PCM in dB relative to full scale (-inf-safe: silence is about -200)."""
    x = pcm.astype(np.float32)  # float32 dot: ~10% of the event loop's GIL time went here (profile_server.py)
    energy = float(np.dot(x, x)) / max(1, len(x))
    return float(10.0 * np.log10(energy / (32768.0 * 32768.0) + 1e-20))
